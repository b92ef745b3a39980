#!/usr/bin/env python3
"""Open a Coffre share link against a real cluster, without an account.

Written from Docs/keys.md ("Reading a link, step by step", "HTTP a reader uses") and
Docs/format.md alone, on top of coffre_keys.py.

Usage:
    link_client.py URL OUT [--password-env NAME] [--range START-END] [--ca CA.pem] [--json]

A file link writes the decrypted file to OUT (through OUT.partial, renamed only once the final
chunk verified), or with --range only plaintext bytes START..END (inclusive), fetched with
Range requests for the header and the chunks that hold them. A folder link downloads the
folder and everything below it into the new directory OUT (through OUT.partial, renamed at
the end). Content is fetched in ranges of at most 64 chunks (4 MiB), so memory stays bounded.

The fragment of the URL is never sent. Requests go to https://HOST/v1/… (HOST from the URL),
trusting --ca if given and the system roots otherwise, with no Authorization header and no
cookie. With --json, one JSON object {"type", "name", "files", "bytes"} is printed on
success. Errors print "error: CODE: message" on standard error and exit with status 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import ssl
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import coffre_keys as ck  # noqa: E402
from coffre_keys import CoffreError, fail  # noqa: E402

BATCH_CHUNKS = 64
JSON_ANSWER_MAX = 64 << 20      # not specified: a bound on one JSON answer (a folder listing)
TIMEOUT_SECONDS = 120


class Server:
    """HTTPS to the link's host, with one kept-alive connection (Docs/keys.md, "HTTP a reader uses")."""

    def __init__(self, host: str, cafile: str | None):
        self.host = host
        if host.startswith("["):
            name, _, port = host[1:].partition("]")
            port = port[1:]
        else:
            name, _, port = host.partition(":")
        self.name = name
        self.port = int(port) if port else 443
        try:
            self.context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as e:
            raise fail("invalid_argument", f"cannot read the CA file {cafile}: {e}") from None
        self.conn: http.client.HTTPSConnection | None = None

    def _connection(self) -> http.client.HTTPSConnection:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(self.name, self.port, context=self.context,
                                                    timeout=TIMEOUT_SECONDS)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, path: str, headers: dict[str, str], limit: int) -> tuple[int, http.client.HTTPMessage, bytes]:
        """GET path; read at most `limit` bytes of body (more is an error). Retry once on a dropped kept-alive connection."""
        headers = dict(headers)
        headers.setdefault("User-Agent", "coffre-link-client.py")
        for attempt in (0, 1):
            reused = self.conn is not None
            try:
                conn = self._connection()
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                length = resp.getheader("Content-Length")
                if length is not None and (not length.isdigit() or int(length) > limit):
                    self.close()
                    raise fail("decryption_failed", f"the answer to {path} is longer than expected")
                body = resp.read(limit + 1)
                if len(body) > limit:
                    self.close()
                    raise fail("decryption_failed", f"the answer to {path} is longer than expected")
                if resp.will_close:
                    self.close()
                return resp.status, resp.headers, body
            except ssl.SSLCertVerificationError as e:
                self.close()
                raise fail("unavailable", f"cannot verify the server's certificate: {e.verify_message}") from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 0:
                    continue
                raise fail("unavailable", f"the server at {self.host} closed the connection") from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise fail("unavailable", f"cannot reach the server at {self.host}: {e}") from None
        raise AssertionError("unreachable")

    @staticmethod
    def _error(status: int, body: bytes) -> CoffreError:
        """An error answer {"error": {"code", "message"}}; 404 is not_found (Docs/keys.md, "HTTP a reader uses")."""
        code, message = None, None
        try:
            err = json.loads(body)["error"]
            code, message = err.get("code"), err.get("message")
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        if status == 404:
            return fail("not_found", "the link does not exist, was revoked or has expired, or its node was deleted"
                        + (f" ({message})" if isinstance(message, str) else ""))
        if isinstance(code, str) and re.fullmatch(r"[a-z_]{1,64}", code):
            return fail(code, message if isinstance(message, str) else f"HTTP {status}")
        return fail("unavailable", f"the server answered HTTP {status}")

    def get_json(self, path: str) -> dict:
        """GET a JSON answer; 200 or an error with its code."""
        status, _, body = self.request(path, {"Accept": "application/json"}, JSON_ANSWER_MAX)
        if status != 200:
            raise self._error(status, body)
        try:
            obj = json.loads(body)
        except ValueError:
            raise fail("decryption_failed", f"the answer to {path} is not JSON") from None
        if not isinstance(obj, dict):
            raise fail("decryption_failed", f"the answer to {path} is not a JSON object")
        return obj

    def get_range(self, path: str, first: int, last: int, total: int) -> bytes:
        """One Range request; the 206 answer must be exactly bytes first-last/T (Docs/keys.md, "Content")."""
        count = last - first + 1
        status, headers, body = self.request(path, {"Range": f"bytes={first}-{last}",
                                                    "Accept": "application/octet-stream"}, count)
        if status == 206:
            if headers.get("Content-Range") != f"bytes {first}-{last}/{total}" or len(body) != count:
                raise fail("decryption_failed", "a range answer does not match the request "
                           f"(asked bytes {first}-{last}/{total}, got {headers.get('Content-Range')!r}, "
                           f"{len(body)} bytes)")
            return body
        if status == 416 or 200 <= status < 300:
            # Not specified: a 416 (or a 200 ignoring Range) means the stored file is not node.length bytes.
            raise fail("decryption_failed", f"a range answer does not match the request (HTTP {status})")
        raise self._error(status, body)


class Stats:
    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0


def node_field(node: object, what: str) -> dict:
    if not isinstance(node, dict):
        raise fail("decryption_failed", f"the server's {what} is not an object")
    return node


def write_file(server: Server, path: str, file_key: bytes, total: int, out_path: str,
               a: int | None, b: int | None, stats: Stats) -> None:
    """Decrypt [a, b) (or the whole file) into out_path (Docs/keys.md, "A file link", step 10; Docs/format.md, "Random access")."""
    plain_len = ck.plaintext_length(total)
    if a is None:
        a, b = 0, plain_len

    def fetch(first: int, last: int) -> bytes:
        return server.get_range(path, first, last, total)

    written = 0
    with open(out_path, "xb") as f:
        for piece in ck.iter_plaintext(file_key, total, a, b, fetch, BATCH_CHUNKS):
            f.write(piece)
            written += len(piece)
        f.flush()
        os.fsync(f.fileno())
    if written != b - a:
        raise fail("decryption_failed", "the file ended early")
    stats.files += 1
    stats.bytes += written


def open_file_node(node: dict, node_key: bytes, attrs: dict) -> tuple[bytes, int]:
    """The file key and T, with T checked against the attributes' size (Docs/keys.md, "A file link", step 9)."""
    file_key = ck.open_file_key(node, node_key)
    total = node["length"]
    ck.check_size_attribute(attrs, ck.plaintext_length(total))
    return file_key, total


def nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def download_folder(server: Server, link_id: str, root: dict, root_key: bytes, out_dir: str, stats: Stats) -> None:
    """Walk the linked folder, depth first, without recursion (Docs/keys.md, "A folder link", steps 11-12)."""
    os.mkdir(out_dir)
    seen_ids = {root["id"]}
    stack = [(root, root_key, out_dir, 0)]
    while stack:
        folder, folder_key, folder_dir, depth = stack.pop()
        folder_id = folder["id"]
        previous = ck.previous_key(folder, folder_key)
        answer = server.get_json(f"/v1/l/{link_id}/nodes?parent={folder_id}")
        children = answer.get("nodes")
        if not isinstance(children, list):
            raise fail("decryption_failed", "a folder listing has no nodes")
        names: set[str] = set()
        for child in children:
            key, attrs = ck.open_child(child, folder_id, folder_key, previous)
            cid, name = child["id"], attrs["name"]
            if cid in seen_ids:
                # Not in Docs/keys.md: a node listed twice (older records can make a cycle).
                raise fail("decryption_failed", f"node {cid} is listed twice")
            seen_ids.add(cid)
            if nfc(name) in names:
                raise fail("decryption_failed", f"the name {name!r} appears twice in one folder: the listing was altered")
            names.add(nfc(name))
            target = os.path.join(folder_dir, name)
            if child.get("type") == "folder":
                if depth + 1 > ck.TREE_DEPTH_MAX:
                    raise fail("limit_exceeded", f"the folder is more than {ck.TREE_DEPTH_MAX} levels deep")
                os.mkdir(target)
                stack.append((child, key, target, depth + 1))
            elif child.get("type") == "file":
                file_key, total = open_file_node(child, key, attrs)
                write_file(server, f"/v1/l/{link_id}/nodes/{cid}/content", file_key, total, target,
                           None, None, stats)
            else:
                raise fail("invalid_argument", f"unknown node type {child.get('type')!r}")


def parse_range(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"([0-9]{1,18})-([0-9]{1,18})", text)
    if m is None or int(m.group(1)) > int(m.group(2)):
        raise fail("invalid_argument", "--range is START-END, inclusive, with START ≤ END")
    return int(m.group(1)), int(m.group(2)) + 1


def read_password(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    raw = os.environb.get(env_name.encode()) if os.supports_bytes_environ else None
    if raw is None:
        value = os.environ.get(env_name)
        return value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise fail("invalid_argument", f"${env_name} is not UTF-8") from None


def remove_partial(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def run(args: argparse.Namespace) -> dict:
    host, link_id, secret = ck.parse_link_url(args.url)          # step 1
    password = read_password(args.password_env)
    byte_range = parse_range(args.range) if args.range is not None else None
    server = Server(host, args.ca)
    try:
        answer = server.get_json(f"/v1/l/{link_id}")              # step 2
        link = node_field(answer.get("link"), "link")
        node = node_field(answer.get("node"), "node")
        node_id = ck.check_node_id(node.get("id"))
        node_key = ck.open_link(link.get("record"), link_id, secret, node_id, password)   # steps 3-6
        attrs = ck.open_attributes(node.get("attributes"), node_key, node_id)            # step 7
        ck.check_name(attrs["name"])
        kind = node.get("type")                                                           # step 8
        stats = Stats()
        partial = args.out + ".partial"
        if kind == "file":
            file_key, total = open_file_node(node, node_key, attrs)                       # step 9
            a, b = byte_range if byte_range is not None else (None, None)
            if a is not None:
                ck.range_plan(total, a, b)
            remove_partial(partial)
            try:
                write_file(server, f"/v1/l/{link_id}/content", file_key, total, partial, a, b, stats)   # step 10
                os.replace(partial, args.out)
            except BaseException:
                remove_partial(partial)
                raise
        elif kind == "folder":
            if byte_range is not None:
                raise fail("invalid_argument", "--range is for a file link; this is a folder")
            if os.path.lexists(args.out):
                raise fail("invalid_argument", f"{args.out} exists; a folder is downloaded into a new directory")
            if os.path.lexists(partial):
                raise fail("invalid_argument", f"{partial} exists (left by an earlier run?); remove it first")
            try:
                download_folder(server, link_id, node, node_key, partial, stats)          # steps 11-12
                os.rename(partial, args.out)
            except BaseException:
                remove_partial(partial)
                raise
        else:
            raise fail("invalid_argument", f"unknown node type {kind!r}")
        return {"type": kind, "name": attrs["name"], "files": stats.files, "bytes": stats.bytes}
    finally:
        server.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Open a Coffre share link and save what it gives.")
    parser.add_argument("url", help="https://HOST/l/LINKID#SECRET")
    parser.add_argument("out", help="the file (file link) or new directory (folder link) to write")
    parser.add_argument("--password-env", metavar="NAME", help="read the link password from $NAME")
    parser.add_argument("--range", metavar="START-END", help="plaintext bytes START..END, inclusive")
    parser.add_argument("--ca", metavar="CA.pem", help="trust this CA instead of the system roots")
    parser.add_argument("--json", action="store_true", help="print one JSON object on success")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except CoffreError as e:
        print(f"error: {e.code}: {e.message}", file=sys.stderr)
        return 1
    except OSError as e:   # local file system; not a link error, so not one of the link codes
        print(f"error: io_error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{result['type']} {result['name']!r}: {result['files']} file(s), {result['bytes']} bytes -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
