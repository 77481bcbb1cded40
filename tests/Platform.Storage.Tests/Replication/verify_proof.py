#!/usr/bin/python3
"""Checks a storage proof (JSON on stdin) against the blob's bytes with nothing but hashlib.

Usage: verify_proof.py BLOB_FILE [--tamper] < proof.json   -> prints "ok" (exit 0) or "mismatch" (exit 1)
The leaf is computed from the chunk's own bytes (flipped first with --tamper), then folded with the audit
path as RFC 9162 section 2.1.3.2 says, and compared with the root.
"""
import hashlib
import json
import sys

proof = json.load(sys.stdin)
with open(sys.argv[1], "rb") as f:
    f.seek(proof["chunk"] * proof["chunkSize"])
    chunk = bytearray(f.read(proof["chunkSize"]))
if "--tamper" in sys.argv:
    chunk[0] ^= 1

r = hashlib.sha256(b"\x00" + chunk).digest()
fn, sn = proof["chunk"], proof["chunks"] - 1
ok = True
for p in (bytes.fromhex(h) for h in proof["path"]):
    if sn == 0:
        ok = False
        break
    if fn & 1 or fn == sn:
        r = hashlib.sha256(b"\x01" + p + r).digest()
        if not fn & 1:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
    else:
        r = hashlib.sha256(b"\x01" + r + p).digest()
    fn >>= 1
    sn >>= 1
ok = ok and sn == 0 and r == bytes.fromhex(proof["root"])
print("ok" if ok else "mismatch")
sys.exit(0 if ok else 1)
