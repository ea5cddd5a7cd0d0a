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
