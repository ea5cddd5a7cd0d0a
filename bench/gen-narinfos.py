#!/usr/bin/env python3
"""Write COUNT synthetic narinfos into a static binary-cache directory.

usage: gen-narinfos.py DIR COUNT [--missing-every K] [--paths FILE]

The store paths are a deterministic function of their index (the same in
every directory), so several caches generated with the same COUNT serve the
same paths; --missing-every K leaves out every K-th narinfo.  The narinfos
are unsigned and point at nars that do not exist: enough for narinfo
lookups (bench/weather.sh), not for downloads.  --paths writes the full
store paths, one a line.
"""
import argparse
import hashlib
import os

ALPHA = "0123456789abcdfghijklmnpqrsvwxyz"  # Nix base32


def nix32(data: bytes) -> str:
    n = len(data)
    out_len = (n * 8 - 1) // 5 + 1
    out = []
    for k in range(out_len - 1, -1, -1):
        b = k * 5
        i, j = divmod(b, 8)
        c = data[i] >> j
        if i + 1 < n:
            c |= data[i + 1] << (8 - j)
        out.append(ALPHA[c & 0x1F])
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("count", type=int)
    ap.add_argument("--missing-every", type=int, default=0)
    ap.add_argument("--paths")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    with open(os.path.join(a.dir, "nix-cache-info"), "w") as f:
        f.write("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n")
    paths = []
    for i in range(a.count):
        h = nix32(hashlib.sha256(b"cairn-bench-%d" % i).digest()[:20])
        path = "/nix/store/%s-bench-%d" % (h, i)
        paths.append(path)
        if a.missing_every and i % a.missing_every == 0:
            continue
        nar = nix32(hashlib.sha256(b"nar-%d" % i).digest())
        fh = nix32(hashlib.sha256(b"file-%d" % i).digest())
        size = 1000 + i
        text = (
            f"StorePath: {path}\n"
            f"URL: nar/{fh}.nar.xz\n"
            "Compression: xz\n"
            f"FileHash: sha256:{fh}\n"
            f"FileSize: {size // 3}\n"
            f"NarHash: sha256:{nar}\n"
            f"NarSize: {size}\n"
            "References: \n"
        )
        with open(os.path.join(a.dir, h + ".narinfo"), "w") as f:
            f.write(text)
    if a.paths:
        with open(a.paths, "w") as f:
            f.write("\n".join(paths) + "\n")


if __name__ == "__main__":
    main()
