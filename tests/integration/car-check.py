#!/usr/bin/env python3
"""Check a CARv1 the gateway sent, independently of cairn's reader:
every block hashes to its CID (sha2-256 or identity), no block comes twice
(dups=n), and every block but the root is named by a link of a block before
it (order=dfs: parents before children), in depth-first order.
With --partial (a dag-scope=block or entity-bytes answer) only: every
block but the root is linked from a block before it.
usage: car-check.py CAR ROOT [--partial]   (prints the number of blocks)"""
import base64, hashlib, sys

def varint(b, i):
    n = s = 0
    while True:
        c = b[i]; i += 1; n |= (c & 0x7f) << s; s += 7
        if c < 0x80: return n, i

def cid_str(cid):
    return 'b' + base64.b32encode(cid).decode().lower().rstrip('=')

def read_cid(b, i):
    v, j = varint(b, i)
    codec, j = varint(b, j)
    mh, j = varint(b, j)
    ln, j = varint(b, j)
    return b[i:j + ln], codec, mh, b[j:j + ln], j + ln

def links(data):
    """dag-pb: field 2 (PBLink, length-delimited) holds field 1 (Hash)."""
    out, i = [], 0
    while i < len(data):
        key, i = varint(data, i)
        ln, i = varint(data, i)
        body = data[i:i + ln]; i += ln
        if key == 0x12:
            k = 0
            while k < len(body):
                kk, k = varint(body, k)
                l2, k = varint(body, k)
                if kk == 0x0a: out.append(bytes(body[k:k + l2]))
                k += l2
    return out

b = open(sys.argv[1], 'rb').read()
hl, i = varint(b, 0)
i += hl
partial = sys.argv[3:] == ['--partial']
seen, expected, named, n = set(), [], set(), 0
while i < len(b):
    sl, i = varint(b, i)
    cid, codec, mh, digest, j = read_cid(b, i)
    data = b[j:i + sl]; i += sl
    ok = hashlib.sha256(data).digest() == digest if mh == 0x12 else data == digest
    if not ok: sys.exit(f"block {n} does not hash to {cid_str(cid)}")
    if cid in seen: sys.exit(f"block {cid_str(cid)} sent twice")
    if n == 0:
        if cid_str(cid) != sys.argv[2]: sys.exit(f"first block {cid_str(cid)} is not the root")
    elif partial:
        if cid not in named: sys.exit(f"block {n} {cid_str(cid)} comes before its parent")
    else:
        # depth first: the next block is the first not yet sent of the
        # links pending on the stack
        while expected and expected[-1] in seen: expected.pop()
        if not expected or expected[-1] != cid:
            sys.exit(f"block {n} {cid_str(cid)} is not the next in depth-first order")
        expected.pop()
    seen.add(cid)
    if codec == 0x70:
        expected.extend(reversed(links(data)))
        named.update(links(data))
    n += 1
print(n)
