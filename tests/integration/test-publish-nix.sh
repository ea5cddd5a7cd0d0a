#!/usr/bin/env bash
# The real Nix client substitutes from `cairn publish`: a closure built by
# nix-build is served from its store with a cairn key, and `nix copy --from
# http://...` brings back identical paths with every compression Nix 2.8
# can decompress; a different trusted key makes Nix refuse; `nix path-info`
# and `nix store ls` work against the server.  Then the Guix dialect: the
# narinfo verifies with `cairn narinfo verify` and is laid out as
# `guix publish` lays it out.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 zstd lzip gzip
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
if ! top=$(pstore_build "$TMP/src" 6 pn 20000); then
  not_ok "nix-build builds a 6-path closure"
  finish
  exit 1
fi
mapfile -t closure < <(nix path-info --store "$SRC" -r "$top")
check "the closure of $top has 6 paths" [ "${#closure[@]}" -eq 6 ]
check "it holds an executable and a symlink" \
  test -x "$top/bin/pn-6" -a -L "$top/link"
hp() { basename "$1" | cut -c1-32; }

"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" cairn-test-1
"$CAIRN" key generate --format nix --secret "$TMP/o.sec" --public "$TMP/o.pub" other-test-1
PUB=$(cat "$TMP/k.pub")
OTHER=$(cat "$TMP/o.pub")

# identical DST: every path of the closure is valid in DST with the source's
# NAR hash, size and references, and its files dump to the same NAR
identical() {
  local dst=$1 p
  nix path-info --store "$SRC" --json -r "$top" > "$TMP/src.json" || return 1
  nix path-info --store "$(pstore_dst_uri "$dst")" --json -r "$top" > "$TMP/dst.json" || return 1
  python3 - "$TMP/src.json" "$TMP/dst.json" << 'EOF' || return 1
import json, sys
def load(f):
    return {p["path"]: (p["narHash"], p["narSize"], sorted(p.get("references", [])))
            for p in json.load(open(f))}
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b or len(a) != 6:
    print("  source:", a, "\n  copy:  ", b)
    sys.exit(1)
EOF
  for p in "${closure[@]}"; do
    [ "$(nar_sha256 "$p")" = "$(nar_sha256 "$dst/store/${p##*/}")" ] || { echo "  $p differs" >&2; return 1; }
  done
}

# Compressions: what cairn offers, all of which Nix 2.8 reads (xz, bzip2,
# zstd natively or through libarchive, which also takes gzip and lzip).
for c in none xz bzip2 zstd gzip lzip; do
  if ! publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --compression "$c"; then
    not_ok "cairn publish starts with --compression $c"
    continue
  fi
  ni=$(curl -sf --max-time 10 "$PUBLISH_URL/$(hp "$top").narinfo") || ni=""
  check "[$c] the narinfo of the top path says Compression: $c" \
    [ "$(narinfo_field "$ni" Compression)" = "$c" ]
  check "[$c] and carries a Sig by cairn-test-1" grep -q "^Sig: cairn-test-1:" <<< "$ni"
  dst=$TMP/dst-$c
  if nix copy --quiet --from "$PUBLISH_URL" --to "$(pstore_dst_uri "$dst")" \
    --option trusted-public-keys "$PUB" "$top" 2> "$TMP/copy-$c.err"; then
    ok "[$c] nix copy --from cairn publish succeeds"
    check "[$c] the copied closure is identical to the source" identical "$dst"
  else
    not_ok "[$c] nix copy --from cairn publish succeeds"
    sed 's/^/  | /' "$TMP/copy-$c.err"
  fi
  publish_stop || not_ok "[$c] cairn publish stops cleanly on SIGTERM"
done

publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --compression zstd --ttl 2m --negative-ttl 45s || {
  not_ok "cairn publish starts"
  finish
  exit 1
}
check "/nix-cache-info names the store directory" \
  grep -qx "StoreDir: $NIX_STORE_DIR" <(curl -sf --max-time 10 "$PUBLISH_URL/nix-cache-info" | tr -d '\r')
check "/signing-key.pub is the public key" \
  grep -qxF "$PUB" <(curl -sf --max-time 10 "$PUBLISH_URL/signing-key.pub")

# What a CDN in front needs: Cache-Control from --ttl and --negative-ttl,
# immutable nars, ETag and 304, the right Content-Type.
hdr() { curl -s --max-time 10 -o /dev/null -D - "$@" | tr -d '\r' | tr 'A-Z' 'a-z'; }
h=$(hdr "$PUBLISH_URL/$(hp "$top").narinfo")
check "a narinfo has Cache-Control max-age=120 (--ttl 2m)" grep -q '^cache-control:.*max-age=120' <<< "$h"
check "  and Content-Type text/x-nix-narinfo" grep -q '^content-type: text/x-nix-narinfo' <<< "$h"
etag=$(sed -n 's/^etag: //p' <<< "$h")
check "  and an ETag ($etag) that gives a 304" \
  [ "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$PUBLISH_URL/$(hp "$top").narinfo")" = 304 ]
h=$(hdr "$PUBLISH_URL/$(printf '0%.0s' {1..32}).narinfo")
check "an unknown narinfo is a 404 with max-age=45 (--negative-ttl 45s)" \
  grep -q '^cache-control:.*max-age=45' <<< "$h"
check "  (a 404)" grep -q '^http/1.1 404' <<< "$h"
url=$(curl -s --max-time 10 "$PUBLISH_URL/$(hp "$top").narinfo" | sed -n 's/^URL: //p')
check "a nar is immutable" grep -q '^cache-control:.*immutable' <<< "$(hdr "$PUBLISH_URL/$url")"
check "/health is 200" curl -sf --max-time 10 -o /dev/null "$PUBLISH_URL/health"
check "/ is an HTML page that shows the key" \
  bash -c 'curl -sf --max-time 10 "$0/" | grep -qF "$1"' "$PUBLISH_URL" "$PUB"
curl -sf --max-time 10 "$PUBLISH_URL/metrics" > "$TMP/metrics" || true
check "/metrics is Prometheus text: samples, and requests counted by status" python3 - "$TMP/metrics" << 'EOF'
import re, sys
lines = [l for l in open(sys.argv[1]).read().splitlines() if l and not l.startswith("#")]
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
label = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
sample = re.compile(name + r'(\{' + label + r'(,' + label + r')*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)')
bad = [l for l in lines if not sample.fullmatch(l)]
if bad or not lines or not any('404' in l for l in lines) or not any('200' in l for l in lines):
    print("  not Prometheus text or no 200/404 counts:", bad[:5] or lines[:10])
    sys.exit(1)
EOF

# A different trusted key: Nix refuses, for want of a good signature.
if nix copy --quiet --from "$PUBLISH_URL" --to "$(pstore_dst_uri "$TMP/dst-other")" \
  --option trusted-public-keys "$OTHER" "$top" 2> "$TMP/other.err"; then
  not_ok "nix copy trusting another key is refused"
else
  ok "nix copy trusting another key is refused"
  check "  and says why (signature)" grep -qi "signature" "$TMP/other.err"
fi
check "  and nothing was made valid" [ ! -e "$TMP/dst-other/store/${top##*/}" ]

# nix path-info against the server: the same paths, hashes, sizes and
# references as the source, signed by cairn-test-1
if nix path-info --store "$PUBLISH_URL" --json -r "$top" > "$TMP/http.json" 2> "$TMP/pi.err"; then
  nix path-info --store "$SRC" --json -r "$top" > "$TMP/src.json"
  check "nix path-info --store http://... matches the source, signed" \
    python3 - "$TMP/src.json" "$TMP/http.json" << 'EOF'
import json, sys
def load(f):
    return {p["path"]: (p["narHash"], p["narSize"], sorted(p.get("references", [])))
            for p in json.load(open(f))}
a, b = load(sys.argv[1]), load(sys.argv[2])
sigs = [s for p in json.load(open(sys.argv[2])) for s in p.get("signatures", [])]
ok = a == b and len(a) == 6 and sum(s.startswith("cairn-test-1:") for s in sigs) == 6
if not ok:
    print("  source:", a, "\n  server:", b, "\n  sigs:", sigs)
sys.exit(0 if ok else 1)
EOF
else
  not_ok "nix path-info --store http://... works"
  sed 's/^/  | /' "$TMP/pi.err"
fi

# nix store ls -lR: the same listing as from the store itself
if nix store ls --store "$PUBLISH_URL" -lR "$top" > "$TMP/ls-http" 2> "$TMP/ls.err"; then
  nix store ls --store "$SRC" -lR "$top" > "$TMP/ls-src"
  check "nix store ls --store http://... -lR lists what the store holds" \
    diff -u "$TMP/ls-src" "$TMP/ls-http"
  check "  (the listing shows the symlink and the executable)" \
    grep -q -- "-> bin/pn-6" "$TMP/ls-http"
else
  not_ok "nix store ls --store http://... works"
  sed 's/^/  | /' "$TMP/ls.err"
fi
ls_json=$(curl -sf --max-time 10 "$PUBLISH_URL/$(hp "$top").ls") || ls_json=""
check "/<hash>.ls is Nix's listing JSON (version 1, root a directory)" python3 -c '
import json, sys
try:
    j = json.loads(sys.argv[1])
except ValueError:
    sys.exit("  not JSON: %r" % sys.argv[1][:200])
sys.exit(0 if j["version"] == 1 and j["root"]["type"] == "directory"
         and j["root"]["entries"]["link"] == {"type": "symlink", "target": "bin/pn-6"}
         and j["root"]["entries"]["bin"]["entries"]["pn-6"].get("executable") is True else 1)
' "$ls_json"

# build log: Nix kept it under state's log dir; the server finds it by the
# .drv's basename and Nix reads it back
drv=$(nix path-info --store "$SRC" --json "$top" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["deriver"])')
# (Nix keeps logs bzip2-compressed; the server may send them as they are,
# with a Content-Encoding that curl cannot decode, so curl gets them raw)
unpack() {
  python3 -c '
import bz2, gzip, sys
d = sys.stdin.buffer.read()
d = bz2.decompress(d) if d[:3] == b"BZh" else gzip.decompress(d) if d[:2] == b"\x1f\x8b" else d
sys.stdout.buffer.write(d)'
}
check "/log/<drv> is the build log" \
  grep -q "build log of pn-6" <(curl -sf --max-time 10 "$PUBLISH_URL/log/$(basename "$drv")" | unpack)
check "nix log --store http://... reads it" \
  grep -q "build log of pn-6" <(nix log --store "$PUBLISH_URL" "$drv" 2>&1)
publish_stop || not_ok "cairn publish stops cleanly on SIGTERM"

# The Guix dialect, with a Guix key and several compressions.
"$CAIRN" key generate --format guix --secret "$TMP/g.sec" --public "$TMP/g.pub"
"$CAIRN" key generate --format guix --secret "$TMP/g2.sec" --public "$TMP/g2.pub"
comps=zstd,lzip,gzip,none
if publish_start "${PSTORE_ARGS[@]}" --key "$TMP/g.sec" --dialect guix --compression "$comps"; then
  curl -sf --max-time 10 "$PUBLISH_URL/$(hp "$top").narinfo" > "$TMP/g.narinfo" || true
  check "the Guix narinfo verifies with cairn narinfo verify" \
    "$CAIRN" narinfo verify --trusted-key "$TMP/g.pub" < "$TMP/g.narinfo"
  # (refused for the key, not for want of parsing it)
  check "  and not against another Guix key" \
    bash -c '! "$0" narinfo verify --trusted-key "$1" < "$2" 2> "$3" && ! grep -q "cannot parse" "$3"' \
    "$CAIRN" "$TMP/g2.pub" "$TMP/g.narinfo" "$TMP/g2.err"
  check "  and with libgcrypt directly, as Guix checks it" \
    python3 "$SRCDIR/tests/integration/guix-verify.py" "$TMP/g.narinfo" "$TMP/g.pub"
  check "  (which refuses it for another key)" \
    bash -c '! python3 "$0" "$1" "$2" 2>&1 | grep -q valid' \
    "$SRCDIR/tests/integration/guix-verify.py" "$TMP/g.narinfo" "$TMP/g2.pub"
  nix path-info --store "$SRC" --json "$top" > "$TMP/top.json"
  # guix/scripts/publish.scm, narinfo-string (Guix 1.4 and later): the
  # signed part StorePath, NarHash (sha256:nix32), NarSize, References
  # (basenames), Deriver (basename, only when known); then the Signature
  # "1;<host>;<base64 sexp>"; then, after the signature so that they may
  # change without re-signing, one URL/Compression[/FileSize] group per
  # compression in the configured order: URL nar/<type>/<basename>, or
  # nar/<basename> for none; FileSize in every group or in none (Guix
  # pairs them with the URLs by position), none's being the NarSize.
  check "the Guix narinfo is laid out as guix publish lays it out" \
    python3 - "$TMP/g.narinfo" "$TMP/top.json" "$comps" "$NIX_STORE_DIR" << 'EOF'
import base64, json, os, re, sys
text = open(sys.argv[1]).read()
info = json.load(open(sys.argv[2]))[0]
comps = sys.argv[3].split(",")
storedir = sys.argv[4]
fail = []
lines = text.split("\n")
if lines[-1] != "":
    fail.append("no final newline")
fields = [l.split(": ", 1) if ": " in l else [l[:-1], ""] for l in lines[:-1]]
keys = [k for k, _ in fields]
v = {}
for k, val in fields:
    v.setdefault(k, val)
base = os.path.basename
want = ["StorePath", "NarHash", "NarSize", "References"]
if info.get("deriver"):
    want.append("Deriver")
want.append("Signature")
sized = "FileSize" in keys
for c in comps:
    want += ["URL", "Compression"] + (["FileSize"] if sized else [])
got = keys
if got != want:
    fail.append("fields %s, want %s" % (keys, want))
if v.get("StorePath") != info["path"]:
    fail.append("StorePath")
if not re.fullmatch(r"sha256:[0-9a-df-np-sv-z]{52}", v.get("NarHash", "")):
    fail.append("NarHash not sha256:nix32")
if v.get("NarSize") != str(info["narSize"]):
    fail.append("NarSize")
if sorted(v.get("References", "").split()) != sorted(base(r) for r in info.get("references", [])):
    fail.append("References are not the basenames")
if info.get("deriver") and v.get("Deriver") != base(info["deriver"]):
    fail.append("Deriver is not the basename")
m = re.fullmatch(r"1;([^;]+);([A-Za-z0-9+/=]+)", v.get("Signature", ""))
if not m or not base64.b64decode(m.group(2)).startswith(b"(signature"):
    fail.append("Signature is not 1;<host>;<base64 sexp>")
groups = [(fields[i][1], fields[i + 1][1]) for i, k in enumerate(keys) if k == "URL"]
want_groups = [("nar/%s%s" % ("" if c == "none" else c + "/", base(info["path"])), c) for c in comps]
if groups != want_groups:
    fail.append("groups %s, want %s" % (groups, want_groups))
for i, k in enumerate(keys):
    if k == "FileSize" and fields[i - 1][1] == "none" and fields[i][1] != str(info["narSize"]):
        fail.append("FileSize of none is not NarSize")
if fail:
    print("  " + "; ".join(fail))
    print(text)
sys.exit(1 if fail else 0)
EOF
  # every group's nar decompresses to the store path's NAR
  want=$(nar_sha256 "$top")
  while read -r url comp; do
    case $comp in
      none) dec=(cat) ;;
      zstd) dec=(zstd -dc) ;;
      lzip) dec=(lzip -dc) ;;
      gzip) dec=(gzip -dc) ;;
    esac
    got=$(curl -sf --max-time 20 "$PUBLISH_URL/$url" | "${dec[@]}" | sha256sum | cut -d' ' -f1)
    check "the Guix $comp nar ($url) is the store path's NAR" [ "$got" = "$want" ]
  done < <(python3 -c '
import sys
f = [l.split(": ", 1) for l in open(sys.argv[1]).read().splitlines() if ": " in l]
for i, (k, v) in enumerate(f):
    if k == "URL":
        print(v, f[i + 1][1])
' "$TMP/g.narinfo")
  publish_stop || not_ok "cairn publish --dialect guix stops cleanly on SIGTERM"
else
  not_ok "cairn publish --dialect guix starts"
fi

finish
