import struct, json
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def hkdf(ikm, salt, info, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)
def fields(*fs):
    out=b""
    for f in fs:
        if isinstance(f,str): f=f.encode()
        out+=struct.pack(">I",len(f))+f
    return out
K=bytes([0x42])*32
w=open("Tests/Fuzz/Corpus/key-wrap/seed-0","rb").read()[1:]
assert len(w)==61 and w[0]==1
kw=hkdf(K,b"",b"coffre/v1/key-wrap")
ad=fields("coffre/v1/wrap","fuzz","owner","subject")
pt=AESGCM(kw).decrypt(w[1:13],w[13:],ad)
print("wrap ok", pt==K, ad.hex())
a=open("Tests/Fuzz/Corpus/attributes/seed-0","rb").read()[1:]
ka=hkdf(K,b"",b"coffre/v1/attributes")
js=AESGCM(ka).decrypt(a[1:13],a[13:],fields("coffre/v1/attributes","node"))
print(len(a), len(js), repr(js))
