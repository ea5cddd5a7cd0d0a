#!/usr/bin/env python3
"""Write a random file tree for NAR tests: gen-tree.py SEED DIR [MAX_BYTES]

The same SEED always gives the same tree (names, contents, modes, symlink
targets), so a failure can be replayed.  DIR must not exist.  The tree aims at
what a NAR writer gets wrong: entry order (Nix sorts names as raw bytes, so
upper case before lower case, '-' and '.' and digits before letters, multibyte
UTF-8 and other high bytes after ASCII), string padding (file sizes and name
and target lengths of every residue mod 8), empty files and directories,
the executable bit (Nix looks only at the owner's x bit), symlinks (relative,
absolute, dangling, to directories, with long or non-UTF-8 targets), names
with non-UTF-8 bytes, 255-byte names, hard links and deep nesting.
File contents total at most MAX_BYTES (default 3 MiB).
"""
import os
import random
import sys

# Pieces that sort in surprising ways when compared as bytes.
PIECES = [
    "a", "A", "b", "B", "z", "Z", "0", "9", "-", ".", "_", "~", "+", "=",
    "aa", "a-", "a.", "a0", "a_", "é", "É", "ß", "ø", "Ω", "я", "日本",
    "\u00a0", "\u2028", "𝄞", "🙂", "\x01", "\x7f", " ", "#", "%", "'", '"',
    "\\", "\t", "\n",
]
# Raw bytes that are not valid UTF-8 on their own.
RAW = [b"\x80", b"\xc3", b"\xfe", b"\xff", b"\xed\xa0\x80"]


def rand_name(rng):
    n = rng.randint(1, 4)
    name = "".join(rng.choice(PIECES) for _ in range(n)).encode()
    if rng.random() < 0.08:
        name += rng.choice(RAW)
    if rng.random() < 0.03:
        name = (name * 255)[: rng.choice([254, 255])]
    if name in (b".", b".."):
        name += b"x"
    return name


def rand_size(rng, budget):
    r = rng.random()
    if r < 0.15:
        size = 0
    elif r < 0.6:
        size = rng.randint(1, 17)
    elif r < 0.9:
        size = rng.randint(18, 5000)
    elif r < 0.97:
        size = rng.randint(5000, 200000)
    else:
        size = rng.randint(200000, 2 * 1024 * 1024 + 7)
    return min(size, budget)


class Gen:
    def __init__(self, seed, max_bytes):
        self.rng = random.Random(seed)
        self.budget = max_bytes
        self.files = []
        self.dirs = []

    def content(self, size):
        rng = self.rng
        kind = rng.random()
        if kind < 0.3:
            # text-like, so a reader that trips on newlines or NULs is caught too
            data = bytes(rng.choice(b"abc\n\0 xyz") for _ in range(min(size, 4096)))
            data = (data * (size // max(len(data), 1) + 1))[:size] if data else b""
        else:
            data = rng.randbytes(size)
        return data

    def write_file(self, path):
        rng = self.rng
        size = rand_size(rng, self.budget)
        self.budget -= size
        with open(path, "wb") as f:
            f.write(self.content(size))
        # Nix records "executable" when the owner's x bit is set and
        # nothing else; the odd modes check that other bits are ignored.
        mode = rng.choice([0o644, 0o644, 0o755, 0o755, 0o700, 0o744,
                           0o654, 0o645, 0o600, 0o555, 0o444, 0o711])
        os.chmod(path, mode)
        self.files.append(path)

    def write_symlink(self, path, top):
        rng = self.rng
        r = rng.random()
        if r < 0.3 and self.files:
            target = os.path.relpath(rng.choice(self.files), os.path.dirname(path))
            target = os.fsencode(target)
        elif r < 0.45 and self.dirs:
            target = os.fsencode(os.path.relpath(rng.choice(self.dirs), os.path.dirname(path)))
        elif r < 0.6:
            target = b"/nix/store/" + rng.randbytes(8).hex().encode() + b"-dangling/bin/sh"
        elif r < 0.7:
            target = b"/etc/passwd"
        elif r < 0.8:
            target = b"../" * rng.randint(1, 6) + rand_name(rng)
        elif r < 0.9:
            target = rand_name(rng) + b"/" + rand_name(rng)
        else:
            target = b"x" * rng.randint(1, 1500)
        os.symlink(target, path)

    def fill(self, d, depth, top):
        rng = self.rng
        self.dirs.append(d)
        n = rng.randint(0, 9 if depth < 3 else 4)
        used = set()
        for _ in range(n):
            name = rand_name(rng)
            if name in used:
                continue
            used.add(name)
            p = os.path.join(d, name)
            r = rng.random()
            if depth < 6 and r < 0.25:
                os.mkdir(p)
                self.fill(p, depth + 1, top)
            elif r < 0.4:
                self.write_symlink(p, top)
            elif r < 0.43 and self.files:
                os.link(rng.choice(self.files), p)
            else:
                self.write_file(p)
        if depth == 0:
            # always some deep nesting and an empty directory
            p = d
            for i in range(rng.randint(10, 30)):
                p = os.path.join(p, rand_name(rng) if i else b"deep")
            os.makedirs(p)
            os.mkdir(os.path.join(d, b"empty-dir" + str(rng.randint(0, 9)).encode()))
            # symlink targets of every length mod 8 (targets are padded too)
            links = os.path.join(d, b"links")
            os.mkdir(links)
            for k in range(8):
                os.symlink(b"t" * rng.randint(1, 40) * 8 + b"u" * k, os.path.join(links, b"%d" % k))
            # one big file per tree, at a size picked from a few awkward ones
            size = min(self.budget, rng.choice([0, 1, 4095, 65539, 1048577, 3145723]))
            self.budget -= size
            with open(os.path.join(d, b"big"), "wb") as f:
                f.write(rng.randbytes(size))


def main():
    if len(sys.argv) not in (3, 4):
        sys.stderr.write("usage: gen-tree.py SEED DIR [MAX_BYTES]\n")
        return 2
    seed = int(sys.argv[1])
    top = os.fsencode(sys.argv[2])
    max_bytes = int(sys.argv[3]) if len(sys.argv) == 4 else 3 * 1024 * 1024
    os.mkdir(top)
    Gen(seed, max_bytes).fill(top, 0, top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
