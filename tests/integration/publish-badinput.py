#!/usr/bin/env python3
"""Raw-socket bad input against `cairn publish` (test-publish-badinput.sh).

usage: publish-badinput.py PORT HASH STOREDIR

HASH is the hash part of a valid store path, STOREDIR the store directory.
Prints one TAP-like line per check; exit status is the number of failures.
"""
import os
import socket
import sys
import threading
import time

PORT = int(sys.argv[1])
HASH = sys.argv[2]
STOREDIR = sys.argv[3]
ADDR = ("127.0.0.1", PORT)
fails = 0
passes = 0
lock = threading.Lock()

# Slow clients must be cut off within this (the server's header timeout,
# whatever it is, must be below it; h2o's default is 10 s).
SLOW_BOUND = 40


def result(good, what):
    global fails, passes
    with lock:
        if good:
            passes += 1
            print("ok - " + what)
        else:
            fails += 1
            print("not ok - " + what)
        sys.stdout.flush()


class Closed(Exception):
    pass


def read_response(sock, head=False, buf=b""):
    """One response from sock: (status, headers dict, body, rest of buffer).
    Raises Closed when the connection ends before a status line."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            if not buf:
                raise Closed()
            raise Closed("closed inside the headers: %r" % buf[:200])
        buf += d
    hdr, buf = buf.split(b"\r\n\r\n", 1)
    lines = hdr.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    if head or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", buf
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            d = sock.recv(65536)
            if not d:
                raise Closed("short body")
            buf += d
        return status, headers, buf[:n], buf[n:]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                d = sock.recv(65536)
                if not d:
                    raise Closed("closed inside chunked body")
                buf += d
            line, buf = buf.split(b"\r\n", 1)
            n = int(line.split(b";")[0], 16)
            while len(buf) < n + 2:
                d = sock.recv(65536)
                if not d:
                    raise Closed("closed inside a chunk")
                buf += d
            if n == 0:
                # (no trailers expected)
                return status, headers, body, buf[2:]
            body += buf[:n]
            buf = buf[n + 2:]
    while True:
        d = sock.recv(65536)
        if not d:
            return status, headers, buf, b""
        buf += d


def connect(timeout=10):
    s = socket.create_connection(ADDR, timeout=timeout)
    return s


def exchange(raw, head=False, timeout=10):
    """Send raw bytes on a new connection, return (status, headers, body) or
    (None, None, error string)."""
    s = connect(timeout)
    try:
        try:
            s.sendall(raw)
        except OSError:
            pass  # the server may answer and close before reading it all
        return read_response(s, head)[:3]
    except (Closed, OSError) as e:
        return None, None, "no response (%s)" % (e or "closed")
    finally:
        s.close()


def get(path, extra=b"", head=False, timeout=10):
    method = b"HEAD" if head else b"GET"
    return exchange(method + b" " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                    + extra + b"\r\n", head, timeout)


def expect(what, raw, statuses):
    st, h, body = exchange(raw)
    good = st in statuses
    result(good, "%s -> %s (want %s)" % (what, st if st else body,
                                         "/".join(map(str, statuses))))
    return st, body


# What a good request returns, to compare with later.
_, _, CACHE_INFO = get(b"/nix-cache-info")
_, _, NARINFO = get(b"/" + HASH.encode() + b".narinfo")
result(CACHE_INFO.startswith(b"StoreDir:") or b"\nStoreDir: " in CACHE_INFO,
       "/nix-cache-info is served")
result(b"StorePath: " in NARINFO, "/%s.narinfo is served" % HASH)


def served_meanwhile(what):
    t = time.monotonic()
    st, _, body = get(b"/nix-cache-info", timeout=5)
    result(st == 200 and body == CACHE_INFO and time.monotonic() - t < 3,
           "a normal client is served %s (%s in %.2f s)" % (what, st, time.monotonic() - t))


# --- slowloris, running while everything else below is tried -------------
slow = {}


def slowloris(key, trickle):
    s = connect(timeout=SLOW_BOUND + 5)
    t0 = time.monotonic()
    end = None
    got = b""
    try:
        s.sendall(b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\n")
        s.settimeout(1.0)
        i = 0
        while time.monotonic() - t0 < SLOW_BOUND:
            try:
                d = s.recv(4096)
                if not d:
                    break
                got += d
                continue
            except socket.timeout:
                pass
            except OSError:
                break
            if trickle:
                try:
                    s.sendall(b"X-Slow-%d: %s\r\n" % (i, b"a" * 4))
                except OSError:
                    break
                i += 1
    finally:
        end = time.monotonic() - t0
        s.close()
    slow[key] = (end, got)


threads = [threading.Thread(target=slowloris, args=("trickle", True)),
           threading.Thread(target=slowloris, args=("stalled", False))]
for t in threads:
    t.start()
time.sleep(0.5)

# --- malformed request lines and headers ---------------------------------
expect("garbage request line", b"GARBAGE\r\n\r\n", (400,))
expect("request line without target", b"GET\r\n\r\n", (400,))
expect("request line with four words", b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", (400,))
expect("header without colon", b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n", (400,))
expect("binary junk", b"\x00\x01\x02\xff\xfe binary\r\n\r\n", (400,))
expect("negative Content-Length",
       b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", (400,))
expect("two different Content-Lengths",
       b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
       (400,))
expect("a GET with a body",
       b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nab", (400,))
expect("raw NUL in the path", b"GET /nix-cache-info\x00.narinfo HTTP/1.1\r\nHost: t\r\n\r\n", (400,))
expect("request line of 70 KiB", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", (414,))
expect("a 64 KiB header", b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 65536 + b"\r\n\r\n",
       (431,))
# h2o's own parser stops at 100 fields; cairn answers 431 past that
# (lib/httpd.c), whether the fields are large or small, and on a connection
# that has already been served.
expect("200 headers of 500 bytes", b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\n"
       + b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 500) for i in range(200)) + b"\r\n", (431,))
MANY_SMALL = (b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\n"
              + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n")
expect("150 small headers (1.3 KiB)", MANY_SMALL, (431,))
expect("99 small headers", b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\n"
       + b"".join(b"X-%d: v\r\n" % i for i in range(98)) + b"\r\n", (200,))
expect("150 headers, the last one malformed", MANY_SMALL[:-2] + b"no colon\r\n\r\n", (400, 431))


def too_many_after_good():
    s = connect()
    try:
        s.sendall(b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\n\r\n" + MANY_SMALL)
        st1, _, body1, rest = read_response(s)
        st2, _, _, _ = read_response(s, buf=rest)
        return st1, body1 == CACHE_INFO, st2
    except (Closed, OSError) as e:
        return None, False, str(e)
    finally:
        s.close()


st1, same, st2 = too_many_after_good()
result(st1 == 200 and same and st2 == 431,
       "pipelined: a good request, then 150 headers -> %s, %s (want 200, 431)" % (st1, st2))
served_meanwhile("after malformed requests")

# --- path traversal: never a file outside what is served -----------------
secrets = (b"root:x:0:0", b"SQLite format 3")
for p in [b"/../../../../etc/passwd",
          b"/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
          b"/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
          b"/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
          b"/log/../../../../etc/passwd",
          b"/log/..%2f..%2f..%2f..%2fetc%2fpasswd",
          # the store database, from the log directory (ROOT/var/log/nix)
          b"/log/..%2f..%2fnix%2fdb%2fdb.sqlite",
          b"/log/..%2f..%2f..%2fnix%2fdb%2fdb.sqlite",
          b"/log/%2e%2e%2f%2e%2e%2fnix%2fdb%2fdb.sqlite",
          b"/log/%2e%2e/%2e%2e/nix/db/db.sqlite",
          b"/log/..%5c..%5cnix%5cdb%5cdb.sqlite",
          b"/log/..%252f..%252fnix%252fdb%252fdb.sqlite",
          b"/nar/..%2f..%2f..%2fetc%2fpasswd",
          b"/nar%2f..%2f..%2fetc%2fpasswd",
          b"/nar/none/..%2f..%2f..%2fetc%2fpasswd",
          b"/" + HASH.encode() + b".narinfo/../../../etc/passwd",
          b"/" + HASH.encode() + b".narinfo%2f..%2f..%2fetc%2fpasswd",
          b"/file/..%2f..%2fetc%2fpasswd/sha256/0000000000000000000000000000000000000000000000000000",
          b"/nix-cache-info%00.narinfo",
          b"/log/%00",
          b"//etc/passwd",
          b"/..\\..\\..\\etc\\passwd",
          b"http://t/../../etc/passwd"]:
    st, h, body = get(p)
    leaked = any(s in (body or b"") for s in secrets) if isinstance(body, bytes) else False
    result(st in (400, 404) and not leaked,
           "traversal %s -> %s%s (want 400/404)" % (p.decode("latin-1")[:60], st,
                                                  ", LEAKED" if leaked else ""))
served_meanwhile("after traversal attempts")

# --- unknown and malformed hashes ----------------------------------------
unknown = "0" * 32 if HASH != "0" * 32 else "1" * 32
for p, want in [("/%s.narinfo" % unknown, (404,)),
                ("/%s.ls" % unknown, (404,)),
                ("/nar/%s.nar" % ("0" * 52), (404,)),
                ("/nar/%s.nar.xz" % ("0" * 52), (404,)),
                ("/log/%s-nothing.drv" % unknown, (404,)),
                ("/abc.narinfo", (400, 404)),
                ("/%s.narinfo" % ("e" * 32), (400, 404)),      # 'e' is not nix32
                ("/%s.narinfo" % (HASH + "0"), (400, 404)),    # 33 characters
                ("/%s.narinfo" % HASH[:31], (400, 404)),       # 31 characters
                ("/%s.narinfo" % HASH.upper(), (400, 404)),
                ("/%s-name.narinfo" % HASH, (400, 404)),
                ("/.narinfo", (400, 404)),
                ("/%s.NARINFO" % HASH, (400, 404)),
                ("/nar/%s" % ("z" * 500), (400, 404))]:
    st, _, body = get(p.encode())
    result(st in want, "%s -> %s (want %s)" % (p[:70], st, "/".join(map(str, want))))

# --- HTTP/1.0, keep-alive, pipelining ------------------------------------
st, _, body = exchange(b"GET /nix-cache-info HTTP/1.0\r\n\r\n")
result(st == 200 and body == CACHE_INFO, "HTTP/1.0 without Host -> %s" % st)

s = connect()
try:
    s.sendall(b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\n\r\n")
    st1, _, b1, rest = read_response(s)
    s.sendall(b"GET /" + HASH.encode() + b".narinfo HTTP/1.1\r\nHost: t\r\n\r\n")
    st2, _, b2, rest = read_response(s, buf=rest)
    result(st1 == 200 and st2 == 200 and b1 == CACHE_INFO and b2 == NARINFO,
           "keep-alive: two requests, one after the other, on one connection")
except (Closed, OSError) as e:
    result(False, "keep-alive: %s" % e)
finally:
    s.close()

s = connect()
try:
    s.sendall(b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\n\r\n"
              b"HEAD /" + HASH.encode() + b".narinfo HTTP/1.1\r\nHost: t\r\n\r\n"
              b"GET /" + HASH.encode() + b".narinfo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    st1, _, b1, rest = read_response(s)
    st2, h2, b2, rest = read_response(s, head=True, buf=rest)
    st3, _, b3, rest = read_response(s, buf=rest)
    result(st1 == 200 and b1 == CACHE_INFO and st2 == 200 and b2 == b""
           and h2.get("content-length") == str(len(NARINFO)) and st3 == 200 and b3 == NARINFO,
           "pipelining: GET, HEAD, GET in one write, three responses in order")
except (Closed, OSError) as e:
    result(False, "pipelining: %s" % e)
finally:
    s.close()

# --- many idle connections -----------------------------------------------
idle = []
err = None
try:
    for i in range(1100):
        c = socket.create_connection(ADDR, timeout=10)
        if i % 2:
            c.sendall(b"GET /nix-cache-info HTTP/1.1\r\n")  # and nothing more
        idle.append(c)
except OSError as e:
    err = e
result(err is None, "1100 idle connections opened (%d; %s)" % (len(idle), err))
served_meanwhile("with %d idle connections open" % len(idle))
ok_all = True
for i in range(50):
    st, _, body = get(b"/" + HASH.encode() + b".narinfo", timeout=5)
    ok_all = ok_all and st == 200 and body == NARINFO
result(ok_all, "50 narinfo requests served with the idle connections open")
for c in idle:
    c.close()

# --- slowloris results ---------------------------------------------------
for t in threads:
    t.join(SLOW_BOUND + 10)
for key in ("trickle", "stalled"):
    end, got = slow.get(key, (None, b""))
    status = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/1.") else "no status"
    result(end is not None and end < SLOW_BOUND and status in ("408", "no status"),
           "slowloris (%s headers) cut off after %s s (%s; want < %d s, 408 or closed)"
           % (key, "%.1f" % end if end else "?", status, SLOW_BOUND))
served_meanwhile("at the end")
print("%d passed, %d failed" % (passes, fails))
sys.exit(min(fails, 100))
