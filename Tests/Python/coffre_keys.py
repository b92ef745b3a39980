"""Coffre key formats and encrypted file format, version 1: an independent reader.

Written from Docs/keys.md and Docs/format.md alone (not from the Swift sources, nor from the
browser reader), with the Python standard library, `cryptography` (AESGCM, HKDF, HMAC) and
`hashlib.pbkdf2_hmac`. Every function names the section of the documents it implements.

Errors are raised as `CoffreError(code, message)` with the stable codes of Docs/keys.md
("Errors"): decryption_failed, unsupported_version, weak_parameters, limit_exceeded,
invalid_argument, password_required, not_found (and codes passed on from the server).
"""

from __future__ import annotations

import base64
import hashlib
import hmac as _hmac
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class CoffreError(Exception):
    """An error with one of the stable codes of Docs/keys.md, "Errors"."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def fail(code: str, message: str) -> CoffreError:
    """Build a CoffreError (Docs/keys.md, "Errors")."""
    return CoffreError(code, message)


# --- Constants -------------------------------------------------------------------------

KEY_SIZE = 32
WRAPPED_KEY_SIZE = 61
LINK_ID_BYTES = 16
SECRET_BYTES = 32
PASSWORD_SALT_BYTES = 16
ITERATIONS_MIN = 210_000
ITERATIONS_MAX = 10_000_000
ATTRIBUTES_MIN = 29
ATTRIBUTES_MAX = 65_536 + 29
TREE_DEPTH_MAX = 1000
NODE_ID_MIN_BYTES = 8
NODE_ID_MAX_BYTES = 32

HEADER_SIZE = 76
CHUNK_SIZE = 65_536
TAG_SIZE = 16
SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE
HEADER_PREFIX = bytes.fromhex("434f46465245" "01" "01" "00010000")

DECRYPTION_MESSAGE = "decryption failed: the data is damaged or the key is wrong"


# --- Building blocks ---------------------------------------------------------------------

_B64_CHARS = re.compile(r"[A-Za-z0-9_-]*")


def b64encode(data: bytes) -> str:
    """base64url without padding (Docs/keys.md, "base64url")."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: Any, code: str = "invalid_argument", what: str = "value") -> bytes:
    """Canonical base64url decoding; refuses other characters, bad lengths, non-canonical text (Docs/keys.md, "base64url")."""
    if not isinstance(text, str) or _B64_CHARS.fullmatch(text) is None:
        raise fail(code, f"{what} is not base64url text")
    if len(text) % 4 == 1:
        raise fail(code, f"{what} has an impossible base64url length")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64encode(data) != text:
        raise fail(code, f"{what} is not canonical base64url")
    return data


def b64decode_sized(text: Any, size: int, code: str, what: str) -> bytes:
    """Canonical base64url of exactly `size` bytes (Docs/keys.md, "base64url" and "Lengths")."""
    data = b64decode(text, code, what)
    if len(data) != size:
        raise fail(code, f"{what} is {len(data)} bytes, not {size}")
    return data


def _bytes(field: bytes | str) -> bytes:
    """A text field is its UTF-8 bytes (Docs/keys.md, "Fields")."""
    return field.encode("utf-8") if isinstance(field, str) else bytes(field)


def fields(*items: bytes | str) -> bytes:
    """Fields(f1, …, fn) = len32(f1) || f1 || … (Docs/keys.md, "Fields")."""
    out = bytearray()
    for item in items:
        b = _bytes(item)
        out += len(b).to_bytes(4, "big") + b
    return bytes(out)


def hkdf(ikm: bytes, salt: bytes | None, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256, Extract then Expand; an empty salt is None (Docs/keys.md, "Notation"; Docs/format.md, "Keys")."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)


def derive(key: bytes, purpose: str) -> bytes:
    """Derive(K, purpose) = HKDF(K, empty salt, "coffre/v1/" || purpose, 32) (Docs/keys.md, "Derive")."""
    return hkdf(key, None, b"coffre/v1/" + purpose.encode("ascii"), 32)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256, 32 bytes (Docs/format.md, "Notation")."""
    h = HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


# --- Wrapped keys ------------------------------------------------------------------------

def wrap_ad(type_: str, owner: str, subject: str) -> bytes:
    """AD(type, owner, subject) = Fields("coffre/v1/wrap", type, owner, subject) (Docs/keys.md, "Sealing and opening")."""
    return fields("coffre/v1/wrap", type_, owner, subject)


def wrap(key: bytes, wrapping_key: bytes, type_: str, owner: str, subject: str, nonce: bytes) -> bytes:
    """wrap(key, W, ctx) = 01 || n || Seal(Derive(W, "key-wrap"), n, key, AD) (Docs/keys.md, "Sealing and opening")."""
    assert len(key) == KEY_SIZE and len(nonce) == 12
    sealed = AESGCM(derive(wrapping_key, "key-wrap")).encrypt(nonce, key, wrap_ad(type_, owner, subject))
    return b"\x01" + nonce + sealed


def unwrap(wrapped: bytes, wrapping_key: bytes, type_: str, owner: str, subject: str) -> bytes:
    """Open a 61-byte wrapped key under Derive(W, "key-wrap") and its context (Docs/keys.md, "Wrapped keys")."""
    if len(wrapped) != WRAPPED_KEY_SIZE or wrapped[0] != 1:
        raise fail("decryption_failed", "a wrapped key is not 61 bytes starting with 01")
    try:
        key = AESGCM(derive(wrapping_key, "key-wrap")).decrypt(
            wrapped[1:13], wrapped[13:], wrap_ad(type_, owner, subject))
    except InvalidTag:
        raise fail("decryption_failed", "a wrapped key does not open") from None
    if len(key) != KEY_SIZE:
        raise fail("decryption_failed", "a wrapped key is not 32 bytes")
    return key


def unwrap_text(text: Any, wrapping_key: bytes, type_: str, owner: str, subject: str) -> bytes:
    """Unwrap a wrapped key as it travels, base64url of 61 bytes (Docs/keys.md, "How wrapped keys travel")."""
    w = b64decode_sized(text, WRAPPED_KEY_SIZE, "decryption_failed", "a wrapped key")
    return unwrap(w, wrapping_key, type_, owner, subject)


# --- Attributes and names ----------------------------------------------------------------

def attributes_ad(node_id: str) -> bytes:
    """Fields("coffre/v1/attributes", node id) (Docs/keys.md, "Attributes")."""
    return fields("coffre/v1/attributes", node_id)


def pad_attributes_json(obj: dict) -> bytes:
    """Sorted keys, no whitespace, raw UTF-8, spaces up to a multiple of 64 (Docs/keys.md, "Attributes", sealing steps 1-3)."""
    js = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return js + b" " * ((64 - len(js) % 64) % 64)


def seal_attributes(padded: bytes, node_key: bytes, node_id: str, nonce: bytes) -> bytes:
    """blob = 01 || n || Seal(Derive(node key, "attributes"), n, padded json, AD) (Docs/keys.md, "Attributes", step 4)."""
    return b"\x01" + nonce + AESGCM(derive(node_key, "attributes")).encrypt(nonce, padded, attributes_ad(node_id))


def open_attributes_plaintext(blob: bytes, node_key: bytes, node_id: str) -> bytes:
    """Open an attributes blob to its padded JSON bytes (Docs/keys.md, "Attributes", opening)."""
    if not ATTRIBUTES_MIN <= len(blob) <= ATTRIBUTES_MAX or blob[0] != 1:
        raise fail("decryption_failed", "the attributes blob has a wrong size or version")
    try:
        return AESGCM(derive(node_key, "attributes")).decrypt(blob[1:13], blob[13:], attributes_ad(node_id))
    except InvalidTag:
        raise fail("decryption_failed", "the attributes do not open") from None


def open_attributes(blob_text: Any, node_key: bytes, node_id: str) -> dict:
    """Open TreeNodeInfo.attributes: UTF-8 JSON object with a string name, null as absent (Docs/keys.md, "Attributes", opening)."""
    blob = b64decode(blob_text, "decryption_failed", "the attributes")
    plain = open_attributes_plaintext(blob, node_key, node_id)
    try:
        obj = json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise fail("decryption_failed", "the attributes are not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise fail("decryption_failed", "the attributes are not a JSON object")
    obj = {k: v for k, v in obj.items() if v is not None}
    if not isinstance(obj.get("name"), str):
        raise fail("decryption_failed", "the attributes have no name")
    return obj


def check_name(name: str) -> str:
    """A safe name: 1 to 255 bytes of UTF-8, not . or .., no /, no NUL (Docs/keys.md, "Attributes")."""
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise fail("invalid_argument", "a name is not valid Unicode") from None
    if not 1 <= len(raw) <= 255 or name in (".", "..") or "/" in name or "\0" in name:
        raise fail("invalid_argument", f"{name!r} is not a safe file name")
    return name


def name_tag(name: str, folder_key: bytes) -> str:
    """b64(HMAC(Derive(folder key, "name-tags"), UTF-8(NFC(name)))[0..15]) (Docs/keys.md, "Name tags")."""
    tag = hmac_sha256(derive(folder_key, "name-tags"), unicodedata.normalize("NFC", name).encode("utf-8"))
    return b64encode(tag[:16])


# --- Share links ---------------------------------------------------------------------------

_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")


def parse_link_url(url: str) -> tuple[str, str, bytes]:
    """https://HOST/l/LINKID#SECRET → (HOST, LINKID text, secret) (Docs/keys.md, "Parsing a link URL")."""
    prefix = "https://"
    if not isinstance(url, str) or not url.startswith(prefix):
        raise fail("invalid_argument", "a link starts with https://")
    address, sep, fragment = url[len(prefix):].partition("#")
    if not sep:
        raise fail("invalid_argument", "the link has no secret (the part after #)")
    parts = address.split("/")
    if len(parts) != 3 or not parts[0] or parts[1] != "l":
        raise fail("invalid_argument", "a link has the form https://HOST/l/LINKID#SECRET")
    host, _, link_id = parts
    # Not in the document: it only asks for a non-empty HOST. Refuse user info, spaces,
    # queries and other text that is not a host name, an IP address or [IPv6], with a port.
    m = _HOST.fullmatch(host)
    if m is None or (m.group("port") is not None and not 0 < int(m.group("port")) < 65536):
        raise fail("invalid_argument", "the link's host is not a host name with an optional port")
    b64decode_sized(link_id, LINK_ID_BYTES, "invalid_argument", "the link id")
    secret = b64decode_sized(fragment, SECRET_BYTES, "invalid_argument", "the link secret")
    return host, link_id, secret


def _is_int(v: Any) -> bool:
    """A JSON integer: a number written without fraction or exponent (Docs/keys.md, "The link record")."""
    return isinstance(v, int) and not isinstance(v, bool)


def parse_record(record_text: Any, url_link_id: str, node_id: Any) -> dict:
    """Read link.record, steps 1-4 in order (Docs/keys.md, "The link record")."""
    if not isinstance(record_text, str):
        raise fail("invalid_argument", "link.record is not a string")
    try:
        record = json.loads(record_text)
    except ValueError:
        raise fail("invalid_argument", "the link record is not JSON") from None
    if not isinstance(record, dict):
        raise fail("invalid_argument", "the link record is not a JSON object")
    version = record.get("version")
    if not _is_int(version):
        raise fail("invalid_argument", "the link record has no integer version")
    if version != 1:
        raise fail("unsupported_version", f"link record version {version} is not supported")
    if not isinstance(record.get("linkId"), str) or not isinstance(record.get("nodeId"), str):
        raise fail("invalid_argument", "the link record's linkId or nodeId is not a string")
    w = b64decode_sized(record.get("wrappedNodeKey"), WRAPPED_KEY_SIZE, "invalid_argument",
                        "the record's wrappedNodeKey")
    if w[0] != 1:
        raise fail("invalid_argument", "the record's wrappedNodeKey is not version 01")
    password = record.get("password")
    if password is not None:
        if not (isinstance(password, dict) and isinstance(password.get("kdf"), str)
                and _is_int(password.get("iterations")) and isinstance(password.get("salt"), str)):
            raise fail("invalid_argument", "the link record's password is malformed")
    if record["linkId"] != url_link_id:
        raise fail("decryption_failed", "the link record is for another link")
    if record["nodeId"] != node_id:
        raise fail("decryption_failed", "the link record is for another node")
    return {"linkId": record["linkId"], "nodeId": record["nodeId"], "wrapped": w, "password": password}


def stretch_password(password: str | None, params: dict) -> bytes:
    """Checks in order, then PBKDF2-HMAC-SHA512(UTF-8(NFC(password)), salt, iterations, 32) (Docs/keys.md, "Link passwords")."""
    if password is None:
        raise fail("password_required", "this link has a password and none was given")
    if params["kdf"] != "pbkdf2-sha512":
        raise fail("unsupported_version", f"password algorithm {params['kdf']!r} is not supported")
    salt = b64decode_sized(params["salt"], PASSWORD_SALT_BYTES, "invalid_argument", "the password salt")
    iterations = params["iterations"]
    if iterations < ITERATIONS_MIN:
        raise fail("weak_parameters", f"{iterations} PBKDF2 rounds is under the floor of {ITERATIONS_MIN}")
    if iterations > ITERATIONS_MAX:
        raise fail("limit_exceeded", f"{iterations} PBKDF2 rounds is over the ceiling of {ITERATIONS_MAX}")
    try:
        pw = unicodedata.normalize("NFC", password).encode("utf-8")
    except UnicodeEncodeError:
        raise fail("invalid_argument", "the password is not valid Unicode") from None
    return hashlib.pbkdf2_hmac("sha512", pw, salt, iterations, 32)


def link_key(secret: bytes, link_id: str, stretched: bytes | None = None) -> bytes:
    """HKDF(secret [|| stretched], salt = UTF-8(link id), info "coffre/v1/link", 32) (Docs/keys.md, "Link key and the linked node key")."""
    material = secret + (stretched or b"")
    return hkdf(material, link_id.encode("ascii"), b"coffre/v1/link", 32)


def open_link(record_text: Any, url_link_id: str, secret: bytes, node_id: Any,
              password: str | None = None) -> bytes:
    """Record → (password) → link key → the linked node key (Docs/keys.md, "Opening the link", steps 3-6)."""
    record = parse_record(record_text, url_link_id, node_id)
    stretched = None
    if record["password"] is not None:
        stretched = stretch_password(password, record["password"])
    # A password given for a link whose record has none is ignored.
    key = link_key(secret, url_link_id, stretched)
    try:
        return unwrap(record["wrapped"], key, "link", url_link_id, record["nodeId"])
    except CoffreError:
        why = ("wrong password, or the link was altered" if stretched is not None
               else "wrong link secret, or the link was altered")
        raise fail("decryption_failed", why) from None


def check_node_id(node_id: Any) -> str:
    """A node id is base64url of 8 to 32 bytes (Docs/keys.md, "Ids"); not a rule the reading steps state."""
    data = b64decode(node_id, "decryption_failed", "a node id")
    if not NODE_ID_MIN_BYTES <= len(data) <= NODE_ID_MAX_BYTES:
        raise fail("decryption_failed", "a node id has the wrong size")
    return node_id


def open_file_key(node: dict, node_key: bytes) -> bytes:
    """fileKey = unwrap(fileKey, node key, ("file-key", node id, node id)) (Docs/keys.md, "A file link", step 9)."""
    if "fileKey" not in node or "length" not in node:
        raise fail("decryption_failed", "a file record has no fileKey or length")
    if not _is_int(node["length"]) or node["length"] < 0:
        raise fail("decryption_failed", "a file record's length is not an integer")
    return unwrap_text(node["fileKey"], node_key, "file-key", node["id"], node["id"])


def previous_key(folder: dict, folder_key: bytes) -> bytes | None:
    """A folder whose key is changing: its previous key, wrapped under the current one (Docs/keys.md, "Key rotation")."""
    if folder.get("previousKey") is None:
        return None
    return unwrap_text(folder["previousKey"], folder_key, "previous-key", folder["id"], folder["id"])


def open_child(child: Any, folder_id: str, folder_key: bytes, previous: bytes | None = None) -> tuple[bytes, dict]:
    """Check parent, unwrap the child's node key, open and check its attributes (Docs/keys.md, "A folder link", step 12.1-12.3).

    While the folder's key changes, a child not re-wrapped yet opens under the previous key."""
    if not isinstance(child, dict):
        raise fail("decryption_failed", "a child record is not an object")
    if child.get("parent") != folder_id:
        raise fail("decryption_failed", "a child is listed under another folder than the one asked for")
    cid = check_node_id(child.get("id"))
    try:
        key = unwrap_text(child.get("wrappedKey"), folder_key, "node-key", folder_id, cid)
    except CoffreError:
        if previous is None:
            raise
        key = unwrap_text(child.get("wrappedKey"), previous, "node-key", folder_id, cid)
    attrs = open_attributes(child.get("attributes"), key, cid)
    check_name(attrs["name"])
    return key, attrs


def check_size_attribute(attrs: dict, plaintext_len: int) -> None:
    """If the attributes give `size`, it must be the plaintext length from T (Docs/keys.md, "Attributes"; not a stated rule)."""
    size = attrs.get("size")
    if size is None:
        return
    if not _is_int(size) or size != plaintext_len:
        raise fail("decryption_failed", f"the file is {plaintext_len} bytes but its attributes say {size!r}")


# --- The file format ------------------------------------------------------------------------

def header_key(file_key: bytes) -> bytes:
    """HKDF(file key, empty, "coffre/v1/header", 32) (Docs/format.md, "Keys")."""
    return hkdf(file_key, None, b"coffre/v1/header", 32)


def payload_key(file_key: bytes, salt: bytes) -> bytes:
    """HKDF(file key, header salt, "coffre/v1/payload", 32) (Docs/format.md, "Keys")."""
    return hkdf(file_key, salt, b"coffre/v1/payload", 32)


def check_header(file_key: bytes, header: bytes) -> bytes:
    """Compare all 76 bytes with the header an encoder would write, in constant time; return the payload key (Docs/format.md, "Decoding", rule 1)."""
    if len(header) < HEADER_SIZE:
        raise fail("decryption_failed", DECRYPTION_MESSAGE)
    salt = bytes(header[12:44])
    body = HEADER_PREFIX + salt
    expected = body + hmac_sha256(header_key(file_key), body)
    if not _hmac.compare_digest(expected, bytes(header[:HEADER_SIZE])):
        raise fail("decryption_failed", DECRYPTION_MESSAGE)
    return payload_key(file_key, salt)


def chunk_nonce(index: int, final: bool) -> bytes:
    """11-byte big-endian index || final flag (Docs/format.md, "Nonce")."""
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def open_chunk(pkey: bytes, index: int, final: bool, piece: bytes) -> bytes:
    """AES-GCM-Open under the payload key, the chunk nonce, empty AD (Docs/format.md, "Sealing", "Decoding" rule 5)."""
    try:
        return AESGCM(pkey).decrypt(chunk_nonce(index, final), bytes(piece), None)
    except InvalidTag:
        raise fail("decryption_failed", DECRYPTION_MESSAGE) from None


def plaintext_length(total: int) -> int:
    """L from the encrypted length T, refusing invalid T (Docs/format.md, "Lengths", inverse)."""
    if total < HEADER_SIZE + TAG_SIZE:
        raise fail("decryption_failed", DECRYPTION_MESSAGE)
    p = total - HEADER_SIZE
    full, rest = divmod(p, SEALED_CHUNK)
    if rest == 0:
        return full * CHUNK_SIZE
    if rest > TAG_SIZE:
        return full * CHUNK_SIZE + rest - TAG_SIZE
    if rest == TAG_SIZE and full == 0:
        return 0
    raise fail("decryption_failed", DECRYPTION_MESSAGE)


def chunk_count(plain_len: int) -> int:
    """n = max(1, ceil(L / 65536)) (Docs/format.md, "Lengths")."""
    return max(1, -(-plain_len // CHUNK_SIZE))


def encrypted_length(plain_len: int) -> int:
    """T = 76 + L + 16·n (Docs/format.md, "Lengths")."""
    return HEADER_SIZE + plain_len + TAG_SIZE * chunk_count(plain_len)


def decrypt_file(file_key: bytes, data: bytes) -> bytes:
    """Whole-file decoding, rules 1-5 in order (Docs/format.md, "Decoding")."""
    pkey = check_header(file_key, data)
    payload = memoryview(data)[HEADER_SIZE:]
    if len(payload) == 0:
        raise fail("decryption_failed", DECRYPTION_MESSAGE)
    pieces = [payload[i:i + SEALED_CHUNK] for i in range(0, len(payload), SEALED_CHUNK)]
    last = len(pieces) - 1
    if len(pieces[last]) < TAG_SIZE or (len(pieces[last]) == TAG_SIZE and last != 0):
        raise fail("decryption_failed", DECRYPTION_MESSAGE)
    return b"".join(open_chunk(pkey, i, i == last, p) for i, p in enumerate(pieces))


def chunk_offsets(total: int, first: int, last: int) -> tuple[int, int]:
    """Ciphertext bytes S..E (inclusive) of chunks first..last of a file of T bytes (Docs/format.md, "Random access")."""
    start = HEADER_SIZE + first * SEALED_CHUNK
    end = min(total, HEADER_SIZE + (last + 1) * SEALED_CHUNK) - 1
    return start, end


def range_plan(total: int, a: int, b: int) -> tuple[int, int, int]:
    """For plaintext [a, b): L, and the first and last chunk to fetch (Docs/keys.md, "Content"; Docs/format.md, "Random access")."""
    plain_len = plaintext_length(total)
    if not 0 <= a < b <= plain_len:
        raise fail("invalid_argument", f"the range [{a}, {b}) is not within the file's {plain_len} bytes")
    return plain_len, a // CHUNK_SIZE, (b - 1) // CHUNK_SIZE


Fetch = Callable[[int, int], bytes]   # fetch(first, last) → ciphertext bytes first..last inclusive


def iter_plaintext(file_key: bytes, total: int, a: int, b: int, fetch: Fetch,
                   batch_chunks: int = 64) -> Iterator[bytes]:
    """Plaintext bytes [a, b) by random access, fetching the header and at most batch_chunks chunks at a time (Docs/format.md, "Random access"; Docs/keys.md, "Content").

    With a = 0 and b = L (or an empty file, a = b = 0) this reads the whole file, final
    chunk included, so the output is complete once the iterator ends without error.
    """
    plain_len = plaintext_length(total)
    n = chunk_count(plain_len)
    if a == b == plain_len == 0:
        first, last = 0, 0
    else:
        _, first, last = range_plan(total, a, b)
    header = fetch(0, HEADER_SIZE - 1)
    if len(header) != HEADER_SIZE:
        raise fail("decryption_failed", DECRYPTION_MESSAGE)
    pkey = check_header(file_key, header)
    for batch_first in range(first, last + 1, batch_chunks):
        batch_last = min(last, batch_first + batch_chunks - 1)
        s, e = chunk_offsets(total, batch_first, batch_last)
        data = memoryview(fetch(s, e))
        if len(data) != e - s + 1:
            raise fail("decryption_failed", DECRYPTION_MESSAGE)
        for i in range(batch_first, batch_last + 1):
            off = (i - batch_first) * SEALED_CHUNK
            piece = data[off:off + SEALED_CHUNK]
            plain = open_chunk(pkey, i, i == n - 1, piece)
            lo = max(a - i * CHUNK_SIZE, 0)
            hi = min(b - i * CHUNK_SIZE, len(plain))
            if hi > lo:
                yield plain[lo:hi]


def read_range(file_key: bytes, total: int, a: int, b: int, fetch: Fetch) -> bytes:
    """Plaintext bytes [a, b) as one value (Docs/format.md, "Random access")."""
    return b"".join(iter_plaintext(file_key, total, a, b, fetch))
