#!/usr/bin/env python3
"""An HTTP/1.1 server that misbehaves on request, for the client-side tests.

    hostile-server.py --port-file FILE [--root DIR] [--log FILE]
                      [--mode MODE] [--hold S] [--lifetime S]

Listens on 127.0.0.1 at a free port and writes the port to FILE (atomically).
One process serves every behaviour: each request picks its own, so one server
can be a healthy binary cache under one base URL and a black hole under
another (http://127.0.0.1:PORT/silent is a whole silent cache).

A request is  /[MODE/]RESOURCE[?mode=MODE]  where the mode is, first match:
the query's mode=, the first path segment when it names a mode, --mode, else
"normal".  Other query parameters are ignored.

Resources:
  bytes/N          N deterministic bytes (random.Random(42), 1 MiB repeated;
                   the same bytes as http-test-server.py's /data/N)
  anything else    the file RESOURCE under --root ("." and ".." refused);
                   404 when there is none

Modes (ARG in brackets is optional; sizes default to half the body):
  normal              the resource: 200, or 206 for "Range: bytes=A-[B]" /
                      "bytes=-S", 416 when unsatisfiable; HEAD; keep-alive
  silent              read the request, never answer (a black hole)
  silent-headers      send the headers, then nothing
  silent-body[-N]     headers and N body bytes, then nothing (a stall)
  trickle-headers[-MS] the status line and headers one byte every MS ms
                      (default 100), then the body at once
  trickle-body[-MS]   headers at once, then the body one byte every MS ms
                      (default 100)
  hangup              read the request, close without a word
  reset               read the request, reset the connection (RST)
  reset-body[-N]      headers and N body bytes, then RST
  range200            ignore Range: always 200 with the whole body
  badrange            a Range request gets 206 with the whole body and
                      "Content-Range: bytes 0-(L-1)/L", not the range asked
  cut200              a request without Range gets half its body and a clean
                      close; a Range request gets 200 with the whole body
  cutbadrange         the same cut; a Range request is answered as badrange
  truncate-N          the first N requests for this path (mode included) get
                      their body (or range) cut at half with a clean close
                      after the full Content-Length; later ones are whole
  status-CODE         that status with a short body
  delay-MS            wait MS ms, then answer as normal

Log (--log FILE), one line per event, flushed at once, times in ms since
the server started (CLOCK_MONOTONIC, as time.monotonic):
  conn t=MS conn=ID                                       a connection accepted
  req t=MS conn=ID method=GET path=/P range=R mode=M      a request read
  held t=MS conn=ID end=client|hold     a held connection ended: the client
                                        left, or --hold ran out
  trickle t=MS conn=ID sent=N of=M end=client|done   a trickle ended: the
                                        client left, or all M bytes went out
where R is the Range header ("-" when none) and P the path as sent (with
its query).  Tests count these lines; e.g. requests that reached a silent
server: grep -c '^req .* path=/silent/'.

Bounds: a request head is at most 64 KiB; a held connection (silent modes,
trickles) ends after --hold seconds (default 60) or when the client leaves;
the whole process exits after --lifetime seconds (default 600).  Only
127.0.0.1.  Python 3 standard library only.
"""
import argparse
import os
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time

HEAD_MAX = 64 << 10
BLOCK = random.Random(42).randbytes(1 << 20)
T0 = time.monotonic()

MODES = {"normal", "silent", "silent-headers", "silent-body", "trickle-headers",
         "trickle-body", "hangup", "reset", "reset-body", "range200", "badrange",
         "cut200", "cutbadrange",
         "truncate", "status", "delay"}

opts = None
log_lock = threading.Lock()
log_file = None
count_lock = threading.Lock()
truncate_counts = {}
conn_ids = 0


def now_ms():
    return (time.monotonic() - T0) * 1000.0


def log(line):
    if log_file is None:
        return
    with log_lock:
        log_file.write(line + "\n")
        log_file.flush()


def data(n):
    reps = n // len(BLOCK) + 1
    return (BLOCK * reps)[:n]


def parse_mode(word):
    """'trickle-body-250' -> ('trickle-body', 250); None when not a mode."""
    name, arg = word or "", None
    head, _, tail = name.rpartition("-")
    if head and tail.isdigit() and len(tail) <= 9:
        name, arg = head, int(tail)
    if name not in MODES:
        return None
    return name, arg


class Closed(Exception):
    """The client went away, or the connection was ended on purpose."""


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        global conn_ids
        with count_lock:
            conn_ids += 1
            self.cid = conn_ids
        self.sock = self.request
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(opts.hold)
        self.buf = b""
        log("conn t=%.1f conn=%d" % (now_ms(), self.cid))

    # ---- reading -----------------------------------------------------
    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > HEAD_MAX:
                raise Closed()
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                raise Closed()
            if not chunk:
                raise Closed()
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise Closed()
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        return parts[0], parts[1], parts[2], headers

    def hold(self):
        """Say nothing until the client leaves or --hold runs out."""
        end = time.monotonic() + opts.hold
        by = "hold"
        while time.monotonic() < end:
            try:
                if not self.sock.recv(65536):
                    by = "client"
                    break
            except socket.timeout:
                break
            except OSError:
                by = "client"
                break
        log("held t=%.1f conn=%d end=%s" % (now_ms(), self.cid, by))
        raise Closed()

    # ---- writing -----------------------------------------------------
    def send(self, b):
        try:
            self.sock.sendall(b)
        except OSError:
            raise Closed()

    def trickle(self, b, ms):
        for i in range(len(b)):
            try:
                self.send(b[i:i + 1])
            except Closed:
                log("trickle t=%.1f conn=%d sent=%d of=%d end=client" % (now_ms(), self.cid, i, len(b)))
                raise
            time.sleep(ms / 1000.0)
        log("trickle t=%.1f conn=%d sent=%d of=%d end=done" % (now_ms(), self.cid, len(b), len(b)))

    def rst(self):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        raise Closed()

    def clean_close(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        raise Closed()

    @staticmethod
    def head_bytes(code, headers):
        reason = {200: "OK", 206: "Partial Content", 404: "Not Found",
                  416: "Range Not Satisfiable"}.get(code, "Status")
        out = "HTTP/1.1 %d %s\r\n" % (code, reason)
        for k, v in headers:
            out += "%s: %s\r\n" % (k, v)
        return (out + "\r\n").encode("latin-1")

    # ---- resources -----------------------------------------------------
    def resource(self, path):
        """The body of RESOURCE, or None when there is none."""
        m = re.fullmatch(r"bytes/([0-9]{1,10})", path)
        if m:
            n = int(m.group(1))
            return data(n) if n <= (256 << 20) else None
        if not opts.root or not path:
            return None
        segs = path.split("/")
        if any(s in ("", ".", "..") for s in segs):
            return None
        full = os.path.join(opts.root, *segs)
        try:
            with open(full, "rb") as f:
                return f.read()
        except OSError:
            return None

    @staticmethod
    def content_type(path):
        if path.endswith(".narinfo"):
            return "text/x-nix-narinfo"
        if path.endswith("nix-cache-info"):
            return "text/x-nix-cache-info"
        return "application/octet-stream"

    @staticmethod
    def parse_range(value, n):
        """(first, last) of a single byte range, 'bad' when unsatisfiable,
        None when absent or not one we honour (then the whole body)."""
        m = re.fullmatch(r"bytes=([0-9]*)-([0-9]*)", value or "")
        if not m or (m.group(1) == "" and m.group(2) == ""):
            return None
        if m.group(1) == "":
            s = int(m.group(2))
            if s == 0 or n == 0:
                return "bad"
            return max(0, n - s), n - 1
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else n - 1
        if a >= n or b < a:
            return "bad"
        return a, min(b, n - 1)

    # ---- one request -----------------------------------------------------
    def answer(self, method, target, version, headers):
        path, _, query = target.partition("?")
        segs = path.lstrip("/").split("/", 1)
        mode = None
        for q in query.split("&"):
            if q.startswith("mode="):
                mode = parse_mode(q[5:])
        first = parse_mode(segs[0]) if len(segs) == 2 else None
        rest = path.lstrip("/")
        if first:
            rest = segs[1]
            if mode is None:
                mode = first
        if mode is None:
            mode = parse_mode(opts.mode) or ("normal", None)
        name, arg = mode
        rng = headers.get("range")
        log("req t=%.1f conn=%d method=%s path=%s range=%s mode=%s" %
            (now_ms(), self.cid, method, target, rng or "-", name + ("-%d" % arg if arg is not None else "")))
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"

        if name == "silent":
            self.hold()
        if name == "hangup":
            self.clean_close()
        if name == "reset":
            self.rst()
        if name == "delay":
            time.sleep((arg or 0) / 1000.0)
        if name == "status":
            body = b"status %d\n" % (arg or 500)
            self.send(self.head_bytes(arg or 500, [("Content-Length", str(len(body))),
                                                   ("Content-Type", "text/plain")]))
            if method != "HEAD":
                self.send(body)
            return keep

        body = self.resource(rest)
        if body is None:
            nf = b"not found\n"
            self.send(self.head_bytes(404, [("Content-Length", str(len(nf))),
                                            ("Content-Type", "text/plain")]))
            if method != "HEAD":
                self.send(nf)
            return keep

        n = len(body)
        code, part, hdrs = 200, body, [("Accept-Ranges", "bytes"),
                                       ("Content-Type", self.content_type(rest))]
        r = self.parse_range(rng, n) if rng and name not in ("range200", "cut200") else None
        if r == "bad":
            self.send(self.head_bytes(416, [("Content-Range", "bytes */%d" % n),
                                            ("Content-Length", "0")]))
            return keep
        if r is not None:
            code = 206
            if name in ("badrange", "cutbadrange"):
                hdrs.append(("Content-Range", "bytes 0-%d/%d" % (n - 1, n)))
            else:
                part = body[r[0]:r[1] + 1]
                hdrs.append(("Content-Range", "bytes %d-%d/%d" % (r[0], r[1], n)))
        hdrs.append(("Content-Length", str(len(part))))
        head = self.head_bytes(code, hdrs)
        if method == "HEAD":
            part = b""

        if name == "trickle-headers":
            self.trickle(head, arg or 100)
            self.send(part)
            return keep
        if name == "trickle-body":
            self.send(head)
            self.trickle(part, arg or 100)
            return keep
        if name in ("silent-headers", "silent-body", "reset-body"):
            cut = 0 if name == "silent-headers" else (arg if arg is not None else len(part) // 2)
            self.send(head)
            self.send(part[:cut])
            if name == "reset-body":
                time.sleep(0.05)  # let the bytes arrive before the RST
                self.rst()
            self.hold()
        if name in ("cut200", "cutbadrange") and not rng and method != "HEAD":
            self.send(head)
            self.send(part[:len(part) // 2])
            self.clean_close()
        if name == "truncate":
            key = (arg, path)
            with count_lock:
                seen = truncate_counts.get(key, 0)
                truncate_counts[key] = seen + 1
            if seen < (arg or 0):
                self.send(head)
                self.send(part[:len(part) // 2])
                self.clean_close()
        self.send(head)
        self.send(part)
        return keep

    def handle(self):
        try:
            while True:
                method, target, version, headers = self.read_head()
                if not self.answer(method, target, version, headers):
                    break
        except Closed:
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        pass  # clients that leave early are part of the test


def main():
    global opts, log_file
    ap = argparse.ArgumentParser(description="a misbehaving HTTP/1.1 server for tests")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--root")
    ap.add_argument("--log")
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--hold", type=float, default=60)
    ap.add_argument("--lifetime", type=float, default=600)
    opts = ap.parse_args()
    if parse_mode(opts.mode) is None:
        ap.error("unknown mode %r" % opts.mode)
    if opts.log:
        log_file = open(opts.log, "a", buffering=1)
    srv = Server(("127.0.0.1", 0), Handler)
    tmp = opts.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, opts.port_file)
    threading.Timer(opts.lifetime, lambda: os._exit(0)).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
