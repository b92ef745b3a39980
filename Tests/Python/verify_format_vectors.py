#!/usr/bin/env python3
"""An independent decoder and encoder for Coffre's file format v1, from Docs/format.md alone.

It checks the committed test vectors: every valid vector must decrypt to its plaintext and
re-encrypt to the same bytes; every invalid vector, and a set of damaged copies made here,
must be refused. Uses only the standard library and the `cryptography` package.

Usage: verify_format_vectors.py [path/to/format-v1.json]
Prints one line per check, then "N passed, M failed"; exits 0 only when nothing failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"COFFRE"
VERSION = 1
SUITE = 1
CHUNK = 65536
TAG = 16
SEALED_CHUNK = CHUNK + TAG
HEADER = 76


class DecryptionFailed(Exception):
    """The one error of the format: damaged data or a wrong key."""


def hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info).derive(key)


def header_bytes(file_key: bytes, salt: bytes) -> bytes:
    body = MAGIC + bytes([VERSION, SUITE]) + CHUNK.to_bytes(4, "big") + salt
    mac_key = hkdf(file_key, b"", b"coffre/v1/header")
    return body + hmac.new(mac_key, body, hashlib.sha256).digest()


def nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def encrypt(file_key: bytes, salt: bytes, plaintext: bytes) -> bytes:
    header = header_bytes(file_key, salt)
    aead = AESGCM(hkdf(file_key, salt, b"coffre/v1/payload"))
    pieces = [plaintext[i : i + CHUNK] for i in range(0, len(plaintext), CHUNK)] or [b""]
    out = [header]
    for index, piece in enumerate(pieces):
        out.append(aead.encrypt(nonce(index, index == len(pieces) - 1), piece, None))
    return b"".join(out)


def decrypt(file_key: bytes, data: bytes) -> bytes:
    if len(data) < HEADER:
        raise DecryptionFailed()
    salt = data[12:44]
    if not hmac.compare_digest(header_bytes(file_key, salt), data[:HEADER]):
        raise DecryptionFailed()
    payload = data[HEADER:]
    if not payload:
        raise DecryptionFailed()
    aead = AESGCM(hkdf(file_key, salt, b"coffre/v1/payload"))
    pieces = [payload[i : i + SEALED_CHUNK] for i in range(0, len(payload), SEALED_CHUNK)]
    final = pieces[-1]
    if len(final) < TAG or (len(final) == TAG and len(pieces) > 1):
        raise DecryptionFailed()
    out = []
    for index, piece in enumerate(pieces):
        try:
            out.append(aead.decrypt(nonce(index, index == len(pieces) - 1), piece, None))
        except Exception as error:  # InvalidTag: the one uniform failure
            raise DecryptionFailed() from error
    return b"".join(out)


def expected_length(plaintext_length: int) -> int:
    chunks = max(1, -(-plaintext_length // CHUNK))
    return HEADER + plaintext_length + TAG * chunks


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool) -> None:
        print(("ok    " if ok else "FAIL  ") + name)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def refused(self, name: str, key: bytes, data: bytes) -> None:
        try:
            decrypt(key, data)
        except DecryptionFailed:
            self.check(name, True)
        else:
            self.check(name + " (was accepted)", False)


def damaged_copies(data: bytes, key: bytes) -> list[tuple[str, bytes, bytes]]:
    """Damage a valid file of at least three chunks in every way the spec forbids."""
    flip = lambda at: data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]  # noqa: E731
    c0 = data[HEADER : HEADER + SEALED_CHUNK]
    c1 = data[HEADER + SEALED_CHUNK : HEADER + 2 * SEALED_CHUNK]
    rest = data[HEADER + 2 * SEALED_CHUNK :]
    return [
        ("bit flipped in the header", flip(7), key),
        ("bit flipped in the salt", flip(30), key),
        ("bit flipped in the header MAC", flip(60), key),
        ("bit flipped in a chunk body", flip(HEADER + 100), key),
        ("bit flipped in a tag", flip(HEADER + SEALED_CHUNK - 1), key),
        ("bit flipped in the final tag", flip(len(data) - 1), key),
        ("truncated at a chunk boundary", data[: HEADER + 2 * SEALED_CHUNK], key),
        ("truncated mid-chunk", data[: HEADER + SEALED_CHUNK + 77], key),
        ("chunks swapped", data[:HEADER] + c1 + c0 + rest, key),
        ("one trailing byte", data + b"\x00", key),
        ("header only", data[:HEADER], key),
        ("wrong key", data, bytes(32)),
    ]


def main(argv: list[str]) -> int:
    default = Path(__file__).resolve().parents[1] / "EncryptionTests" / "Vectors" / "format-v1.json"
    path = Path(argv[1]) if len(argv) > 1 else default
    if not path.is_file():
        print(f"error: no vector file at {path}", file=sys.stderr)
        return 2
    spec = json.loads(path.read_text())
    folder = path.parent
    checks = Checks()
    checks.check("format is coffre-v1", spec.get("format") == "coffre-v1")
    multi_chunk: tuple[bytes, bytes] | None = None
    for vector in spec["vectors"]:
        name = vector["name"]
        key = bytes.fromhex(vector["file_key"])
        salt = bytes.fromhex(vector["salt"])
        length = vector["plaintext_length"]
        plaintext = bytes(i % 251 for i in range(length))
        data = (folder / vector["ciphertext_file"]).read_bytes()
        checks.check(f"{name}: sha256", hashlib.sha256(data).hexdigest() == vector["ciphertext_sha256"])
        checks.check(f"{name}: length formula", len(data) == expected_length(length))
        try:
            checks.check(f"{name}: decrypts to the pattern", decrypt(key, data) == plaintext)
        except DecryptionFailed:
            checks.check(f"{name}: decrypts to the pattern (refused)", False)
        checks.check(f"{name}: re-encrypts to the same bytes", encrypt(key, salt, plaintext) == data)
        if length > 2 * CHUNK and multi_chunk is None:
            multi_chunk = (data, key)
    for vector in spec["invalid"]:
        data = (folder / vector["ciphertext_file"]).read_bytes()
        checks.refused(f"invalid {vector['name']}: refused", bytes.fromhex(vector["file_key"]), data)
    if multi_chunk is None:
        checks.check("a vector of three chunks or more exists", False)
    else:
        for name, data, key in damaged_copies(*multi_chunk):
            checks.refused(f"damaged copy, {name}: refused", key, data)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
