#!/usr/bin/env bash
# cairn publish against what Guix's own code expects (issue 11, "Guix
# conformance" 8-12 and 14), on a store built by the real Nix:
#   8  /signing-key.pub of a Guix-dialect server is the Guix key alone, as
#      `guix archive --authorize` reads it (libgcrypt on the whole body);
#      Nix keys at /nix-signing-keys; a Nix-dialect server serves its Nix keys
#   9  build logs by output basename, then by .drv (`guix build --log-file`'s
#      order); .bz2 as raw bytes, as guix publish sends them
#   10 an item whose compression cannot help (random bytes, or a name ending
#      in .gz) is offered uncompressed only, once measured
#   11 nar URLs of a narinfo from before a restart with other --compression
#      methods still serve the nar
#   12 FileSize in every URL group or in none (Guix pairs them by position),
#      and a short max-age while the bakes are not done
#   14 the Guix dialect has no /nar/none/<base> (404, as guix publish); the
#      Nix dialect keeps it
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 zstd xz gzip lzip bzip2
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
seq 1 200000 > "$TMP/text"
# a compressible item (text) and its dependency, a random one, and one whose
# name says it is compressed (its contents are text all the same)
if ! top=$(pstore_build "$TMP/src" 2 gx 300000 1 "$TMP/text") ||
  ! rnd=$(pstore_build "$TMP/src" 1 rnd 400000); then
  not_ok "nix-build builds the items"
  finish
  exit 1
fi
cat > "$TMP/gz.nix" << 'EOF'
derivation {
  name = "blob.tar.gz";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  args = [ "-c" "seq 1 50000 > $out" ];
}
EOF
gzitem=$(nix-build --store "$SRC" --no-out-link --quiet "$TMP/gz.nix")
# a path with no deriver (added, not built)
echo "added, not built" > "$TMP/added.txt"
added=$(nix-store --store "$SRC" --add "$TMP/added.txt")
hp() { basename "$1" | cut -c1-32; }
field() { sed -n "s/^$1: //p"; }

"$CAIRN" key generate --format nix --secret "$TMP/nix.sec" --public "$TMP/nix.pub" guix-test-1 > /dev/null
"$CAIRN" key generate --format guix --secret "$TMP/guix.sec" --public "$TMP/guix.pub" > /dev/null
"$CAIRN" key generate --format guix --secret "$TMP/guix2.sec" --public "$TMP/guix2.pub" > /dev/null

# serve NAME ARG...: cairn publish on 127.0.0.1, port from --port-file; sets
# URL and NAME_pid.  stop NAME: SIGTERM and wait (bounded).
serve() {
  local name=$1 pf=$TMP/$1.port pid
  shift
  rm -f "$pf"
  "$CAIRN" publish --listen 127.0.0.1:0 --port-file "$pf" --threads 2 "${PSTORE_ARGS[@]}" "$@" \
    > "$TMP/$name.log" 2>&1 &
  pid=$!
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  eval "${name}_pid=$pid"
  local port
  if port=$(port_from_file "$pf" "$pid"); then
    URL=http://127.0.0.1:$port
    return 0
  fi
  sed 's/^/  | /' "$TMP/$name.log" >&2
  return 1
}
stop() {
  local pid
  pid=$(eval echo "\$${1}_pid")
  kill -TERM "$pid" 2> /dev/null || return 0
  wait_gone "$pid" 10 || true
  kill -9 "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$@"; }
# the header NAME of a response (headers in file H), lowercase name
header() { sed -n "s/^$2: //Ip" "$1" | tr -d '\r' | head -n 1; }
narsha() { nar_sha256 "$1"; }

# ---- 8: the signing keys ---------------------------------------------------
serve g8 --dialect guix --key "$TMP/nix.sec" --key "$TMP/guix.sec" --host guix.test
curl -sf --max-time 10 "$URL/signing-key.pub" > "$TMP/served.pub" || true
check "8: Guix dialect: /signing-key.pub is the Guix key alone, as Guix writes it" \
  cmp -s "$TMP/served.pub" "$TMP/guix.pub"
# what `guix archive --authorize` does (guix/scripts/archive.scm): the whole
# input through libgcrypt's s-expression reader, whose first element must
# be the symbol public-key; then the Ed25519 point in it
check "8: ... read as guix archive --authorize reads it: one (public-key (ecc (curve Ed25519) (q ...)))" \
  python3 - "$TMP/served.pub" "$TMP/guix.pub" << 'EOF'
import ctypes, ctypes.util, sys
g = ctypes.CDLL(ctypes.util.find_library("gcrypt"))
g.gcry_check_version.restype = ctypes.c_char_p
g.gcry_check_version(None)
g.gcry_sexp_new.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
g.gcry_sexp_nth_data.restype = ctypes.c_void_p
g.gcry_sexp_nth_data.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)]
g.gcry_sexp_find_token.restype = ctypes.c_void_p
g.gcry_sexp_find_token.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
g.gcry_sexp_length.argtypes = [ctypes.c_void_p]
def parse(path):
    text = open(path, "rb").read()
    s = ctypes.c_void_p()
    if g.gcry_sexp_new(ctypes.byref(s), text, len(text), 1):
        sys.exit("  not an s-expression: %r" % text[:80])
    return s
def data(s, n):
    size = ctypes.c_size_t()
    p = g.gcry_sexp_nth_data(s, n, ctypes.byref(size))
    return ctypes.string_at(p, size.value) if p else None
def q(s):
    t = g.gcry_sexp_find_token(s, b"q", 0)
    return t and data(t, 1)
s = parse(sys.argv[1])
if data(s, 0) != b"public-key":
    sys.exit("  s-expression does not denote a public key: %r" % data(s, 0))
ecc = g.gcry_sexp_find_token(s, b"ecc", 0)
curve = ecc and g.gcry_sexp_find_token(ecc, b"curve", 0)
if not curve or data(curve, 1) != b"Ed25519" or g.gcry_sexp_length(s) != 2:
    sys.exit("  not (public-key (ecc (curve Ed25519) ...))")
if not q(s) or q(s) != q(parse(sys.argv[2])):
    sys.exit("  another point than the server's key")
EOF
curl -sf --max-time 10 "$URL/$(hp "$top").narinfo" > "$TMP/g8.narinfo" || true
check "8: ... cairn's own key parser takes it, and the server's narinfos verify with it" \
  "$CAIRN" narinfo verify --trusted-key "$TMP/served.pub" < "$TMP/g8.narinfo"
check "8: ... the Nix key is at /nix-signing-keys" \
  bash -c "curl -sf --max-time 10 '$URL/nix-signing-keys' | cmp -s - <(cat '$TMP/nix.pub'; echo)"
stop g8
serve n8 --key "$TMP/nix.sec" --key "$TMP/guix.sec"
check "8: Nix dialect: /signing-key.pub is the Nix key line" \
  bash -c "curl -sf --max-time 10 '$URL/signing-key.pub' | cmp -s - <(cat '$TMP/nix.pub'; echo)"
check "8: ... the Guix key is at /guix-signing-key.pub" \
  bash -c "curl -sf --max-time 10 '$URL/guix-signing-key.pub' | cmp -s - '$TMP/guix.pub'"
stop n8
# a Guix narinfo has one Signature: two Guix keys would leave one unused
rc=0
timeout 20 "$CAIRN" publish --listen 127.0.0.1:0 "${PSTORE_ARGS[@]}" --dialect guix \
  --key "$TMP/guix.sec" --key "$TMP/guix2.sec" > "$TMP/two.log" 2>&1 || rc=$?
check "8: two Guix keys: refused at start ($rc)" \
  bash -c "[ $rc = 1 ] && grep -q 'Guix keys' '$TMP/two.log'"

# ---- 9: build logs by output, then by derivation ---------------------------
drv=$(nix path-info --store "$SRC" --json "$top" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["deriver"])')
d=$(basename "$drv")
stored=$TMP/src/var/log/nix/drvs/${d:0:2}/${d:2}.bz2
serve g9 --dialect guix --key "$TMP/guix.sec"
# guix build --log-file (guix/scripts/build.scm, log-url): GET the output's
# basename first, then the .drv's
curl -s --max-time 10 -D "$TMP/l9o.h" -o "$TMP/l9o" "$URL/log/$(basename "$top")" || true
check "9: Guix: /log/<output basename> is 200" test "$(sed -n '1s/^HTTP[^ ]* \([0-9]*\).*/\1/p' "$TMP/l9o.h")" = 200
check "9: ... its body is the stored .bz2, byte for byte" cmp -s "$TMP/l9o" "$stored"
check "9: ... sent as guix publish sends it: application/x-bzip2, no Content-Encoding" \
  bash -c "[ \"\$(sed -n 's/^content-type: //Ip' '$TMP/l9o.h' | tr -d '\r' | cut -d';' -f1)\" = application/x-bzip2 ] &&
           ! grep -qi '^content-encoding' '$TMP/l9o.h'"
curl -s --max-time 10 -D "$TMP/l9d.h" -o "$TMP/l9d" "$URL/log/$d" || true
check "9: Guix: /log/<drv basename> is the same log" cmp -s "$TMP/l9d" "$stored"
check "9: an output that is not valid: 404" \
  test "$(code "$URL/log/00000000000000000000000000000000-$(basename "$top" | cut -c34-)")" = 404
check "9: a valid path without a deriver: 404" test "$(code "$URL/log/$(basename "$added")")" = 404
stop g9
serve n9 --key "$TMP/nix.sec"
curl -s --max-time 10 -D "$TMP/l9n.h" -o "$TMP/l9n" "$URL/log/$(basename "$top")" || true
check "9: Nix dialect: /log/<output> too, with Content-Encoding: bzip2 as before" \
  bash -c "cmp -s '$TMP/l9n' '$stored' && grep -qi '^content-encoding: bzip2' '$TMP/l9n.h'"
stop n9

# ---- 10: items compression cannot help -------------------------------------
# the groups of a Guix narinfo, "URL Compression [FileSize]" per line
groups() {
  python3 -c '
import sys
f = [l.split(": ", 1) for l in sys.stdin.read().splitlines() if ": " in l]
out = []
for k, v in f:
    if k == "URL": out.append([v])
    elif k in ("Compression", "FileSize") and out: out[-1].append(v)
print("\n".join(" ".join(g) for g in out))'
}
export -f groups # for the checks run by bash -c
# wait_narinfo URL HASH CMD...: poll (15 s at most) until CMD... FILE holds
# for the narinfo (in FILE, $TMP/wait.narinfo)
wait_narinfo() {
  local url=$1 h=$2
  shift 2
  for _ in $(seq 300); do
    curl -sf --max-time 5 "$url/$h.narinfo" > "$TMP/wait.narinfo" 2> /dev/null &&
      "$@" "$TMP/wait.narinfo" && return 0
    sleep 0.05
  done
  return 1
}
has() { grep -qx "$1" "$2"; }                                   # has LINE FILE
sizes() { [ "$(grep -c '^FileSize: ' "$2")" = "$1" ]; }        # sizes N FILE
serve g10 --dialect guix --key "$TMP/guix.sec" --cache "$TMP/c10" --compression zstd:3,gzip:6
rb=$(basename "$rnd")
curl -sf --max-time 10 "$URL/$(hp "$rnd").narinfo" | groups > "$TMP/g10.first"
check "10: before it is measured, the random item is offered as configured" \
  test "$(cut -d' ' -f2 "$TMP/g10.first" | tr '\n' ' ')" = "zstd gzip "
nsize=$(nix path-info --store "$SRC" --json "$rnd" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["narSize"])')
if wait_narinfo "$URL" "$(hp "$rnd")" has "Compression: none"; then
  groups < "$TMP/wait.narinfo" > "$TMP/g10.after"
  ok "10: once baked, the random item is offered uncompressed"
else
  : > "$TMP/g10.after"
  not_ok "10: once baked, the random item is offered uncompressed"
fi
check "10: ... only, with its FileSize (the NarSize): nar/<base> none $nsize" \
  test "$(cat "$TMP/g10.after")" = "nar/$rb none $nsize"
check "10: ... and gzip, after zstd measured it, was never baked" \
  bash -c "[ -f '$TMP/c10/info/$(hp "$rnd")'.zstd ] && ! [ -e '$TMP/c10/info/$(hp "$rnd")'.gzip ]"
check "10: ... and the server counts it" \
  bash -c "curl -sf '$URL/metrics' | grep -qx 'cairn_publish_raw_items_total [1-9][0-9]*'"
check "10: ... the zstd URL of the first narinfo still gives its nar" \
  bash -c "[ \"\$(curl -sf --max-time 20 '$URL/nar/zstd/$rb' | zstd -dc | sha256sum | cut -d' ' -f1)\" = '$(narsha "$rnd")' ]"
curl -sf --max-time 10 "$URL/$(hp "$gzitem").narinfo" | groups > "$TMP/g10.gz"
check "10: an item named *.tar.gz is offered uncompressed from the start, as by guix publish" \
  test "$(cut -d' ' -f1-2 "$TMP/g10.gz")" = "nar/$(basename "$gzitem") none"
check "10: a compressible item keeps both methods once baked" \
  wait_narinfo "$URL" "$(hp "$top")" sizes 2
stop g10
serve g10b --dialect guix --key "$TMP/guix.sec" --cache "$TMP/c10"
check "10: after a restart the measure is remembered (info/<hash>.none)" \
  bash -c "curl -sf --max-time 10 '$URL/$(hp "$rnd").narinfo' | grep -qx 'Compression: none' &&
           ! curl -sf --max-time 10 '$URL/$(hp "$rnd").narinfo' | grep -q 'Compression: zstd'"
stop g10b
# without a cache, a nar compressed on the fly is the measure
serve g10c --dialect guix --key "$TMP/guix.sec" --compression zstd:3
curl -sf --max-time 20 "$URL/nar/zstd/$rb" > /dev/null || true
check "10: without a cache, one nar compressed on the fly measures it" \
  bash -c "[ \"\$(curl -sf --max-time 10 '$URL/$(hp "$rnd").narinfo' | groups)\" = 'nar/$rb none $nsize' ]"
stop g10c
serve n10 --key "$TMP/nix.sec" --cache "$TMP/c10n" --compression xz:1
check "10: Nix dialect: the random item ends up as Compression: none too" \
  wait_narinfo "$URL" "$(hp "$rnd")" has "Compression: none"
stop n10

# ---- 11: URLs that survive a change of --compression -----------------------
h=$(hp "$top")
want=$(narsha "$top")
serve n11 --key "$TMP/nix.sec" --cache "$TMP/c11" --compression zstd:3
curl -sf --max-time 10 "$URL/$h.narinfo" > "$TMP/n11.pre"
wait_narinfo "$URL" "$h" grep -q '^FileHash: ' && cp "$TMP/wait.narinfo" "$TMP/n11.baked"
stop n11
[ -f "$TMP/n11.baked" ] || : > "$TMP/n11.baked"
serve g11 --dialect guix --key "$TMP/guix.sec" --compression zstd:3
curl -sf --max-time 10 "$URL/$h.narinfo" > "$TMP/g11.pre"
stop g11
# the same servers, restarted with xz only
serve n11b --key "$TMP/nix.sec" --cache "$TMP/c11" --compression xz:6
for f in pre baked; do
  u=$(field URL < "$TMP/n11.$f")
  check "11: Nix narinfo ($f bake) from a zstd server: its URL after a restart with xz only" \
    bash -c "[ \"\$(curl -sf --max-time 20 '$URL/$u' | zstd -dc | sha256sum | cut -d' ' -f1)\" = '$want' ]"
done
check "11: ... the narinfo now names xz" bash -c "curl -sf '$URL/$h.narinfo' | grep -qx 'Compression: xz'"
stop n11b
serve g11b --dialect guix --key "$TMP/guix.sec" --compression xz:6
u=$(field URL < "$TMP/g11.pre")
check "11: Guix narinfo from a zstd server: $u after a restart with xz only" \
  bash -c "[ \"\$(curl -sf --max-time 20 '$URL/$u' | zstd -dc | sha256sum | cut -d' ' -f1)\" = '$want' ]"
check "11: ... and gzip, lzip, bzip2, none, never configured, also serve it" \
  bash -c "for m in gzip:'gzip -dc' lzip:'lzip -dc' bzip2:'bzip2 -dc'; do
             [ \"\$(curl -sf --max-time 20 '$URL/nar/'\${m%%:*}'/$(basename "$top")' | \${m#*:} | sha256sum | cut -d' ' -f1)\" = '$want' ] || exit 1
           done
           [ \"\$(curl -sf --max-time 20 '$URL/nar/$(basename "$top")' | sha256sum | cut -d' ' -f1)\" = '$want' ]"
stop g11b

# ---- 12: temporary narinfos and FileSize -----------------------------------
# Guix's read-narinfo zips URL, Compression and FileSize lists by position
# (guix/narinfo.scm); every size it pairs must be the size of that URL
guix_pairs_ok() { # NARINFO-FILE BASE-URL
  python3 - "$1" "$2" << 'EOF'
import sys, urllib.request
f = [l.split(": ", 1) for l in open(sys.argv[1]).read().splitlines() if ": " in l]
urls = [v for k, v in f if k == "URL"]
sizes = [int(v) for k, v in f if k == "FileSize"]
if sizes and len(sizes) != len(urls):
    sys.exit("  %d FileSize for %d URLs" % (len(sizes), len(urls)))
for u, s in zip(urls, sizes):
    n = len(urllib.request.urlopen(sys.argv[2] + "/" + u, timeout=20).read())
    if n != s:
        sys.exit("  %s: FileSize %d paired with it, but it is %d bytes" % (u, s, n))
EOF
}
serve g12 --dialect guix --key "$TMP/guix.sec" --cache "$TMP/c12" --compression zstd:3,gzip:6,none --ttl 3600
curl -sf --max-time 10 -D "$TMP/g12.h" "$URL/$h.narinfo" > "$TMP/g12.first"
check "12: a narinfo before its bakes: no FileSize at all (not none's alone)" \
  bash -c "! grep -q '^FileSize' '$TMP/g12.first'"
check "12: ... so Guix pairs no size with the wrong URL" guix_pairs_ok "$TMP/g12.first" "$URL"
check "12: ... and it is temporary: max-age=300, not the ttl" \
  test "$(header "$TMP/g12.h" cache-control)" = "public, max-age=300"
if wait_narinfo "$URL" "$h" sizes 3; then
  curl -sf --max-time 10 -D "$TMP/g12b.h" "$URL/$h.narinfo" > "$TMP/g12.final"
  check "12: once baked, a FileSize in every group" \
    test "$(groups < "$TMP/g12.final" | awk 'NF == 3' | wc -l)" = 3
  check "12: ... each the size of the nar at that URL" guix_pairs_ok "$TMP/g12.final" "$URL"
  check "12: ... and the full ttl" test "$(header "$TMP/g12b.h" cache-control)" = "public, max-age=3600"
else
  not_ok "12: the bakes end"
fi
stop g12
serve n12 --key "$TMP/nix.sec" --cache "$TMP/c12n" --compression xz:6 --ttl 3600
curl -sf --max-time 10 -D "$TMP/n12.h" "$URL/$(hp "$gzitem").narinfo" > /dev/null
check "12: Nix dialect, nothing to bake (offered uncompressed): the full ttl" \
  test "$(header "$TMP/n12.h" cache-control)" = "public, max-age=3600"
curl -sf --max-time 10 -D "$TMP/n12b.h" "$URL/$h.narinfo" > /dev/null
check "12: Nix dialect, before the bake: max-age=300" \
  test "$(header "$TMP/n12b.h" cache-control)" = "public, max-age=300"
stop n12
serve g12c --dialect guix --key "$TMP/guix.sec" --compression zstd:3 --ttl 3600
curl -sf --max-time 10 -D "$TMP/g12c.h" "$URL/$h.narinfo" > /dev/null
check "12: without a cache a narinfo is final: the full ttl" \
  test "$(header "$TMP/g12c.h" cache-control)" = "public, max-age=3600"
stop g12c

# ---- 14: no /nar/none/ in the Guix dialect ---------------------------------
b=$(basename "$top")
serve g14 --dialect guix --key "$TMP/guix.sec" --compression gzip:6,none
check "14: Guix dialect: the narinfo names nar/<base> for none" \
  bash -c "curl -sf '$URL/$h.narinfo' | groups | grep -q '^nar/$b none'"
check "14: ... /nar/<base> is the nar" \
  bash -c "[ \"\$(curl -sf --max-time 20 '$URL/nar/$b' | sha256sum | cut -d' ' -f1)\" = '$want' ]"
check "14: ... /nar/none/<base> is 404, as with guix publish" test "$(code "$URL/nar/none/$b")" = 404
stop g14
serve n14 --key "$TMP/nix.sec"
check "14: Nix dialect: /nar/none/<base> still serves the nar" \
  bash -c "[ \"\$(curl -sf --max-time 20 '$URL/nar/none/$b' | sha256sum | cut -d' ' -f1)\" = '$want' ]"
stop n14
finish
