#!/usr/bin/env python3
"""List the blocks of a CARv1 in the order they come, one line each:
"CID KIND SIZE" (KIND raw, dag-pb, or the codec number), without checking
them (car-check.py checks).  With DIR, each block is also written to
DIR/CID (a directory nginx can serve as /ipfs/CID).
usage: car-blocks.py CAR [DIR]"""
import base64, os, sys

def varint(b, i):
    n = s = 0
    while True:
        c = b[i]; i += 1; n |= (c & 0x7f) << s; s += 7
        if c < 0x80: return n, i

b = open(sys.argv[1], 'rb').read()
out = sys.argv[2] if len(sys.argv) > 2 else None
hl, i = varint(b, 0)
i += hl
kinds = {0x55: 'raw', 0x70: 'dag-pb'}
while i < len(b):
    sl, i = varint(b, i)
    end = i + sl
    _, j = varint(b, i)          # version
    codec, j = varint(b, j)
    _, j = varint(b, j)          # multihash code
    ln, j = varint(b, j)
    cid = 'b' + base64.b32encode(b[i:j + ln]).decode().lower().rstrip('=')
    data = b[j + ln:end]
    if out:
        with open(os.path.join(out, cid), 'wb') as f:
            f.write(data)
    print(cid, kinds.get(codec, str(codec)), len(data))
    i = end
