#!/usr/bin/env python3
"""A binary cache server that misbehaves on purpose, for test-fetch.sh (and,
in serve mode, as the hostile upstream of test-mirror-hostile.sh).

    fetch-test-server.py DIR PORTFILE MODE [LOG]

Serves the files under DIR on 127.0.0.1 (a free port, written to PORTFILE)
over HTTP/1.1 with keep-alive, Accept-Ranges and Range.  Narinfos and
nix-cache-info are always served as they are; what happens to files under
nar/ depends on MODE:

  serve    as they are
  tamper   one byte in the middle flipped (same length)
  die      headers with the full length, half of the body, then the whole
           process exits (a server killed mid-transfer)
  stall    half of the body, nothing for 30 s, then the rest (a client
           that waits that long gets the whole body from here)
  cut      a request without Range gets half of the body and a closed
           connection; a Range request is answered properly (206)
  missing  404
  late[-MS] everything as it is, but narinfos answered MS (default 500) ms late (a slow
           server whose answer comes after another server's)
  missing-late-MS  both: NARs 404, narinfos MS ms late

Every request is appended to LOG as "METHOD PATH RANGE".
"""
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, PORTFILE, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
LOG = sys.argv[4] if len(sys.argv) > 4 else None
loglock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def plain(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        rng = self.headers.get("Range")
        if LOG:
            with loglock, open(LOG, "a") as f:
                f.write("%s %s %s\n" % (self.command, self.path, rng or "-"))
        rel = self.path.split("?")[0].lstrip("/")
        full = os.path.realpath(os.path.join(ROOT, rel))
        if not full.startswith(os.path.realpath(ROOT) + "/") or not os.path.isfile(full):
            return self.plain(404, b"not found\n")
        with open(full, "rb") as f:
            body = f.read()
        is_nar = rel.startswith("nar/")
        if MODE.startswith("late") and rel.endswith(".narinfo"):
            time.sleep(int(MODE[5:] or 500) / 1000)
        if MODE.startswith("missing-late-") and rel.endswith(".narinfo"):
            time.sleep(int(MODE[13:]) / 1000)
        if is_nar and MODE.startswith("missing"):
            return self.plain(404, b"not found\n")
        if is_nar and MODE == "tamper" and body:
            i = len(body) // 2
            body = body[:i] + bytes([body[i] ^ 0x55]) + body[i + 1:]
        start = 0
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(body):
                return self.plain(416)
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body)))
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.command == "HEAD":
            return
        half = len(body) // 2
        if is_nar and MODE == "die" and start == 0:
            self.wfile.write(body[:half])
            self.wfile.flush()
            os._exit(0)
        if is_nar and MODE == "stall" and start == 0:
            self.wfile.write(body[:half])
            self.wfile.flush()
            time.sleep(30)
            self.wfile.write(body[half:])
            return
        if is_nar and MODE == "cut" and not rng:
            self.wfile.write(body[:half])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
            return
        self.wfile.write(body[start:])


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
tmp = PORTFILE + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, PORTFILE)
threading.Timer(600, lambda: os._exit(0)).start()
srv.serve_forever()
