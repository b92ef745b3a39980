import struct, json, hmac, hashlib
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

def hkdf(ikm, salt, info, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)
def fields(*fs):
    out=b""
    for f in fs:
        if isinstance(f,str): f=f.encode()
        out+=struct.pack(">I",len(f))+f
    return out
def extract(salt, ikm): return hmac.new(salt if salt else b"\0"*32, ikm, hashlib.sha256).digest()
def expand(prk, info, L):
    out=b""; t=b""; i=1
    while len(out)<L:
        t=hmac.new(prk,t+info+bytes([i]),hashlib.sha256).digest(); out+=t; i+=1
    return out[:L]
def LE(sid, salt, label, ikm): return extract(salt, b"HPKE-v1"+sid+label+ikm)
def LX(sid, prk, label, info, L): return expand(prk, struct.pack(">H",L)+b"HPKE-v1"+sid+label+info, L)

raw=lambda k: k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
A=bytes([0xA1])*32; B=bytes([0xB0])*32
a_sign=Ed25519PrivateKey.from_private_bytes(hkdf(A,b"",b"coffre/v1/signing-ed25519"))
b_agree=X25519PrivateKey.from_private_bytes(hkdf(B,b"",b"coffre/v1/sharing-x25519"))
share=json.loads(open("Tests/Fuzz/Corpus/key-wrap/seed-1","rb").read()[1:])
enc=bytes(share["encapsulatedKey"]); ct=bytes(share["ciphertext"]); sig=bytes(share["signature"])
info=fields("coffre/v1/share","alice","bob","node")
signed=fields(b"coffre/v1/signature", b"share", fields(enc,ct,info))
a_sign.public_key().verify(sig, signed); print("signature ok")
dh=b_agree.exchange(X25519PublicKey.from_public_bytes(enc))
kem_sid=b"KEM"+struct.pack(">H",0x20)
ss=LX(kem_sid, LE(kem_sid,b"",b"eae_prk",dh), b"shared_secret", enc+raw(b_agree), 32)
sid=b"HPKE"+struct.pack(">HHH",0x20,1,2)
ksc=b"\0"+LE(sid,b"",b"psk_id_hash",b"")+LE(sid,b"",b"info_hash",info)
secret=LE(sid,ss,b"secret",b"")
key=LX(sid,secret,b"key",ksc,32); nonce=LX(sid,secret,b"base_nonce",ksc,12)
pt=AESGCM(key).decrypt(nonce, ct, info)
print("share ok", pt==bytes([0x42])*32, len(ct))
