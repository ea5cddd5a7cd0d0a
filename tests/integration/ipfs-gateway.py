#!/usr/bin/env python3
"""A small IPFS trustless gateway for tests (issue 15), serving the blocks of
CAR files (`cairn ipfs add --car` output), with modes that lie.

    ipfs-gateway.py --port-file F --log L [--mode M] CAR...

GET /ipfs/<cid>?format=raw                  one block
GET /ipfs/<cid>?format=car[&dag-scope=entity&entity-bytes=FROM:TO]
                                            the DAG under cid (or the blocks
                                            of those bytes: the nodes on the
                                            way and the leaves that overlap)
Modes: ok; wrong-block (every block answered is another block's bytes, and
a CAR's first leaf has a byte flipped); truncated-car (a CAR is cut in its
middle, Content-Length agreeing); extra-blocks (a CAR carries one more
block that is not in the DAG); 404 (nothing is there).  The log gets one
line per request: "<status> <body bytes> <path>".

--hold CID --hold-dir D: a request naming CID gets its status and headers,
then nothing more until D/release exists; D/held is written (the number of
requests held so far) once they are out.  So a test knows, by a file rather
than the clock, that a client is waiting on this gateway.
"""
import argparse
import base64
import hashlib
import http.server
import os
import socketserver
import sys
import threading
import time
import urllib.parse


def varint(buf, i):
    v = s = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << s
        s += 7
        if not b & 0x80:
            return v, i


def put_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_cid(buf, i):
    if buf[i] == 0x12 and buf[i + 1] == 0x20:  # CIDv0
        return bytes([1, 0x70]) + buf[i:i + 34], i + 34
    start = i
    _, i = varint(buf, i)  # version
    _, i = varint(buf, i)  # codec
    _, i = varint(buf, i)  # multihash fn
    n, i = varint(buf, i)
    return bytes(buf[start:i + n]), i + n


def cid_str(cid):
    return "b" + base64.b32encode(cid).decode().lower().rstrip("=")


def read_car(path, blocks):
    buf = open(path, "rb").read()
    n, i = varint(buf, 0)
    i += n
    while i < len(buf):
        n, j = varint(buf, i)
        end = j + n
        cid, k = read_cid(buf, j)
        blocks[cid] = bytes(buf[k:end])
        i = end


def fields(buf):
    """(field, wire type, value) of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            v = buf[i:i + n]
            i += n
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def node(data):
    """links (cid, ...) and blocksizes of a dag-pb UnixFS file node."""
    links, sizes = [], []
    for f, _, v in fields(data):
        if f == 2:
            for lf, _, lv in fields(v):
                if lf == 1:
                    links.append(read_cid(lv, 0)[0])
        elif f == 1:
            for uf, wt, uv in fields(v):
                if uf == 4 and wt == 0:
                    sizes.append(uv)
                elif uf == 4:
                    j = 0
                    while j < len(uv):
                        s, j = varint(uv, j)
                        sizes.append(s)
    return links, sizes


def dag_blocks(blocks, cid, lo, hi, off=0):
    """Blocks under cid covering file bytes [lo, hi], depth first, in order."""
    data = blocks[cid]
    out = [cid]
    if cid[1] != 0x70:
        return out
    links, sizes = node(data)
    for c, s in zip(links, sizes):
        if off <= hi and off + s - 1 >= lo and s:
            out += dag_blocks(blocks, c, lo, hi, off)
        off += s
    return out


def car(root, cids, blocks):
    head = (b"\xa2\x65roots\x81\xd8\x2a\x58" + bytes([len(root) + 1]) + b"\x00" + root +
            b"\x67version\x01")
    out = bytearray(put_varint(len(head)) + head)
    for c in cids:
        d = blocks[c]
        out += put_varint(len(c) + len(d)) + c + d
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--mode", default="ok",
                    choices=["ok", "wrong-block", "truncated-car", "extra-blocks", "404"])
    ap.add_argument("--dump", help="write each 200 body to DUMP/<n> (bench/delta.sh)")
    ap.add_argument("--hold", help="hold requests naming this CID")
    ap.add_argument("--hold-dir", help="held / release files of --hold")
    ap.add_argument("cars", nargs="*")
    a = ap.parse_args()
    held = [0]

    def hold():
        with lock:
            held[0] += 1
            tmp = os.path.join(a.hold_dir, "held.tmp")
            with open(tmp, "w") as fh:
                fh.write(str(held[0]))
            os.rename(tmp, os.path.join(a.hold_dir, "held"))
        release = os.path.join(a.hold_dir, "release")
        for _ in range(6000):  # bounded: 5 minutes
            if os.path.exists(release):
                return
            time.sleep(0.05)

    blocks = {}
    for p in a.cars:
        read_car(p, blocks)
    by_str = {cid_str(c): c for c in blocks}
    lock = threading.Lock()
    log = open(a.log, "a", buffering=1)

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, code, body, ctype="text/plain"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if code == 200:
                self.send_header("Cache-Control", "public, max-age=29030400, immutable")
            self.end_headers()
            if a.hold and a.hold in self.path:
                hold()
            if self.command != "HEAD":
                self.wfile.write(body)
            with lock:
                log.write("%d %d %s\n" % (code, len(body), self.path))
                if a.dump and code == 200:
                    n = len(os.listdir(a.dump))
                    open(os.path.join(a.dump, str(n)), "wb").write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(u.query)
            parts = u.path.split("/")
            if len(parts) != 3 or parts[1] != "ipfs":
                return self.send(404, b"not found\n")
            cid = by_str.get(parts[2])
            if cid is None or a.mode == "404":
                return self.send(404, b"no such block\n")
            fmt = q.get("format", [""])[0]
            accept = self.headers.get("Accept", "")
            if fmt == "raw" or "application/vnd.ipld.raw" in accept:
                body = blocks[cid]
                if a.mode == "wrong-block":
                    others = [b for c, b in blocks.items() if c != cid]
                    body = others[0] if others else body + b"x"
                return self.send(200, body, "application/vnd.ipld.raw")
            if fmt == "car" or "application/vnd.ipld.car" in accept:
                lo, hi = 0, 1 << 62
                eb = q.get("entity-bytes", [None])[0]
                if eb:
                    f, t = eb.split(":")
                    lo = int(f)
                    hi = hi if t == "*" else int(t)
                cids = dag_blocks(blocks, cid, lo, hi)
                local = dict(blocks)
                if a.mode == "wrong-block":
                    leaf = next((c for c in cids if c[1] == 0x55), None)
                    if leaf is not None:
                        b = bytearray(local[leaf])
                        b[0] ^= 1
                        local[leaf] = bytes(b)
                if a.mode == "extra-blocks":
                    data = b"a block that is not in this DAG\n"
                    extra = bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
                    local[extra] = data
                    cids.append(extra)
                body = car(cid, cids, local)
                if a.mode == "truncated-car":
                    body = body[:len(body) // 2]
                return self.send(200, body, "application/vnd.ipld.car; version=1")
            return self.send(400, b"format=raw or format=car\n")

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = S(("127.0.0.1", 0), H)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(srv.server_address[1]))
    os.rename(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
