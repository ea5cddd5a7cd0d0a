#!/usr/bin/env python3
"""narinfos-proxy.py UPSTREAM PORT_FILE LOG MODE: an HTTP proxy in front of
a cairn publish server that changes what it says about batches, for
test-narinfo-batch.sh.  Every request line is appended to LOG.

  plain      nix-cache-info without CairnNarinfos (a server that does not
             take batches); /narinfos is 404
  lie        CairnNarinfos: 1, but /narinfos is 404 (a client falls back)
  extra      batch responses with one more narinfo, for a hash not asked
  oversize   batch responses whose first narinfo announces 2 MiB
  cut        batch responses without their End line
  missing    batch responses without their first entry (End recounted)
"""
import http.server
import re
import sys
import urllib.error
import urllib.request

upstream, port_file, log, mode = sys.argv[1:5]


def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")


def entries(body):
    """[(kind, hash, bytes)] of a well-formed batch body."""
    out, pos = [], body.index(b"\n") + 1
    while True:
        nl = body.index(b"\n", pos)
        line = body[pos:nl].decode()
        pos = nl + 1
        if line.startswith("End: "):
            return out
        if line.startswith("Absent: "):
            out.append(("Absent", line[8:], b""))
            continue
        _, h, n = line.split(" ")
        out.append(("Narinfo", h, body[pos:pos + int(n)]))
        pos += int(n)


def render(ents, end=True):
    b = b"CairnNarinfos: 1\n"
    for kind, h, text in ents:
        if kind == "Absent":
            b += b"Absent: " + h.encode() + b"\n"
        else:
            b += b"Narinfo: %s %d\n" % (h.encode(), len(text)) + text
    if end:
        b += b"End: %d\n" % len(ents)
    return b


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        note("GET " + self.path)
        batch = self.path.startswith("/narinfos")
        if batch and mode in ("plain", "lie"):
            return self.send(404, b"404 not found\n")
        try:
            with urllib.request.urlopen(upstream + self.path, timeout=20) as r:
                code, body, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            code, body, ctype = e.code, e.read(), "text/plain"
        if self.path == "/nix-cache-info" and mode == "plain":
            body = re.sub(rb"CairnNarinfos: 1\n", b"", body)
        if batch and code == 200:
            ents = entries(body)
            if mode == "extra":
                text = ents[0][2] if ents[0][0] == "Narinfo" else b"StorePath: x\n"
                ents.append(("Narinfo", "0" * 31 + "1", text))
                body = render(ents)
            elif mode == "oversize":
                body = b"CairnNarinfos: 1\nNarinfo: %s 2097152\n" % ents[0][1].encode()
                body += b"x" * 2097152 + b"End: 1\n"
            elif mode == "cut":
                body = render(ents, end=False)
            elif mode == "missing":
                body = render(ents[1:])
        self.send(code, body, ctype)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
