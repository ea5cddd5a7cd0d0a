#!/bin/sh
# Regenerate the decompression bombs: small files that expand to far more
# than any limit a test sets.  Made with the real tools, so they are also
# interop vectors.  Run from this directory; takes about a minute.
set -eu
zeros() { head -c "$1" /dev/zero; }
zeros 1G | zstd -19 -q -c >zeros-1g.zst
zeros 1G | bzip2 -9 -c >zeros-1g.bz2
zeros 256M | xz -9 -T1 -c >zeros-256m.xz
zeros 256M | lzip -0 -c >zeros-256m.lzip
zeros 64M | gzip -9 -n -c >zeros-64m.gz
# Tiny streams whose headers ask for more decoder memory than cairn allows.
echo hello | zstd -q --long=30 -c >window-1g.zst
echo hello | xz --lzma2=dict=300MiB -c >dict-300m.xz
# lzip shrinks the dictionary to fit small input; declare 2^29 (512 MiB) by
# hand: byte 5 of the member header is its log2, covered by no checksum.
echo hello | lzip -c >dict-512m.lzip
printf '\035' | dd of=dict-512m.lzip bs=1 seek=5 conv=notrunc status=none
