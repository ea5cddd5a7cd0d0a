#!/usr/bin/env bash
# `cairn publish --binary-cache DIR` serves a `nix copy --to file://DIR`
# directory as it is: every file (nix-cache-info, narinfos, nars, .ls, logs)
# comes back byte for byte, as nginx serves it (nix-cache-info with the
# batch route said: CairnNarinfos: 1), with HEAD, Range (206) and
# If-None-Match (304).  nginx runs the same checks first, so a check that
# nginx fails is a broken test, not a broken server.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 nginx
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
if ! top=$(pstore_build "$TMP/src" 5 pb 30000 2> "$TMP/build.err"); then
  cat "$TMP/build.err"
  not_ok "nix-build builds a 5-path closure"
  finish
  exit 1
fi
nix key generate-secret --key-name bc-test-1 > "$TMP/k.sec"
BC=$TMP/bc
# one closure twice, so that the directory has nars of two kinds
nix copy --quiet --from "$SRC" --to "file://$BC?compression=xz&write-nar-listing=true&secret-key=$TMP/k.sec" "$top"
top2=$(pstore_build "$TMP/src" 2 pz 5000 2> /dev/null)
nix copy --quiet --from "$SRC" --to "file://$BC?compression=zstd&write-nar-listing=true&secret-key=$TMP/k.sec" "$top2"
drv=$(nix path-info --store "$SRC" --json "$top" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["deriver"])')
nix store copy-log --quiet --from "$SRC" --to "file://$BC" "$drv" 2> /dev/null || true
(cd "$BC" && find . -type f | sed 's|^\./||' | sort) > "$TMP/files"
check "the cache has nix-cache-info, narinfos, nars and listings ($(wc -l < "$TMP/files") files)" \
  bash -c 'grep -qx nix-cache-info "$0" && grep -q "\.narinfo$" "$0" && grep -q "^nar/.*\.nar\.xz$" "$0" &&
    grep -q "^nar/.*\.nar\.zst$" "$0" && grep -q "\.ls$" "$0"' "$TMP/files"

# serve_check NAME URL: every file of $BC comes back identical from URL, and
# HEAD, Range, If-None-Match behave; an unknown name is a 404
serve_check() {
  python3 - "$1" "$2" "$BC" "$TMP/files" << 'EOF'
import http.client, os, sys, urllib.parse
name, url, root, listing = sys.argv[1:5]
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
fails = 0
def req(method, path, headers={}):
    conn.request(method, "/" + path, headers=headers)
    r = conn.getresponse()
    return r, r.read()
def bad(what):
    global fails
    fails += 1
    print("  %s: %s" % (name, what))
files = open(listing).read().split()
for f in files:
    data = open(os.path.join(root, f), "rb").read()
    if name == "cairn" and f == "nix-cache-info":
        # cairn says its batch route there (docs/PROTOCOL.md); made per
        # request, so no validators: Nix and Guix read it once a day
        data += b"CairnNarinfos: 1\n"
        r, body = req("GET", f)
        if r.status != 200 or body != data:
            bad("GET %s: %d, %r" % (f, r.status, body))
        r, body = req("HEAD", f)
        if r.status != 200 or body != b"":
            bad("HEAD %s: %d, body %d bytes" % (f, r.status, len(body)))
        continue
    n = len(data)
    r, body = req("GET", f)
    if r.status != 200 or body != data:
        bad("GET %s: %d, %d bytes (file: %d)" % (f, r.status, len(body), n)); continue
    if r.getheader("Content-Length") != str(n):
        bad("GET %s: Content-Length %s, want %d" % (f, r.getheader("Content-Length"), n))
    if f.endswith(".narinfo") and "x-nix-narinfo" not in (r.getheader("Content-Type") or ""):
        bad("GET %s: Content-Type %s" % (f, r.getheader("Content-Type")))
    etag = r.getheader("ETag")
    r, body = req("HEAD", f)
    if r.status != 200 or body != b"" or r.getheader("Content-Length") != str(n):
        bad("HEAD %s: %d, Content-Length %s, body %d bytes" % (f, r.status, r.getheader("Content-Length"), len(body)))
    if n > 100:
        for rng, lo, hi in (("10-99", 10, 99), ("-50", n - 50, n - 1), ("%d-" % (n - 7), n - 7, n - 1)):
            r, body = req("GET", f, {"Range": "bytes=" + rng})
            if r.status != 206 or body != data[lo:hi + 1] or \
               r.getheader("Content-Range") != "bytes %d-%d/%d" % (lo, hi, n):
                bad("Range %s of %s: %d, %s, %d bytes" % (rng, f, r.status, r.getheader("Content-Range"), len(body)))
        r, body = req("GET", f, {"Range": "bytes=%d-" % (n + 10)})
        if r.status != 416:
            bad("Range past the end of %s: %d, want 416" % (f, r.status))
    if not etag:
        bad("GET %s: no ETag" % f)
    else:
        r, body = req("GET", f, {"If-None-Match": etag})
        if r.status != 304 or body != b"":
            bad("If-None-Match %s on %s: %d" % (etag, f, r.status))
        r, body = req("GET", f, {"If-None-Match": '"not-' + etag.strip('W/"') + '"'})
        if r.status != 200 or body != data:
            bad("If-None-Match with another ETag on %s: %d" % (f, r.status))
for f in ("00000000000000000000000000000000.narinfo", "nar/missing.nar.xz"):
    r, body = req("GET", f)
    if r.status != 404:
        bad("GET %s: %d, want 404" % (f, r.status))
print("  %s: %d files checked" % (name, len(files)))
sys.exit(1 if fails else 0)
EOF
}

if nginx_start bc "$BC"; then
  check "nginx serves the cache as the checks expect" serve_check nginx "$NGINX_URL"
  nginx_stop
else
  not_ok "nginx starts"
fi

if publish_start --binary-cache "$BC"; then
  check "cairn publish --binary-cache serves every file identically" serve_check cairn "$PUBLISH_URL"
  check "  and a Nix client substitutes from it" \
    nix copy --quiet --from "$PUBLISH_URL" --to "$(pstore_dst_uri "$TMP/dst")" \
    --option trusted-public-keys "$(nix key convert-secret-to-public < "$TMP/k.sec")" "$top"
  check "  (the copy is the source's)" \
    [ "$(nar_sha256 "$top")" = "$(nar_sha256 "$TMP/dst/store/${top##*/}")" ]
  publish_stop || not_ok "cairn publish stops cleanly on SIGTERM"
else
  not_ok "cairn publish --binary-cache starts"
fi

finish
