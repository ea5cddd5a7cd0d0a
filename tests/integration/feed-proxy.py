#!/usr/bin/env python3
"""A proxy in front of a feed head that forges pages on demand.

usage: feed-proxy.py UPSTREAM_URL MODE_FILE PORT_FILE

Everything is passed through, except /feed/events while MODE_FILE says
"forge": then the answer is a page after the asked `since` that removes
the item named on MODE_FILE's second line, hashed correctly but carrying
the signature of a real page (which signs another statement), as a forger
without the key would send.  Listens on 127.0.0.1, port written to
PORT_FILE.
"""
import hashlib
import http.server
import socketserver
import sys
import urllib.error
import urllib.parse
import urllib.request

UP, MODE, PORTF = sys.argv[1], sys.argv[2], sys.argv[3]


def mode():
    try:
        lines = open(MODE).read().split("\n")
        return lines[0].strip(), (lines[1].strip() if len(lines) > 1 else "")
    except OSError:
        return "pass", ""


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        m, victim = mode()
        u = urllib.parse.urlsplit(self.path)
        if m == "forge" and u.path == "/feed/events":
            since = int(urllib.parse.parse_qs(u.query)["since"][0])
            real = urllib.request.urlopen(UP + "/feed/events?since=0&max=1", timeout=30).read()
            head = real.split(b"\n")
            feed = [l for l in head if l.startswith(b"feed ")][0]
            sigs = [l for l in head if l.startswith(b"sig ")]
            body = (b"cairn-feed 1\nkind page\n" + feed + b"\ndialect nix\n"
                    + b"range %d %d\nhead %d\n" % (since, since + 1, since + 1)
                    + b"remove %d %s\n" % (since + 1, victim.encode()))
            body += b"end 1 " + hashlib.sha256(body).hexdigest().encode() + b"\n"
            body += b"\n".join(sigs) + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/x-cairn-feed")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        try:
            r = urllib.request.urlopen(UP + self.path, timeout=90)
            status, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = S(("127.0.0.1", 0), H)
with open(PORTF + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
import os
os.rename(PORTF + ".tmp", PORTF)
srv.serve_forever()
