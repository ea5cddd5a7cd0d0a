#!/usr/bin/env python3
"""Request smuggling against a server on the http layer (test-httpd-smuggling.sh).

usage: httpd-smuggle.py PORT GOODPATH ACCESSLOG...

Each case sends, on a fresh connection, one GET of GOODPATH whose framing
fields (Content-Length, Transfer-Encoding) are ambiguous or invalid, followed
by a second, hidden request for a narinfo of a hash of its own.  The server
must answer 400, exactly once, and close the connection; the hidden hash must
appear in none of the ACCESSLOGs (the server's own and, for a mirror, its
upstream's).  Control cases with valid framing must get both requests served
and logged, which shows that the counting sees a hidden request when there is
one.  Prints one TAP-like line per check; exit status is the number of
failures.
"""
import socket
import sys
import time

PORT = int(sys.argv[1])
GOOD = sys.argv[2].encode()
LOGS = sys.argv[3:]
NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
fails = 0


def result(good, what):
    global fails
    fails += 0 if good else 1
    print(("ok - " if good else "not ok - ") + what)
    sys.stdout.flush()


def hidden_hash(i):
    """A valid-looking store hash, different for each case."""
    return "0" * 30 + NIX32[i // 32] + NIX32[i % 32]


def exchange(raw):
    """Send raw on a new connection; read until the server closes it (or
    10 s pass).  Returns (statuses of the responses seen, closed)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    data, closed = b"", False
    try:
        s.sendall(raw)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            data += d
    except ConnectionResetError:
        closed = True
    except (socket.timeout, OSError):
        pass
    finally:
        s.close()
    return parse_responses(data), closed


def parse_responses(data):
    """The status of each whole or partial response in data (GET, so every
    response has a body framed by Content-Length or chunked)."""
    statuses = []
    while data.startswith(b"HTTP/1."):
        head, sep, data = data.partition(b"\r\n\r\n")
        statuses.append(head[9:12].decode("latin-1"))
        if not sep:
            break
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            fields[k.strip().lower()] = v.strip()
        if b"content-length" in fields:
            data = data[int(fields[b"content-length"]):]
        elif fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:
                size, _, data = data.partition(b"\r\n")
                n = int(size.split(b";")[0] or b"0", 16)
                data = data[n + 2:]
                if n == 0:
                    break
        else:
            break
    return statuses


def logged(h):
    n = 0
    for path in LOGS:
        try:
            with open(path, "rb") as f:
                n += f.read().count(h.encode())
        except FileNotFoundError:
            pass
    return n


def head(version=b"1.1"):
    return b"GET " + GOOD + b" HTTP/" + version + b"\r\nHost: t\r\n"


# (name, head fields, what follows the head before the hidden request)
CHUNK0 = b"0\r\n\r\n"
FAULTY = [
    ("Content-Length and Transfer-Encoding",
     b"Content-Length: 60\r\nTransfer-Encoding: chunked\r\n", CHUNK0),
    ("Transfer-Encoding then Content-Length",
     b"Transfer-Encoding: chunked\r\nContent-Length: 60\r\n", CHUNK0),
    ("Content-Length: 0 with Transfer-Encoding",
     b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", CHUNK0),
    ("two different Content-Lengths", b"Content-Length: 0\r\nContent-Length: 60\r\n", b""),
    ("two equal Content-Lengths", b"Content-Length: 0\r\nContent-Length: 0\r\n", b""),
    ("a Content-Length list", b"Content-Length: 0, 60\r\n", b""),
    ("a Content-Length list of equal values", b"Content-Length: 0, 0\r\n", b""),
    ("Content-Length +0", b"Content-Length: +0\r\n", b""),
    ("Content-Length 0x0", b"Content-Length: 0x0\r\n", b""),
    ("an empty Content-Length", b"Content-Length:\r\n", b""),
    ("Content-Length folded over two lines", b"Content-Length: 0\r\n 60\r\n", b""),
    ("Transfer-Encoding: gzip", b"Transfer-Encoding: gzip\r\n", CHUNK0),
    ("Transfer-Encoding: chunked, gzip", b"Transfer-Encoding: chunked, gzip\r\n", CHUNK0),
    ("Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: gzip, chunked\r\n", CHUNK0),
    ("Transfer-Encoding: gzip, then a second field: chunked",
     b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", CHUNK0),
    ("Transfer-Encoding: chunked twice",
     b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", CHUNK0),
    ("Transfer-Encoding: xchunked", b"Transfer-Encoding: xchunked\r\n", CHUNK0),
]

i = 0
for name, fields, after in FAULTY:
    h = hidden_hash(i)
    i += 1
    hidden = b"GET /" + h.encode() + b".narinfo HTTP/1.1\r\nHost: t\r\n\r\n"
    statuses, closed = exchange(head() + fields + b"\r\n" + after + hidden)
    n = logged(h)
    result(statuses == ["400"] and closed and n == 0,
           "%s -> %s, %s, hidden request logged %d times (want 400, closed, 0)"
           % (name, "/".join(statuses) or "no response", "closed" if closed else "open", n))

# HTTP/1.0 has no Transfer-Encoding (RFC 9112 6.1): faulty framing
h = hidden_hash(i)
i += 1
statuses, closed = exchange(head(b"1.0") + b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + CHUNK0 + b"GET /" + h.encode() + b".narinfo HTTP/1.1\r\nHost: t\r\n\r\n")
n = logged(h)
result(statuses == ["400"] and closed and n == 0,
       "HTTP/1.0 keep-alive with Transfer-Encoding -> %s, %s, hidden logged %d times (want 400, closed, 0)"
       % ("/".join(statuses) or "no response", "closed" if closed else "open", n))

# Controls: unambiguous framing, the second request is a real one and served
CONTROLS = [
    ("no framing fields", b"", b""),
    ("Content-Length: 0", b"Content-Length: 0\r\n", b""),
    ("Transfer-Encoding: chunked with an empty body", b"Transfer-Encoding: chunked\r\n", CHUNK0),
]
for name, fields, after in CONTROLS:
    h = hidden_hash(i)
    i += 1
    second = b"GET /" + h.encode() + b".narinfo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    statuses, closed = exchange(head() + fields + b"\r\n" + after + second)
    n = logged(h)
    result(len(statuses) == 2 and statuses[0] == "200" and n >= 1,
           "control, %s: both requests answered (%s) and the second logged (%d)"
           % (name, "/".join(statuses) or "no response", n))

# and the server still serves
statuses, _ = exchange(head() + b"Connection: close\r\n\r\n")
result(statuses == ["200"], "a plain request afterwards -> %s" % ("/".join(statuses) or "nothing"))
sys.exit(min(fails, 100))
