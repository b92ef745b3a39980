"""Worked example for Docs/design/keys-draft.md, written from the draft (not from Swift output).
Fixed nonces are used here; the Swift code always draws wrap/attribute nonces at random."""
import struct, json, hmac, hashlib, base64, sys, unicodedata
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def hkdf(ikm, salt, info, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)
def fields(*fs):
    out = b""
    for f in fs:
        if isinstance(f, str): f = f.encode()
        out += struct.pack(">I", len(f)) + f
    return out
b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def unb64u(s):
    b = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    assert b64u(b) == s, "non-canonical"
    return b
def wrap(key, wrapping_key, typ, owner, subject, nonce):
    kw = hkdf(wrapping_key, b"", b"coffre/v1/key-wrap")
    return b"\x01" + nonce + AESGCM(kw).encrypt(nonce, key, fields("coffre/v1/wrap", typ, owner, subject))
def unwrap(w, wrapping_key, typ, owner, subject):
    assert len(w) == 61 and w[0] == 1
    kw = hkdf(wrapping_key, b"", b"coffre/v1/key-wrap")
    return AESGCM(kw).decrypt(w[1:13], w[13:], fields("coffre/v1/wrap", typ, owner, subject))
P = lambda k, v: print(f"{k:28} {v.hex() if isinstance(v, bytes) else v}")

repo = sys.argv[1] if len(sys.argv) > 1 else "/work/main"
link_id_bytes = bytes([0x03]) * 16
secret = bytes([0x09]) * 32
link_id = b64u(link_id_bytes)
node_id = b64u(bytes([0x05]) * 16)
node_key = bytes([0x42]) * 32
file_key = bytes.fromhex("0d141b222930373e454c535a61686f767d848b9299a0a7aeb5bcc3cad1d8dfe6")  # format vector one-byte
url = f"https://eu.coffre.example:8443/l/{link_id}#{b64u(secret)}"
P("url", url); P("link id (text)", link_id); P("secret", secret); P("node id", node_id)
P("node key", node_key); P("file key", file_key)

for label, password in (("no password", None), ("password", "open sesame")):
    print(f"--- {label}")
    material = secret
    if password is not None:
        salt = bytes([0x07]) * 16
        a = Argon2id(salt=salt, length=32, iterations=2, lanes=1, memory_cost=(64 << 20) // 1024).derive(password.encode())
        P("argon2 salt", salt); P("argon2 ops/mem", "2 / 67108864"); P("argon2 out", a)
        material = secret + a
    link_key = hkdf(material, link_id.encode(), b"coffre/v1/link")
    P("HKDF ikm", material); P("HKDF salt (ASCII link id)", link_id.encode())
    P("link key", link_key)
    P("link key-wrap subkey", hkdf(link_key, b"", b"coffre/v1/key-wrap"))
    ad = fields("coffre/v1/wrap", "link", link_id, node_id)
    P("wrap AD", ad)
    w = wrap(node_key, link_key, "link", link_id, node_id, bytes([0x11]) * 12)
    P("wrappedNodeKey (nonce 11..)", w)
    assert unwrap(w, link_key, "link", link_id, node_id) == node_key
    rec = {"linkId": link_id, "nodeId": node_id, "wrappedNodeKey": {"bytes": list(w)}}
    if password is not None:
        rec["passwordSalt"] = list(salt); rec["passwordParameters"] = {"operations": 2, "memoryBytes": 67108864}
    print("record JSON:", json.dumps(rec, separators=(",", ":")))

print("--- node record pieces")
fk_ad = fields("coffre/v1/wrap", "file-key", node_id, node_id)
P("file-key wrap AD", fk_ad)
P("node key-wrap subkey", hkdf(node_key, b"", b"coffre/v1/key-wrap"))
wf = wrap(file_key, node_key, "file-key", node_id, node_id, bytes([0x22]) * 12)
P("fileKey (nonce 22..)", wf); P("fileKey base64url", b64u(wf))
assert unwrap(wf, node_key, "file-key", node_id, node_id) == file_key
attrs = json.dumps({"modified": 1790000000000, "name": "one-byte.bin", "size": 1}, separators=(",", ":"), sort_keys=True).encode()
attrs += b" " * ((64 - len(attrs) % 64) % 64)
P("attributes JSON (padded)", repr(attrs)); P("attributes length", len(attrs))
ka = hkdf(node_key, b"", b"coffre/v1/attributes")
P("attributes subkey", ka)
aad = fields("coffre/v1/attributes", node_id); P("attributes AD", aad)
n3 = bytes([0x33]) * 12
blob = b"\x01" + n3 + AESGCM(ka).encrypt(n3, attrs, aad)
P("attributes blob", blob); P("attributes base64url", b64u(blob))
ct = open(repo + "/Tests/EncryptionTests/Vectors/one-byte.bin", "rb").read()
P("content length", len(ct))
# file format decrypt (Docs/format.md)
hk = hkdf(file_key, b"", b"coffre/v1/header")
assert hmac.compare_digest(hmac.new(hk, ct[:44], hashlib.sha256).digest(), ct[44:76])
pk = hkdf(file_key, ct[12:44], b"coffre/v1/payload")
pt = AESGCM(pk).decrypt(bytes(11) + b"\x01", ct[76:], b"")
P("plaintext", pt)
print("--- name tag")
fk = bytes([0x01]) * 32
P("name-tags subkey(0x01*32)", hkdf(fk, b"", b"coffre/v1/name-tags"))
P("nameTag('a', 0x01*32)", b64u(hmac.new(hkdf(fk, b"", b"coffre/v1/name-tags"), unicodedata.normalize("NFC", "a").encode(), hashlib.sha256).digest()[:16]))
P("nameTag('caf\\u00e9',0x01*32)", b64u(hmac.new(hkdf(fk, b"", b"coffre/v1/name-tags"), unicodedata.normalize("NFC", "cafe\u0301").encode(), hashlib.sha256).digest()[:16]))
