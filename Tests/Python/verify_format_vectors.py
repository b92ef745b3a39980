#!/usr/bin/env python3
"""An independent encoder and decoder for Coffre's encrypted file format v1.

Written from Docs/format.md alone (not from the Swift sources), with the Python standard
library and the `cryptography` package only. It checks the test vectors that the Swift
encoder writes to Tests/EncryptionTests/Vectors/format-v1.json:

* every valid vector has the recorded SHA-256, the length the formula predicts, decrypts
  (whole, streamed in odd-sized pieces, and chunk by chunk through random access) to its
  plaintext, and re-encrypts under its key and salt to exactly the same bytes;
* every invalid vector is refused with the format's single error;
* damaged copies of the multi-chunk vectors, made here, are refused as well.

Usage:
    verify_format_vectors.py [path/to/format-v1.json]
    verify_format_vectors.py --self-test

Prints one line per check, then "N passed, M failed". Exit status: 0 when every check
passed, 1 when one failed, 2 when the vector file is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from hmac import compare_digest
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# --- Constants (Docs/format.md, "Header" and "Chunks") -------------------------------------

MAGIC = b"COFFRE"  # 43 4F 46 46 52 45
VERSION = 0x01
SUITE = 0x01  # AES-256-GCM, HKDF-SHA256, HMAC-SHA256
CHUNK_SIZE = 65536  # plaintext bytes per chunk
TAG_SIZE = 16
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE  # 65552
SALT_SIZE = 32
MAC_SIZE = 32
HEADER_SIZE = 76
FILE_KEY_SIZE = 32
HEADER_INFO = b"coffre/v1/header"
PAYLOAD_INFO = b"coffre/v1/payload"
ERROR_MESSAGE = "decryption failed: the data is damaged or the key is wrong"

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VECTORS = REPO_ROOT / "Tests" / "EncryptionTests" / "Vectors" / "format-v1.json"


class DecryptionFailed(Exception):
    """The format's one decryption error (code `decryption_failed`), whatever the cause."""

    code = "decryption_failed"

    def __init__(self) -> None:
        super().__init__(ERROR_MESSAGE)


# --- Primitives ---------------------------------------------------------------------------


def hkdf_sha256(ikm: bytes, salt: bytes | None, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869). `salt=None` means the empty salt, i.e. 32 zero bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104)."""
    mac = HMAC(key, hashes.SHA256())
    mac.update(message)
    return mac.finalize()


def header_key(file_key: bytes) -> bytes:
    """header_key = HKDF(IKM = file key, salt = empty, info = "coffre/v1/header", L = 32)."""
    return hkdf_sha256(file_key, None, HEADER_INFO)


def payload_key(file_key: bytes, salt: bytes) -> bytes:
    """payload_key = HKDF(IKM = file key, salt = header salt, info = "coffre/v1/payload", L = 32)."""
    return hkdf_sha256(file_key, salt, PAYLOAD_INFO)


def check_file_key(file_key: bytes) -> None:
    """A file key is exactly 32 bytes; anything else is a caller error, not a decryption failure."""
    if len(file_key) != FILE_KEY_SIZE:
        raise ValueError(f"a file key is {FILE_KEY_SIZE} bytes, got {len(file_key)}")


def encode_header(file_key: bytes, salt: bytes) -> bytes:
    """The 76-byte header: magic, version, suite, chunk size, salt, then the HMAC of those 44 bytes."""
    check_file_key(file_key)
    if len(salt) != SALT_SIZE:
        raise ValueError(f"the salt is {SALT_SIZE} bytes, got {len(salt)}")
    body = MAGIC + bytes([VERSION, SUITE]) + CHUNK_SIZE.to_bytes(4, "big") + salt
    return body + hmac_sha256(header_key(file_key), body)


def nonce(index: int, final: bool) -> bytes:
    """12-byte nonce: the chunk index as an 88-bit big-endian integer, then 01 (final) or 00."""
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


# --- Lengths (Docs/format.md, "Lengths") ----------------------------------------------------


def chunk_count(plaintext_length: int) -> int:
    """n = max(1, ceil(L / 65536))."""
    return max(1, -(-plaintext_length // CHUNK_SIZE))


def ciphertext_length(plaintext_length: int) -> int:
    """76 + L + 16 n."""
    return HEADER_SIZE + plaintext_length + TAG_SIZE * chunk_count(plaintext_length)


def plaintext_length(total: int) -> int | None:
    """The inverse of `ciphertext_length`, or None when no plaintext gives a file of `total` bytes."""
    if total < HEADER_SIZE + TAG_SIZE:
        return None
    payload = total - HEADER_SIZE
    full, rest = divmod(payload, SEALED_CHUNK_SIZE)
    if rest == 0:
        return full * CHUNK_SIZE
    if rest > TAG_SIZE or (rest == TAG_SIZE and full == 0):
        return full * CHUNK_SIZE + rest - TAG_SIZE
    return None


# --- Encoder --------------------------------------------------------------------------------


def plaintext_chunks(plaintext: bytes) -> list[bytes]:
    """Full 64 KiB chunks, then a final one of 1..65536 bytes; one empty chunk for an empty file."""
    return [plaintext[i : i + CHUNK_SIZE] for i in range(0, len(plaintext), CHUNK_SIZE)] or [b""]


def encrypt_stream(file_key: bytes, salt: bytes, plaintext: bytes) -> Iterator[bytes]:
    """Yields the header, then each sealed chunk (ciphertext || tag)."""
    yield encode_header(file_key, salt)
    aead = AESGCM(payload_key(file_key, salt))
    chunks = plaintext_chunks(plaintext)
    for index, chunk in enumerate(chunks):
        yield aead.encrypt(nonce(index, index == len(chunks) - 1), chunk, None)


def encrypt(file_key: bytes, salt: bytes, plaintext: bytes) -> bytes:
    """The whole encrypted file."""
    return b"".join(encrypt_stream(file_key, salt, plaintext))


# --- Decoder --------------------------------------------------------------------------------


def authenticate_header(file_key: bytes, header: bytes) -> bytes:
    """Checks all 76 header bytes against what an encoder would write; returns the salt."""
    check_file_key(file_key)
    if len(header) != HEADER_SIZE:
        raise DecryptionFailed()
    salt = header[12:44]
    # One constant-time comparison covers magic, version, suite, chunk size and MAC.
    if not compare_digest(encode_header(file_key, salt), header):
        raise DecryptionFailed()
    return salt


def open_chunk(aead: AESGCM, index: int, final: bool, sealed: bytes) -> bytes:
    """Opens one sealed chunk; a non-final chunk must be exactly 65552 bytes."""
    if not TAG_SIZE <= len(sealed) <= SEALED_CHUNK_SIZE or (not final and len(sealed) != SEALED_CHUNK_SIZE):
        raise DecryptionFailed()
    try:
        return aead.decrypt(nonce(index, final), sealed, None)
    except InvalidTag:
        raise DecryptionFailed() from None


class StreamDecoder:
    """Decrypts a file fed in pieces of any size.

    `feed` returns plaintext of chunks whose tags verified; it always keeps at least one byte
    back, because the last chunk must be opened with the final flag and the decoder cannot
    know a chunk is the last until the input ends. Output from `feed` is provisional: the
    file is known to be whole only when `finish` returns. After any failure the decoder
    refuses all further input.
    """

    def __init__(self, file_key: bytes) -> None:
        check_file_key(file_key)
        self._file_key = file_key
        self._aead: AESGCM | None = None
        self._pending = bytearray()
        self._next_index = 0
        self._state = "open"  # "open", "finished" or "failed"

    def feed(self, data: bytes) -> bytes:
        """Takes ciphertext; returns the plaintext of every newly verified non-final chunk."""
        return self._guarded(lambda: self._feed(data))

    def finish(self) -> bytes:
        """Opens what is left as the final chunk; returns its plaintext."""
        return self._guarded(self._finish)

    def _guarded(self, step: Callable[[], bytes]) -> bytes:
        if self._state != "open":
            raise DecryptionFailed()
        try:
            return step()
        except DecryptionFailed:
            self._state = "failed"
            self._pending.clear()
            raise

    def _feed(self, data: bytes) -> bytes:
        self._pending += data
        if self._aead is None:
            if len(self._pending) < HEADER_SIZE:
                return b""
            salt = authenticate_header(self._file_key, bytes(self._pending[:HEADER_SIZE]))
            self._aead = AESGCM(payload_key(self._file_key, salt))
            del self._pending[:HEADER_SIZE]
        out = []
        # Strictly more than one sealed chunk pending: the first is certainly not the last.
        while len(self._pending) > SEALED_CHUNK_SIZE:
            out.append(self._open_next(bytes(self._pending[:SEALED_CHUNK_SIZE]), final=False))
            del self._pending[:SEALED_CHUNK_SIZE]
        return b"".join(out)

    def _finish(self) -> bytes:
        if self._aead is None:
            raise DecryptionFailed()  # no complete header
        rest = bytes(self._pending)
        self._pending.clear()
        if len(rest) < TAG_SIZE:
            raise DecryptionFailed()  # nothing after the header, or a final piece without a tag
        if len(rest) == TAG_SIZE and self._next_index != 0:
            raise DecryptionFailed()  # an empty final chunk is allowed only as chunk 0
        plaintext = self._open_next(rest, final=True)
        self._state = "finished"
        return plaintext

    def _open_next(self, sealed: bytes, final: bool) -> bytes:
        assert self._aead is not None
        plaintext = open_chunk(self._aead, self._next_index, final, sealed)
        self._next_index += 1
        return plaintext


def decrypt(file_key: bytes, data: bytes, piece_size: int | None = None) -> bytes:
    """Decrypts a whole file, fed to a StreamDecoder at once or in pieces of `piece_size` bytes."""
    decoder = StreamDecoder(file_key)
    step = piece_size or max(1, len(data))
    out = [decoder.feed(data[i : i + step]) for i in range(0, len(data), step)]
    out.append(decoder.finish())
    return b"".join(out)


def open_chunk_at(file_key: bytes, header: bytes, total_length: int, index: int, sealed: bytes) -> bytes:
    """Random access: opens chunk `index` (the bytes at 76 + 65552 index) of a file of `total_length` bytes."""
    salt = authenticate_header(file_key, header)
    length = plaintext_length(total_length)
    if length is None or index >= chunk_count(length):
        raise DecryptionFailed()
    final = index == chunk_count(length) - 1
    return open_chunk(AESGCM(payload_key(file_key, salt)), index, final, sealed)


def decrypt_by_chunks(file_key: bytes, data: bytes) -> bytes:
    """Decrypts a file by opening every chunk separately through random access."""
    length = plaintext_length(len(data))
    if length is None:
        raise DecryptionFailed()
    header = data[:HEADER_SIZE]
    pieces = []
    for index in range(chunk_count(length)):
        start = HEADER_SIZE + index * SEALED_CHUNK_SIZE
        pieces.append(open_chunk_at(file_key, header, len(data), index, data[start : start + SEALED_CHUNK_SIZE]))
    return b"".join(pieces)


# --- Checks ---------------------------------------------------------------------------------


class Checks:
    """Counts and prints checks, one line each."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        """Records one check."""
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f" ({detail})" if detail and not ok else ""))
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def run(self, name: str, test: Callable[[], bool]) -> None:
        """Records `test()`; an exception from it is a failure."""
        try:
            ok = test()
        except Exception as error:  # noqa: BLE001 - any surprise is a failed check
            self.check(name, False, f"{type(error).__name__}: {error}")
        else:
            self.check(name, ok)

    def refused(self, name: str, file_key: bytes, data: bytes) -> None:
        """The decoder must raise DecryptionFailed, and nothing else, on `data`."""
        try:
            decrypt(file_key, data)
        except DecryptionFailed as error:
            self.check(name, str(error) == ERROR_MESSAGE, "wrong message")
        except Exception as error:  # noqa: BLE001
            self.check(name, False, f"raised {type(error).__name__}: {error}")
        else:
            self.check(name, False, "accepted")

    def summary(self) -> int:
        """Prints the summary line and returns the exit status."""
        print(f"{self.passed} passed, {self.failed} failed")
        return 0 if self.failed == 0 else 1


def pattern(length: int) -> bytes:
    """The vectors' plaintext: byte i = i mod 251."""
    period = bytes(range(251))
    return (period * (length // 251 + 1))[:length]


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    """A copy of `data` with the bits of `mask` flipped at `offset`."""
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]


def sealed_chunks(data: bytes) -> list[bytes]:
    """The sealed chunks of a well-formed file, in order."""
    payload = data[HEADER_SIZE:]
    return [payload[i : i + SEALED_CHUNK_SIZE] for i in range(0, len(payload), SEALED_CHUNK_SIZE)]


def damaged_copies(data: bytes, file_key: bytes) -> Iterator[tuple[str, bytes, bytes]]:
    """Damaged versions (name, key, bytes) of a valid file of two or more chunks."""
    chunks = sealed_chunks(data)
    assert len(chunks) >= 2
    header = data[:HEADER_SIZE]
    boundary = HEADER_SIZE + SEALED_CHUNK_SIZE
    wrong_key = bytes(b ^ 0xFF for b in file_key)
    for offset, field in [(0, "magic"), (6, "version"), (7, "suite"), (10, "chunk size"), (12, "salt"),
                          (43, "salt"), (44, "MAC"), (75, "MAC")]:
        yield f"bit flipped in the header at byte {offset} ({field})", file_key, flip(data, offset)
    yield "bit flipped in chunk 0 body", file_key, flip(data, HEADER_SIZE + 100)
    yield "bit flipped in chunk 0 tag", file_key, flip(data, boundary - 1, 0x80)
    yield "bit flipped in the final chunk's tag", file_key, flip(data, len(data) - 1, 0x80)
    yield "bit flipped in the final chunk's body", file_key, flip(data, len(data) - TAG_SIZE - 1)
    yield "truncated at a chunk boundary", file_key, data[:boundary]
    yield "truncated in the middle of chunk 0", file_key, data[: HEADER_SIZE + SEALED_CHUNK_SIZE // 2]
    yield "last byte removed", file_key, data[:-1]
    yield "chunks 0 and 1 swapped", file_key, header + chunks[1] + chunks[0] + b"".join(chunks[2:])
    if len(chunks) >= 3:
        yield "chunk 1 removed", file_key, header + chunks[0] + b"".join(chunks[2:])
        yield "chunk 0 duplicated", file_key, header + chunks[0] + chunks[0] + b"".join(chunks[2:])
    yield "one byte appended", file_key, data + b"\x00"
    yield "sixteen bytes appended", file_key, data + bytes(16)
    yield "header only", file_key, header
    yield "header cut to 75 bytes", file_key, data[: HEADER_SIZE - 1]
    yield "wrong key", wrong_key, data


def non_canonical_copies(file_key: bytes, salt: bytes, plaintext: bytes) -> Iterator[tuple[str, bytes]]:
    """Files sealed with the real key that break a structural rule (`plaintext` >= one chunk)."""
    aead = AESGCM(payload_key(file_key, salt))
    header = encode_header(file_key, salt)
    full = plaintext_chunks(plaintext[: len(plaintext) // CHUNK_SIZE * CHUNK_SIZE])
    body = b"".join(aead.encrypt(nonce(i, False), c, None) for i, c in enumerate(full))
    empty_final = aead.encrypt(nonce(len(full), True), b"", None)
    # Every tag verifies here; only the rule on 16-byte final pieces refuses it.
    yield "full chunks then an extra empty final chunk", header + body + empty_final
    yield "full chunks, none with the final flag", header + body
    v2_body = MAGIC + bytes([2, SUITE]) + CHUNK_SIZE.to_bytes(4, "big") + salt
    v2_header = v2_body + hmac_sha256(header_key(file_key), v2_body)
    yield "version 2 header with a valid MAC", v2_header + encrypt(file_key, salt, plaintext)[HEADER_SIZE:]


def check_round_trip(checks: Checks, name: str, file_key: bytes, salt: bytes, plaintext: bytes,
                     ciphertext: bytes) -> None:
    """Every positive check of one valid file against its expected plaintext."""
    length = len(plaintext)
    checks.run(f"{name}: length {len(ciphertext)} = 76 + L + 16 n",
               lambda: len(ciphertext) == ciphertext_length(length))
    checks.run(f"{name}: inverse length formula gives L = {length}",
               lambda: plaintext_length(len(ciphertext)) == length)
    checks.run(f"{name}: decrypts to the plaintext", lambda: decrypt(file_key, ciphertext) == plaintext)
    checks.run(f"{name}: decrypts streamed in 9973-byte pieces",
               lambda: decrypt(file_key, ciphertext, piece_size=9973) == plaintext)
    checks.run(f"{name}: decrypts chunk by chunk (random access)",
               lambda: decrypt_by_chunks(file_key, ciphertext) == plaintext)
    checks.run(f"{name}: re-encrypts to the same bytes", lambda: encrypt(file_key, salt, plaintext) == ciphertext)


def check_damage(checks: Checks, name: str, file_key: bytes, salt: bytes, plaintext: bytes,
                 ciphertext: bytes) -> None:
    """Every negative check made here from one valid multi-chunk file."""
    for what, key, damaged in damaged_copies(ciphertext, file_key):
        checks.refused(f"{name}, {what}: refused", key, damaged)
    for what, damaged in non_canonical_copies(file_key, salt, plaintext):
        checks.refused(f"{name}, {what}: refused", file_key, damaged)


# --- Vector file ----------------------------------------------------------------------------


@dataclass
class Vector:
    """One valid vector of format-v1.json."""

    name: str
    file_key: bytes
    salt: bytes
    plaintext_length: int
    ciphertext: bytes
    ciphertext_sha256: str


def load_vector(entry: dict, folder: Path) -> Vector:
    """Reads a valid vector and its ciphertext file."""
    file_key = bytes.fromhex(entry["file_key"])
    check_file_key(file_key)
    return Vector(
        name=entry["name"],
        file_key=file_key,
        salt=bytes.fromhex(entry["salt"]),
        plaintext_length=int(entry["plaintext_length"]),
        ciphertext=(folder / entry["ciphertext_file"]).read_bytes(),
        ciphertext_sha256=entry["ciphertext_sha256"].lower(),
    )


def check_vectors(path: Path) -> int:
    """Runs every check on the vector file at `path`; returns the exit status."""
    spec = json.loads(path.read_text())
    folder = path.parent
    checks = Checks()
    checks.check('format is "coffre-v1"', spec.get("format") == "coffre-v1")
    checks.check('plaintext pattern is "byte i = i mod 251"', spec.get("plaintext_pattern") == "byte i = i mod 251")
    checks.check("at least one valid and one invalid vector",
                 bool(spec.get("vectors")) and bool(spec.get("invalid")))
    loaded: list[Vector] = []
    for entry in spec.get("vectors", []):
        name = entry.get("name", "?")
        try:
            vector = load_vector(entry, folder)
        except Exception as error:  # noqa: BLE001
            checks.check(f"{name}: vector loads", False, f"{type(error).__name__}: {error}")
            continue
        loaded.append(vector)
        checks.check(f"{name}: sha256 of {entry['ciphertext_file']}",
                     hashlib.sha256(vector.ciphertext).hexdigest() == vector.ciphertext_sha256)
        check_round_trip(checks, name, vector.file_key, vector.salt, pattern(vector.plaintext_length),
                         vector.ciphertext)
    for entry in spec.get("invalid", []):
        name = f"invalid {entry.get('name', '?')}"
        try:
            file_key = bytes.fromhex(entry["file_key"])
            check_file_key(file_key)
            data = (folder / entry["ciphertext_file"]).read_bytes()
        except Exception as error:  # noqa: BLE001
            checks.check(f"{name}: vector loads", False, f"{type(error).__name__}: {error}")
            continue
        checks.refused(f"{name}: refused", file_key, data)
    multi = [v for v in loaded if chunk_count(v.plaintext_length) >= 2]
    checks.check("a valid vector of two or more chunks exists", bool(multi))
    # The first multi-chunk vector, and the first of three or more chunks (for swaps and
    # removals of full, non-final chunks) if that is another one.
    targets = multi[:1] + [v for v in multi if chunk_count(v.plaintext_length) >= 3][:1]
    for vector in dict((v.name, v) for v in targets).values():
        check_damage(checks, vector.name, vector.file_key, vector.salt, pattern(vector.plaintext_length),
                     vector.ciphertext)
    return checks.summary()


# --- Self-test ------------------------------------------------------------------------------


def self_test() -> int:
    """Checks this encoder against this decoder, with no vector file; returns the exit status."""
    checks = Checks()
    # RFC 5869 test case 3 (empty salt): pins the meaning of salt=None used for the header key.
    okm = hkdf_sha256(bytes([0x0B] * 22), None, b"", 42)
    checks.check("HKDF-SHA256 matches RFC 5869 test case 3", okm.hex() ==
                 "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    checks.check("empty HKDF salt equals 32 zero bytes",
                 hkdf_sha256(b"k" * 32, None, HEADER_INFO) == hkdf_sha256(b"k" * 32, bytes(32), HEADER_INFO))
    checks.check("nonce(0, final) = 00 x 11 || 01", nonce(0, True).hex() == "00" * 11 + "01")
    checks.check("nonce(258, not final) = 00 x 9 || 01 02 || 00",
                 nonce(258, False).hex() == "00" * 9 + "0102" + "00")
    for total, expected in [(75, None), (76, None), (91, None), (92, 0), (93, 1), (76 + SEALED_CHUNK_SIZE, CHUNK_SIZE),
                            (76 + SEALED_CHUNK_SIZE + 16, None), (76 + SEALED_CHUNK_SIZE + 5, None),
                            (76 + SEALED_CHUNK_SIZE + 17, CHUNK_SIZE + 1)]:
        checks.check(f"plaintext_length({total}) = {expected}", plaintext_length(total) == expected)
    checks.check("inverse length formula on 0..300000 and around 2^32 chunks", all(
        plaintext_length(ciphertext_length(n)) == n
        for n in list(range(0, 300_001, 7)) + [CHUNK_SIZE * k + d for k in (2**32 - 1, 2**32) for d in (-1, 0, 1)]))
    rng = random.Random(int.from_bytes(os.urandom(8), "big"))
    lengths = [0, 1, 15, 16, 17, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, CHUNK_SIZE + 16,
               2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 5, rng.randrange(300_000)]
    for length in lengths:
        file_key, salt, plaintext = os.urandom(32), os.urandom(32), os.urandom(length)
        ciphertext = encrypt(file_key, salt, plaintext)
        check_round_trip(checks, f"random {length} bytes", file_key, salt, plaintext, ciphertext)
        checks.refused(f"random {length} bytes, wrong key: refused", os.urandom(32), ciphertext)
    file_key, salt, plaintext = os.urandom(32), os.urandom(32), os.urandom(3 * CHUNK_SIZE + 5)
    ciphertext = encrypt(file_key, salt, plaintext)
    check_damage(checks, "random 3-chunk file", file_key, salt, plaintext, ciphertext)
    checks.refused("empty input: refused", file_key, b"")
    check_provisional_output(checks, file_key, ciphertext[: HEADER_SIZE + 2 * SEALED_CHUNK_SIZE], plaintext)
    return checks.summary()


def check_provisional_output(checks: Checks, file_key: bytes, truncated: bytes, plaintext: bytes) -> None:
    """A file cut at a chunk boundary yields authentic chunks first and fails only at the end."""
    decoder = StreamDecoder(file_key)
    released = decoder.feed(truncated)
    checks.check("truncated at a boundary: chunk 0 released (authentic, provisional)",
                 released == plaintext[:CHUNK_SIZE])
    try:
        decoder.finish()
    except DecryptionFailed:
        checks.check("truncated at a boundary: finish() fails", True)
    else:
        checks.check("truncated at a boundary: finish() fails", False, "accepted")
    try:
        decoder.feed(b"")
    except DecryptionFailed:
        checks.check("decoder refuses further input after a failure", True)
    else:
        checks.check("decoder refuses further input after a failure", False, "accepted")


# --- Entry point ----------------------------------------------------------------------------


def main(argv: Iterable[str]) -> int:
    """Parses arguments and runs the vector checks or the self-test."""
    parser = argparse.ArgumentParser(description="Check Coffre file format v1 test vectors.")
    parser.add_argument("vectors", nargs="?", type=Path, default=DEFAULT_VECTORS,
                        help=f"path to format-v1.json (default: {DEFAULT_VECTORS})")
    parser.add_argument("--self-test", action="store_true",
                        help="round-trip random data through this encoder and decoder instead")
    args = parser.parse_args(list(argv))
    if args.self_test:
        return self_test()
    if not args.vectors.is_file():
        print(f"error: no vector file at {args.vectors}; the Swift test suite writes it "
              "(make vectors)", file=sys.stderr)
        return 2
    return check_vectors(args.vectors)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
