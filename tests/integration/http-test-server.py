#!/usr/bin/env python3
"""A small HTTP/1.1 server that misbehaves on purpose, for test-http-client.sh.

    http-test-server.py PORTFILE

Listens on 127.0.0.1 at a free port, writes the port to PORTFILE, and serves
until killed (or for at most 300 s).  A second port (PORTFILE's second line)
accepts connections and never says a word: an https:// client waits there
for a TLS handshake until its connect timeout.  Paths:

  /data/N           N deterministic bytes; Range, Accept-Ranges, keep-alive,
                    Cache-Control: max-age=600
  /short/N          Content-Length N, sends N/2 bytes, closes
  /chunked-cut/N    chunked, sends N/2 bytes in chunks, closes without the
                    last chunk
  /stall/N          Content-Length N, sends N/2 bytes, then nothing for 20 s
  /slow-headers     nothing for 20 s
  /status/CODE      that status, a short body, Cache-Control: max-age=60
  /flaky/N          like /data/N, but a request without Range gets half the
                    body (full Content-Length) and a closed connection
  /huge-cl          announces 100 MiB
  /huge             chunked, up to 64 MiB
  /redirect/K       K redirects, then /data/100
  /nix-cache-info   a cache info file
  /stats            "connections=N": connections accepted, this one excluded
  /reset            sets the connection count to 0
"""
import os
import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK = random.Random(42).randbytes(1 << 20)
lock = threading.Lock()
connections = 0


def data(n):
    reps = n // len(BLOCK) + 1
    return (BLOCK * reps)[:n]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global connections
        with lock:
            connections += 1
        super().setup()
        # headers and body go out in separate writes: without this, Nagle
        # and delayed ACKs add 40 ms to every keep-alive request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def send(self, code, body, headers=()):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def cut(self, code, body, sent):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body[:sent])
        self.wfile.flush()
        self.close_connection = True
        # RST-free close: shut down writing so the client sees EOF
        self.connection.shutdown(socket.SHUT_WR)

    def ranged(self, body):
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(body):
                self.send(416, b"", [("Content-Range", "bytes */%d" % len(body))])
                return
            part = body[start:]
            self.send(206, part, [("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body))),
                                  ("Accept-Ranges", "bytes")])
            return
        self.send(200, body, [("Accept-Ranges", "bytes"), ("Cache-Control", "public, max-age=600")])

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        global connections
        parts = self.path.strip("/").split("/")
        what = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        if what == "data":
            self.ranged(data(int(arg)))
        elif what == "flaky":
            body = data(int(arg))
            if self.headers.get("Range"):
                self.ranged(body)
            else:
                self.cut(200, body, len(body) // 2)
        elif what == "short":
            self.cut(200, data(int(arg)), int(arg) // 2)
        elif what == "chunked-cut":
            n = int(arg)
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = data(n // 2)
            for i in range(0, len(body), 1000):
                c = body[i:i + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
        elif what == "stall":
            n = int(arg)
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(data(n // 2))
            self.wfile.flush()
            time.sleep(20)
            self.close_connection = True
        elif what == "slow-headers":
            time.sleep(20)
            self.close_connection = True
        elif what == "status":
            self.send(int(arg), b"status body\n", [("Cache-Control", "max-age=60")])
        elif what == "huge-cl":
            self.send_response(200)
            self.send_header("Content-Length", str(100 << 20))
            self.end_headers()
            try:
                self.wfile.write(data(1 << 20))
            except OSError:
                pass
            self.close_connection = True
        elif what == "huge":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for _ in range(64):
                    c = data(1 << 20)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            self.close_connection = True
        elif what == "redirect":
            k = int(arg)
            loc = "/redirect/%d" % (k - 1) if k > 1 else "/data/100"
            self.send(302, b"", [("Location", loc)])
        elif what == "nix-cache-info":
            self.send(200, b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n",
                      [("Content-Type", "text/x-nix-cache-info")])
        elif what == "stats":
            with lock:
                n = connections - 1
            self.send(200, b"connections=%d\n" % n, [("Connection", "close")])
            self.close_connection = True
        elif what == "reset":
            with lock:
                connections = 0
            self.send(200, b"ok\n", [("Connection", "close")])
            self.close_connection = True
        else:
            self.send(404, b"not found\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        pass  # clients that stop reading on purpose reset connections


def silent(sock):
    held = []
    while True:
        conn, _ = sock.accept()
        held.append(conn)  # keep it open, say nothing


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    quiet = socket.socket()
    quiet.bind(("127.0.0.1", 0))
    quiet.listen(64)
    threading.Thread(target=silent, args=(quiet,), daemon=True).start()
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n%d\n" % (port, quiet.getsockname()[1]))
    os.rename(tmp, sys.argv[1])
    threading.Timer(300, lambda: os._exit(0)).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
