#!/usr/bin/env python3
"""Write the hostile-NAR corpus: crafted archives that every NAR reader must
refuse.  Each case is CASE.nar, and expected.tsv says, per case, the error
code and a piece of the message cairn must give.  Run from anywhere:
    python3 tests/vectors/hostile/make.py
The files are committed; rerun only when adding cases."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def s(b):
    """A NAR string: u64 length, bytes, zero padding to 8."""
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<Q", len(b)) + b + b"\0" * ((8 - len(b) % 8) % 8)


def raw_len(n):
    return struct.pack("<Q", n)


MAGIC = s("nix-archive-1")


def reg(data=b"x", exe=False):
    out = s("(") + s("type") + s("regular")
    if exe:
        out += s("executable") + s("")
    return out + s("contents") + s(data) + s(")")


def link(target):
    return s("(") + s("type") + s("symlink") + s("target") + s(target) + s(")")


def entry(name, node):
    return s("entry") + s("(") + s("name") + s(name) + s("node") + node + s(")")


def dir_(*entries):
    return s("(") + s("type") + s("directory") + b"".join(entries) + s(")")


def nar(node):
    return MAGIC + node


def nested(depth):
    node = reg()
    for _ in range(depth):
        node = dir_(entry("d", node))
    return nar(node)


CASES = []


def case(name, code, msg, data):
    CASES.append((name, code, msg, data))


case("dotdot", "EFORMAT", "entry name '..' is not allowed", nar(dir_(entry("..", reg()))))
case("dot", "EFORMAT", "entry name '.' is not allowed", nar(dir_(entry(".", reg()))))
case("slash", "EFORMAT", "contains '/'", nar(dir_(entry("a/b", reg()))))
case("slash-escape", "EFORMAT", "contains '/'", nar(dir_(entry("../../etc/passwd", reg()))))
case("nul-name", "EFORMAT", "contains a NUL byte", nar(dir_(entry(b"a\0b", reg()))))
case("empty-name", "EFORMAT", "empty entry name", nar(dir_(entry("", reg()))))
case("name-256", "ELIMIT", "longer than 255 bytes", nar(dir_(entry("n" * 256, reg()))))
case("name-huge-length", "ELIMIT", "entry name of 4611686018427387904 bytes",
     nar(s("(") + s("type") + s("directory") + s("entry") + s("(") + s("name") + raw_len(1 << 62)))
case("unsorted", "EFORMAT", "entry 'a' after 'b' is out of order in the root directory",
     nar(dir_(entry("b", reg()), entry("a", reg()))))
case("unsorted-nested", "EFORMAT", "entry 'B' after 'a' is out of order in directory 'x'",
     nar(dir_(entry("x", dir_(entry("a", reg()), entry("B", reg()))))))
case("duplicate", "EFORMAT", "duplicate entry 'a'", nar(dir_(entry("a", reg()), entry("a", reg()))))
# CVE-2024-45593 class: a symlink, then a directory of the same name whose
# contents a naive restorer would write through the link.
case("symlink-then-dir", "EFORMAT", "duplicate entry 'a'",
     nar(dir_(entry("a", link("/tmp")), entry("a", dir_(entry("pwned", reg(b"owned")))))))
case("symlink-then-file", "EFORMAT", "duplicate entry 'a'",
     nar(dir_(entry("a", link("/tmp/cairn-pwned")), entry("a", reg(b"owned")))))
case("pad-token", "EFORMAT", "non-zero padding after a string",
     MAGIC + struct.pack("<Q", 1) + b"(" + b"\0\0\0\0\0\0\1" + s("type") + s("regular"))
case("pad-name", "EFORMAT", "non-zero padding after an entry name",
     nar(s("(") + s("type") + s("directory") + s("entry") + s("(") + s("name")
         + struct.pack("<Q", 1) + b"a" + b"\0\0\0\0\0\0X"))
case("pad-contents", "EFORMAT", "non-zero padding after file contents",
     MAGIC + s("(") + s("type") + s("regular") + s("contents") + struct.pack("<Q", 3) + b"abc\0\0\0\0\1" + s(")"))
case("bad-magic", "EFORMAT", "not a Nix archive (bad magic 'nix-archive-2')", s("nix-archive-2") + reg())
case("bad-magic-length", "EFORMAT", "bad magic length", s("nix-archive-10") + reg())
case("not-a-nar", "EFORMAT", "bad magic length", b"\x1f\x8b\x08\x00" + b"\0" * 60)
case("unknown-type", "EFORMAT", "unknown file type 'fifo'", nar(s("(") + s("type") + s("fifo") + s(")")))
case("bad-token", "EFORMAT", "expected tag 'type', got 'typ'", nar(s("(") + s("typ") + s("regular")))
case("missing-contents", "EFORMAT", "expected tag 'executable' or 'contents', got 'data'",
     nar(s("(") + s("type") + s("regular") + s("data") + s("x") + s(")")))
case("dir-bad-item", "EFORMAT", "expected tag 'entry' or ')', got 'executable'",
     nar(s("(") + s("type") + s("directory") + s("executable") + s("") + s(")")))
case("missing-node", "EFORMAT", "expected tag 'node', got '('",
     nar(s("(") + s("type") + s("directory") + s("entry") + s("(") + s("name") + s("a") + reg() + s(")") + s(")")))
case("exec-value", "EFORMAT", "executable marker with the non-empty value '1' at the root",
     nar(s("(") + s("type") + s("regular") + s("executable") + s("1") + s("contents") + s("x") + s(")")))
case("symlink-nul", "EFORMAT", "NUL byte in the symlink target at 'l'", nar(dir_(entry("l", link(b"/etc\0x")))))
case("symlink-empty", "EFORMAT", "empty symlink target at the root", nar(link(b"")))
case("symlink-4096", "ELIMIT", "symlink target of 4096 bytes at the root is longer than 4095 bytes", nar(link("t" * 4096)))
case("huge-file", "ELIMIT", "file of 4611686018427387904 bytes at the root is more than the limit",
     MAGIC + s("(") + s("type") + s("regular") + s("contents") + raw_len(1 << 62))
case("huge-token", "EFORMAT", "expected tag 'type', got a string of 4611686018427387904 bytes",
     MAGIC + s("(") + raw_len(1 << 62) + b"type\0\0\0\0")
case("deep-65", "ELIMIT", "nested deeper than 63 directories", nested(65))
case("deep-64", "ELIMIT", "nested deeper than 63 directories", nested(64))
case("trailing", "EFORMAT", "trailing data after the end of the archive", nar(reg()) + b"\0" * 8)
case("two-roots", "EFORMAT", "trailing data after the end of the archive", nar(reg()) + reg())
case("truncated-contents", "ETRUNCATED", "truncated inside the contents of the file at 'f'",
     (MAGIC + dir_(entry("f", reg(b"0123456789"))))[:-60])
case("truncated-dir", "ETRUNCATED", "expecting tag 'entry' or ')' at 'd'",
     (nar(dir_(entry("d", dir_(entry("f", reg()))))))[:-48])
case("empty", "ETRUNCATED", "empty input", b"")

if __name__ == "__main__":
    for f in os.listdir(HERE):
        if f.endswith(".nar"):
            os.unlink(os.path.join(HERE, f))
    with open(os.path.join(HERE, "expected.tsv"), "w") as t:
        t.write("# name\tcode\tmessage substring (written by make.py)\n")
        for name, code, msg, data in CASES:
            with open(os.path.join(HERE, name + ".nar"), "wb") as f:
                f.write(data)
            t.write(f"{name}\t{code}\t{msg}\n")
    print(f"{len(CASES)} cases")
