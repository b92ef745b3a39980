#!/usr/bin/env python3
"""Check Coffre's key-format vectors (keys-v1.json) with an independent reader.

The reader, coffre_keys.py next to this file, is written from Docs/keys.md and
Docs/format.md alone. This script checks every entry of the vector file as Docs/keys.md
("Schema of keys-v1.json") describes it: derivations, wraps, attributes, name tags, complete
links (file, password, folder, down to the decrypted content) and links that must fail.

Usage:
    verify_key_vectors.py [path/to/keys-v1.json]

Prints "PASS name" or "FAIL name: why" for each check, then "N passed, M failed". Exit
status: 0 when every check passed, 1 when one failed, 2 when the vector file is missing.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import unicodedata
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import coffre_keys as ck  # noqa: E402
from coffre_keys import CoffreError  # noqa: E402


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except AssertionError as e:
            self._fail(name, str(e) or "assertion failed")
        except CoffreError as e:
            self._fail(name, f"unexpected error {e.code}: {e.message}")
        except Exception as e:  # a bug in the checker or a malformed vector file
            self._fail(name, f"{type(e).__name__}: {e} at {traceback.extract_tb(e.__traceback__)[-1].lineno}")
        else:
            self.passed += 1
            print(f"PASS {name}")

    def _fail(self, name: str, why: str) -> None:
        self.failed += 1
        print(f"FAIL {name}: {why}")


def eq(actual, expected, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: got {actual!r}, expected {expected!r}")


def hx(b: bytes) -> str:
    return b.hex()


def expect_error(code: str, fn: Callable[[], object]) -> None:
    try:
        fn()
    except CoffreError as e:
        eq(e.code, code, f"error code ({e.message})")
        return
    raise AssertionError(f"opened, expected {code}")


def plaintext_pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


# --- Sections ------------------------------------------------------------------------------

def check_derivation(case: dict) -> None:
    info = case["info"]
    assert info.startswith("coffre/v1/"), f"info {info!r} is not coffre/v1/…"
    out = ck.derive(bytes.fromhex(case["key"]), info[len("coffre/v1/"):])
    eq(hx(out), case["output"], "output")
    eq(hx(ck.hkdf(bytes.fromhex(case["key"]), b"", info.encode())), case["output"], "output (empty salt)")


def check_wrap(case: dict) -> None:
    wk = bytes.fromhex(case["wrapping_key"])
    eq(hx(ck.derive(wk, "key-wrap")), case["aes_key"], "aes_key")
    ad = ck.wrap_ad(case["type"], case["owner"], case["subject"])
    eq(hx(ad), case["associated_data"], "associated_data")
    wrapped = bytes.fromhex(case["wrapped"])
    eq(len(wrapped), 61, "wrapped length")
    eq(hx(wrapped[1:13]), case["nonce"], "nonce in wrapped")
    key = ck.unwrap(wrapped, wk, case["type"], case["owner"], case["subject"])
    eq(hx(key), case["key"], "unwrapped key")
    eq(hx(ck.wrap(key, wk, case["type"], case["owner"], case["subject"], bytes.fromhex(case["nonce"]))),
       case["wrapped"], "re-wrapped")
    # The same bytes in any other context, or changed, must not open.
    for t in ("link", "node-key", "file-key", "master-key/password"):
        if t != case["type"]:
            expect_error("decryption_failed", lambda t=t: ck.unwrap(wrapped, wk, t, case["owner"], case["subject"]))
    expect_error("decryption_failed", lambda: ck.unwrap(wrapped, wk, case["type"], case["subject"] + "x", case["subject"]))
    expect_error("decryption_failed", lambda: ck.unwrap(wrapped, bytes(32), case["type"], case["owner"], case["subject"]))
    flipped = bytearray(wrapped); flipped[30] ^= 1
    expect_error("decryption_failed", lambda: ck.unwrap(bytes(flipped), wk, case["type"], case["owner"], case["subject"]))
    expect_error("decryption_failed", lambda: ck.unwrap(b"\x02" + wrapped[1:], wk, case["type"], case["owner"], case["subject"]))
    expect_error("decryption_failed", lambda: ck.unwrap(wrapped[:60], wk, case["type"], case["owner"], case["subject"]))


def check_attributes(case: dict) -> None:
    nk = bytes.fromhex(case["node_key"])
    eq(hx(ck.derive(nk, "attributes")), case["aes_key"], "aes_key")
    eq(hx(ck.attributes_ad(case["node_id"])), case["associated_data"], "associated_data")
    blob = ck.b64decode(case["blob"])
    eq(hx(blob[1:13]), case["nonce"], "nonce in blob")
    eq(len(blob) % 64, 29, "blob length is 29 + 64k")
    plain = ck.open_attributes_plaintext(blob, nk, case["node_id"])
    padded = case["padded_json"].encode("utf-8")
    eq(plain, padded, "plaintext")
    # Padding rule: JSON (sorted keys, no whitespace, raw UTF-8) + (64 − len mod 64) mod 64 spaces.
    js = padded.rstrip(b" ")
    eq(len(padded) - len(js), (64 - len(js) % 64) % 64, "number of padding spaces")
    eq(len(padded) % 64, 0, "padded length mod 64")
    obj = json.loads(js)
    eq(ck.pad_attributes_json(obj), padded, "canonical JSON and padding")
    eq(ck.seal_attributes(padded, nk, case["node_id"], bytes.fromhex(case["nonce"])), blob, "re-sealed blob")
    attrs = ck.open_attributes(case["blob"], nk, case["node_id"])
    eq(attrs, obj, "opened attributes")
    ck.check_name(attrs["name"])
    expect_error("decryption_failed", lambda: ck.open_attributes(case["blob"], nk, case["node_id"] + "A"))


def check_name_tag(case: dict) -> None:
    fk = bytes.fromhex(case["folder_key"])
    eq(hx(ck.derive(fk, "name-tags")), case["hmac_key"], "hmac_key")
    eq(ck.name_tag(case["name"], fk), case["tag"], "tag")
    for form in ("NFC", "NFD"):
        eq(ck.name_tag(unicodedata.normalize(form, case["name"]), fk), case["tag"], f"tag of the {form} form")


def content_fetcher(data: bytes) -> Callable[[int, int], bytes]:
    """A stand-in for the server's Range answers over the committed ciphertext."""
    def fetch(first: int, last: int) -> bytes:
        assert 0 <= first <= last < len(data), f"range {first}-{last} outside {len(data)} bytes"
        return data[first:last + 1]
    return fetch


def check_file_node(node: dict, node_key: bytes, folder: str, what: str) -> None:
    fk = ck.open_file_key(node, node_key)
    eq(hx(fk), node["expect_file_key"], f"{what}: file key")
    attrs = ck.open_attributes(node["attributes"], node_key, node["id"])
    with open(os.path.join(folder, node["ciphertext_file"]), "rb") as f:
        data = f.read()
    eq(len(data), node["length"], f"{what}: length is the ciphertext size")
    plain_len = ck.plaintext_length(node["length"])
    ck.check_size_attribute(attrs, plain_len)
    eq(attrs.get("size"), plain_len, f"{what}: size attribute")
    expected = plaintext_pattern(attrs["size"])
    eq(ck.decrypt_file(fk, data) == expected, True, f"{what}: whole-file plaintext")
    fetch = content_fetcher(data)
    if plain_len == 0:
        eq(b"".join(ck.iter_plaintext(fk, node["length"], 0, 0, fetch)), b"", f"{what}: empty by ranges")
        return
    eq(ck.read_range(fk, node["length"], 0, plain_len, fetch) == expected, True, f"{what}: whole by ranges")
    eq(b"".join(ck.iter_plaintext(fk, node["length"], 0, plain_len, fetch, batch_chunks=1)) == expected,
       True, f"{what}: whole by one-chunk ranges")
    for a, b in ((0, 1), (plain_len - 1, plain_len), (max(0, 65535), min(plain_len, 65537)),
                 (plain_len // 3, plain_len // 3 + 1)):
        if a < b <= plain_len:
            eq(ck.read_range(fk, node["length"], a, b, fetch), expected[a:b], f"{what}: range [{a}, {b})")
    # A wrong T never yields wrong plaintext.
    for t in (node["length"] - 1, node["length"] + 1):
        try:
            ck.read_range(fk, t, 0, min(plain_len, ck.plaintext_length(t)), content_fetcher(data[:t] + b"\0"))
        except CoffreError as e:
            eq(e.code, "decryption_failed", f"{what}: wrong length T={t}")
        else:
            raise AssertionError(f"{what}: T={t} was accepted")


def open_vector_link(link: dict, password: str | None) -> bytes:
    host, link_id, secret = ck.parse_link_url(link["url"])
    return ck.open_link(link["record"], link_id, secret, link["node"]["id"], password)


def check_link(link: dict, folder: str) -> None:
    host, link_id, secret = ck.parse_link_url(link["url"])
    eq(link_id, link["link_id"], "link id from the URL")
    eq(hx(secret), link["secret"], "secret from the URL")
    node = link["node"]
    record = ck.parse_record(link["record"], link_id, node["id"])
    password = link.get("password")
    stretched = None
    if record["password"] is not None:
        assert password is not None, "a record with a password and no password in the vector"
        eq(hx(unicodedata.normalize("NFC", password).encode()), link["password_bytes"], "password_bytes")
        stretched = ck.stretch_password(password, record["password"])
        eq(hx(stretched), link["stretched_password"], "stretched_password")
    else:
        assert "stretched_password" not in link, "stretched_password without a password in the record"
    eq(hx(secret + (stretched or b"")), link["hkdf_input"], "hkdf_input")
    lk = ck.link_key(secret, link_id, stretched)
    eq(hx(lk), link["link_key"], "link_key")
    eq(hx(ck.derive(lk, "key-wrap")), link["wrap_aes_key"], "wrap_aes_key")
    eq(hx(ck.wrap_ad("link", link_id, record["nodeId"])), link["associated_data"], "associated_data")
    node_key = ck.open_link(link["record"], link_id, secret, node["id"], password)
    eq(hx(node_key), node["expect_node_key"], "node key")
    attrs = ck.open_attributes(node["attributes"], node_key, node["id"])
    eq(attrs, json.loads(node["expect_attributes"]), "attributes")
    ck.check_name(attrs["name"])
    if node["type"] == "file":
        check_file_node(node, node_key, folder, "node")
        eq(link["children"], [], "children of a file link")
    elif node["type"] == "folder":
        assert "fileKey" not in node, "a folder with a fileKey"
        names = set()
        for i, child in enumerate(link["children"]):
            ckey, cattrs = ck.open_child(child, node["id"], node_key)
            eq(hx(ckey), child["expect_node_key"], f"child {i}: node key")
            eq(cattrs, json.loads(child["expect_attributes"]), f"child {i}: attributes")
            assert cattrs["name"] not in names, f"child {i}: duplicate name"
            names.add(cattrs["name"])
            if child["type"] == "file":
                check_file_node(child, ckey, folder, f"child {i}")
            else:
                eq(child["type"], "folder", f"child {i}: type")
            # The same child listed under another folder, or its record moved, does not open.
            expect_error("decryption_failed", lambda c=child: ck.open_child(dict(c, parent="root"), node["id"], node_key))
            expect_error("decryption_failed", lambda c=child: ck.open_child(c, c["parent"], bytes(32)))
        assert link["children"], "a folder link without children"
    else:
        raise AssertionError(f"node type {node['type']!r}")
    # Every equivalent spelling of the password opens the link; so does the NFD form.
    for alt in link.get("equivalent_passwords", []):
        assert alt != password, "an equivalent password equal to the password"
        eq(unicodedata.normalize("NFC", alt), unicodedata.normalize("NFC", password), "equivalent password's NFC form")
        eq(hx(ck.open_link(link["record"], link_id, secret, node["id"], alt)), node["expect_node_key"],
           f"node key with equivalent password {alt!r}")
    if password is not None:
        nfd = unicodedata.normalize("NFD", password)
        eq(hx(ck.open_link(link["record"], link_id, secret, node["id"], nfd)), node["expect_node_key"], "NFD password")
        expect_error("password_required", lambda: ck.open_link(link["record"], link_id, secret, node["id"], None))
        expect_error("decryption_failed", lambda: ck.open_link(link["record"], link_id, secret, node["id"], password + " "))
    else:
        eq(link.get("equivalent_passwords", []), [], "equivalent_passwords without a password")
    # The link under another link id, or with a cut secret, does not open.
    expect_error("decryption_failed", lambda: ck.open_link(link["record"], link_id, secret[:31] + bytes([secret[31] ^ 1]),
                                                           node["id"], password))


def check_bad_link(case: dict, links_by_id: dict) -> None:
    secret = bytes.fromhex(case["secret"])
    opened = lambda: ck.open_link(case["record"], case["link_id"], secret, case["node_id"], case.get("password"))  # noqa: E731
    if case["error"] == "":
        key = opened()
        good = links_by_id.get(case["link_id"])
        assert good is not None, f"no link with id {case['link_id']}"
        eq(hx(key), good["node"]["expect_node_key"], "node key")
    else:
        expect_error(case["error"], opened)


# --- Checks of the reader's own rules, from Docs/keys.md ------------------------------------------

def self_checks(r: Report, links: list) -> None:
    good_url = links[0]["url"] if links else None

    def b64_rules() -> None:
        eq(ck.b64decode("AAAAAAAAAAAAAAAAAAAAAA"), bytes(16), "22 characters")
        for bad in ("AAAAAAAAAAAAAAAAAAAAAB", "AAAAAAAAAAAAAAAAAAAAAA==", "AAAA+AAAAAAAAAAAAAAAAA",
                    "AAAA/AAAAAAAAAAAAAAAAA", "AAAA AAAAAAAAAAAAAAAAA", "AAAAA", "AAAAAAAAAAAAAAAAAAAAAA\n"):
            expect_error("invalid_argument", lambda t=bad: ck.b64decode(t))
        for last in "AQgw":
            ck.b64decode("A" * 21 + last)

    def url_rules() -> None:
        if good_url is None:
            return
        host, link_id, secret = ck.parse_link_url(good_url)
        base = f"https://{host}/l/{link_id}"
        frag = ck.b64encode(secret)
        for bad in (f"http://{host}/l/{link_id}#{frag}", f"HTTPS://{host}/l/{link_id}#{frag}",
                    f"{base}/#{frag}", f"{base}?x=1#{frag}", f"https://{host}/x/l/{link_id}#{frag}",
                    f"https:///l/{link_id}#{frag}", base, f"{base}#", f"{base}#{frag}#",
                    f"{base}#{frag[:-1]}", f"{base}#{frag}A", f"https://{host}/l/{link_id[:-1]}#{frag}",
                    f"https://{host}/L/{link_id}#{frag}", f"{base}#{frag}=" ):
            expect_error("invalid_argument", lambda u=bad: ck.parse_link_url(u))

    def record_rules() -> None:
        if not links:
            return
        link = links[0]
        rec = json.loads(link["record"])
        lid, nid = link["link_id"], link["node"]["id"]
        secret = bytes.fromhex(link["secret"])
        key = link["node"]["expect_node_key"]
        def with_(**kw):
            d = dict(rec); d.update(kw)
            return json.dumps({k: v for k, v in d.items() if v is not ...}, indent=2)
        # Any order, whitespace, unknown keys, null password: opens.
        spaced = "\n " + json.dumps(dict(reversed(list(rec.items())), extra={"x": 1}), indent=3) + " \n"
        eq(hx(ck.open_link(spaced, lid, secret, nid)), key, "reordered, spaced record with an unknown key")
        eq(hx(ck.open_link(with_(password=None), lid, secret, nid)), key, "null password")
        for text, code in (("[]", "invalid_argument"), ("1", "invalid_argument"), ("{", "invalid_argument"),
                           (with_(version=...), "invalid_argument"), (with_(version="1"), "invalid_argument"),
                           (with_(version=True), "invalid_argument"), (with_(version=1.5), "invalid_argument"),
                           (json.dumps({"version": 2}), "unsupported_version"),
                           (with_(version=0, linkId=...), "unsupported_version"),
                           (with_(linkId=1), "invalid_argument"), (with_(nodeId=...), "invalid_argument"),
                           (with_(wrappedNodeKey=rec["wrappedNodeKey"][:-1]), "invalid_argument"),
                           (with_(wrappedNodeKey=ck.b64encode(b"\x02" + ck.b64decode(rec["wrappedNodeKey"])[1:])),
                            "invalid_argument"),
                           (with_(password="x"), "invalid_argument"),
                           (with_(password={"kdf": "pbkdf2-sha512", "iterations": "210000", "salt": "BwcHBwcHBwcHBwcHBwcHBw"}),
                            "invalid_argument"),
                           (with_(linkId="BAQEBAQEBAQEBAQEBAQEBA"), "decryption_failed"),
                           (with_(nodeId="BgYGBgYGBgYGBgYGBgYGBg"), "decryption_failed")):
            expect_error(code, lambda t=text: ck.open_link(t, lid, secret, nid))
        expect_error("invalid_argument", lambda: ck.open_link(None, lid, secret, nid))

    def names() -> None:
        for good in ("a", "é" * 127, "x" * 255, "...", ". ", "a\\b"):
            ck.check_name(good)
        for bad in ("", ".", "..", "a/b", "/", "a\0", "x" * 256, "é" * 128, "\ud800"):
            expect_error("invalid_argument", lambda n=bad: ck.check_name(n))

    def lengths() -> None:
        for plain, total in ((0, 92), (1, 93), (65535, 65627), (65536, 65628), (65537, 65645),
                             (131072, 131180), (3145733, 3146593)):
            eq(ck.encrypted_length(plain), total, f"T of L={plain}")
            eq(ck.plaintext_length(total), plain, f"L of T={total}")
        for bad in (75, 76, 91, 65644, 65633):
            expect_error("decryption_failed", lambda t=bad: ck.plaintext_length(t))

    r.check("self: base64url canonical decoding", b64_rules)
    r.check("self: link URL parsing", url_rules)
    r.check("self: link record rules", record_rules)
    r.check("self: safe names", names)
    r.check("self: file format lengths", lengths)


def main(argv: list[str]) -> int:
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "EncryptionTests", "Vectors", "keys-v1.json")
    path = argv[0] if argv else default
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: verify_key_vectors.py [path/to/keys-v1.json]", file=sys.stderr)
        return 2
    if not os.path.isfile(path):
        print(f"error: no vector file at {path}", file=sys.stderr)
        return 2
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    folder = os.path.dirname(os.path.abspath(path))
    r = Report()
    r.check("format", lambda: eq(vectors.get("format"), "coffre-keys-v1", "format"))
    for section in ("derivations", "wraps", "attributes", "name_tags", "links", "bad_links"):
        r.check(f"{section}: present", lambda s=section: eq(bool(vectors.get(s)), True, f"{s} is a non-empty list"))
    for case in vectors.get("derivations", []):
        r.check(f"derivation {case.get('info')}", lambda c=case: check_derivation(c))
    for case in vectors.get("wraps", []):
        r.check(f"wrap {case.get('name')}", lambda c=case: check_wrap(c))
    for case in vectors.get("attributes", []):
        r.check(f"attributes {case.get('name')}", lambda c=case: check_attributes(c))
    for i, case in enumerate(vectors.get("name_tags", [])):
        r.check(f"name tag {i} {case.get('name')!r}", lambda c=case: check_name_tag(c))
    links = vectors.get("links", [])
    for case in links:
        r.check(f"link {case.get('name')}", lambda c=case: check_link(c, folder))
    by_id = {link["link_id"]: link for link in links}
    for case in vectors.get("bad_links", []):
        r.check(f"bad link {case.get('name')} ({case.get('error') or 'opens'})",
                lambda c=case: check_bad_link(c, by_id))
    self_checks(r, links)
    print(f"{r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
