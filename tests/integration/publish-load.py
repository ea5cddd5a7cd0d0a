#!/usr/bin/env python3
"""Many concurrent keep-alive clients against `cairn publish`
(test-publish-load.sh): mixed narinfo, nar, range, 404 requests, every body
checked.

usage: publish-load.py PORT ITEMS.json CLIENTS REQUESTS SECONDS

ITEMS.json: [{"hash": hash part, "path": store path, "nar": file holding the
item's NAR, "size": NAR size}].  Exit 0 only with zero errors.
"""
import asyncio
import hashlib
import json
import lzma
import random
import sys
import time

PORT = int(sys.argv[1])
ITEMS = json.load(open(sys.argv[2]))
CLIENTS = int(sys.argv[3])
REQUESTS = int(sys.argv[4])
SECONDS = float(sys.argv[5])
for it in ITEMS:
    it["bytes"] = open(it["nar"], "rb").read()
    it["sha"] = hashlib.sha256(it["bytes"]).hexdigest()

errors = []
counts = {}


def error(what):
    if len(errors) < 20:
        print("  error: " + what)
    errors.append(what)


class Conn:
    def __init__(self):
        self.r = self.w = None

    async def open(self):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", PORT)

    def close(self):
        if self.w:
            self.w.close()
        self.r = self.w = None

    async def request(self, path, headers=()):
        # A keep-alive connection that the server closes before answering
        # is retried once on a new one, as HTTP clients do (RFC 9112 9.3.1);
        # counted, and an error on a new connection.
        reused = self.w is not None
        try:
            return await self.request1(path, headers)
        except (asyncio.IncompleteReadError, ConnectionResetError) as e:
            if not reused or (isinstance(e, asyncio.IncompleteReadError) and e.partial):
                raise
            counts["reconnect"] = counts.get("reconnect", 0) + 1
            self.close()
            return await self.request1(path, headers)

    async def request1(self, path, headers):
        if self.w is None:
            await self.open()
        req = "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path, "".join(h + "\r\n" for h in headers))
        self.w.write(req.encode())
        await self.w.drain()
        head = await self.r.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        h = {}
        for l in lines[1:]:
            if l:
                k, _, v = l.partition(":")
                h[k.strip().lower()] = v.strip()
        if status == 304:
            body = b""
        elif "content-length" in h:
            body = await self.r.readexactly(int(h["content-length"]))
        elif h.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                n = int((await self.r.readuntil(b"\r\n")).split(b";")[0], 16)
                if n == 0:
                    await self.r.readuntil(b"\r\n")
                    break
                body += await self.r.readexactly(n)
                await self.r.readexactly(2)
            body = bytes(body)
        else:
            body = await self.r.read()
            self.close()
        if h.get("connection", "").lower() == "close":
            self.close()
        return status, h, body


def fields(text):
    f = {}
    for l in text.decode().splitlines():
        k, _, v = l.partition(": ")
        f.setdefault(k, v)
    return f


def decompress(comp, body):
    if comp == "none":
        return body
    if comp == "xz":
        return lzma.decompress(body)
    raise ValueError("cannot check compression %s" % comp)


NARINFO = {}


async def one(c, rnd):
    it = rnd.choice(ITEMS)
    kind = rnd.choice(["narinfo", "narinfo", "nar", "range", "missing", "cache-info"])
    if kind == "narinfo":
        st, h, body = await c.request("/%s.narinfo" % it["hash"])
        f = fields(body) if st == 200 else {}
        if st != 200 or f.get("StorePath") != it["path"] or f.get("NarSize") != str(it["size"]):
            error("narinfo %s: %d %r" % (it["hash"], st, body[:200]))
    elif kind == "missing":
        st, h, body = await c.request("/%s.narinfo" % ("0" * 32))
        if st != 404:
            error("missing narinfo: %d" % st)
    elif kind == "cache-info":
        st, h, body = await c.request("/nix-cache-info")
        if st != 200 or b"StoreDir: " not in body:
            error("nix-cache-info: %d" % st)
    else:
        url, comp, filesize = NARINFO[it["hash"]]
        if kind == "nar":
            st, h, body = await c.request("/" + url)
            try:
                ok = st == 200 and hashlib.sha256(decompress(comp, body)).hexdigest() == it["sha"]
            except Exception as e:
                ok = False
            if not ok:
                error("nar %s (%s): %d, %d bytes" % (url, comp, st, len(body)))
        else:
            # a compressed nar's length is known only once it is cached
            n = it["size"] if comp == "none" else (filesize or 100)
            lo = rnd.randrange(0, n)
            hi = rnd.randrange(lo, min(n, lo + 200000))
            st, h, body = await c.request("/" + url, ["Range: bytes=%d-%d" % (lo, hi)])
            if comp == "none":
                ok = st == 206 and body == it["bytes"][lo:hi + 1] and \
                    h.get("content-range") == "bytes %d-%d/%d" % (lo, hi, n)
            else:
                # a nar still being compressed may ignore the range (200,
                # the whole nar); a cached one answers 206 with a slice
                if st == 200:
                    ok = hashlib.sha256(decompress(comp, body)).hexdigest() == it["sha"]
                else:
                    cr = h.get("content-range", "")
                    ok = st == 206 and cr.startswith("bytes %d-" % lo) and \
                        len(body) == int(cr.split("-")[1].split("/")[0]) - lo + 1
            if not ok:
                error("range %d-%d of %s (%s): %d %s, %d bytes" % (lo, hi, url, comp, st,
                                                                    h.get("content-range"), len(body)))
    counts[kind] = counts.get(kind, 0) + 1


async def client(i, deadline):
    rnd = random.Random(i)
    c = Conn()
    done = 0
    while done < REQUESTS and time.monotonic() < deadline:
        try:
            await asyncio.wait_for(one(c, rnd), timeout=max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            error("client %d: request timed out" % i)
            c.close()
            return
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            error("client %d: %s: %s" % (i, type(e).__name__, e))
            c.close()
        done += 1
    c.close()


async def main():
    c = Conn()
    for it in ITEMS:
        st, h, body = await c.request("/%s.narinfo" % it["hash"])
        f = fields(body)
        if st != 200 or "URL" not in f:
            error("narinfo %s: %d" % (it["hash"], st))
            return
        fs = f.get("FileSize")
        NARINFO[it["hash"]] = (f["URL"], f.get("Compression", "bzip2"), int(fs) if fs else None)
    c.close()
    t0 = time.monotonic()
    await asyncio.gather(*(client(i, t0 + SECONDS) for i in range(CLIENTS)))
    dt = time.monotonic() - t0
    n = sum(v for k, v in counts.items() if k != "reconnect")
    print("  %d clients, %d requests in %.1f s (%.0f/s): %s; %d errors"
          % (CLIENTS, n, dt, n / dt, counts, len(errors)))
    if n < CLIENTS * REQUESTS:
        error("only %d of %d requests done in %.0f s" % (n, CLIENTS * REQUESTS, SECONDS))

asyncio.run(main())
sys.exit(1 if errors else 0)
