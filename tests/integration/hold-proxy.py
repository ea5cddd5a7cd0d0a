#!/usr/bin/env python3
"""A proxy in front of a head that holds nar transfers after the first N.

usage: hold-proxy.py UPSTREAM_URL PASS STATE_DIR

Every request is passed through to UPSTREAM_URL, streamed.  The first PASS
requests for /nar/... are passed whole (or as many as STATE_DIR/pass says,
once written: counted from the proxy's start); each later one gets its status,
headers and first bytes, then nothing more: the proxy writes STATE_DIR/held
(the number of nar requests seen so far) and holds the connection open
until it is killed.  So a test knows, by counting requests rather than by
the clock, that a client is in the middle of a transfer from the head when
it kills the head (and this proxy) with SIGKILL.  Listens on 127.0.0.1,
port written to STATE_DIR/port, requests logged to STATE_DIR/log.
"""
import http.client
import http.server
import os
import socketserver
import sys
import threading
import urllib.parse

UP = urllib.parse.urlsplit(sys.argv[1])
PASS = int(sys.argv[2])
STATE = sys.argv[3]
FIRST_BYTES = 16384

lock = threading.Lock()
nars = 0
forever = threading.Event()


def passed():
    """PASS, or the number in STATE_DIR/pass once a test wrote one."""
    try:
        return int(open(os.path.join(STATE, "pass")).read())
    except (OSError, ValueError):
        return PASS


def write_atomic(name, text):
    tmp = os.path.join(STATE, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(STATE, name))


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def relay(self, body):
        global nars
        hold = False
        if self.path.startswith("/nar/") and body:
            with lock:
                nars += 1
                hold = nars > passed()
        with lock, open(os.path.join(STATE, "log"), "a") as f:
            f.write("%s %s%s\n" % (self.command, self.path, " held" if hold else ""))
        up = http.client.HTTPConnection(UP.hostname, UP.port, timeout=120)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() not in ("host", "connection", "keep-alive")}
        up.request(self.command, self.path, headers=hdrs)
        r = up.getresponse()
        self.send_response(r.status)
        length = None
        for k, v in r.getheaders():
            kl = k.lower()
            if kl in ("connection", "keep-alive", "transfer-encoding"):
                continue
            if kl == "content-length":
                length = int(v)
            self.send_header(k, v)
        chunked = body and length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        while body:
            b = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
            if not b:
                break
            if hold and sent + len(b) > FIRST_BYTES:
                b = b[:max(1, FIRST_BYTES - sent)]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b) if chunked else b)
            self.wfile.flush()
            sent += len(b)
            if hold and sent >= FIRST_BYTES:
                with lock:
                    write_atomic("held", "%d\n" % nars)
                forever.wait()  # until SIGKILL
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        up.close()

    def do_GET(self):
        self.relay(True)

    def do_HEAD(self):
        self.relay(False)


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client or the head gone mid-transfer is what tests do


srv = S(("127.0.0.1", 0), H)
write_atomic("port", "%d\n" % srv.server_address[1])
srv.serve_forever()
