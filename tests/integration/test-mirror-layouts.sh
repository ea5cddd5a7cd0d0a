#!/usr/bin/env bash
# cairn mirror: the Guix layout (nar/<compression>/<basename>, no FileHash:
# checked by decompressing to NarHash), .ls and /log/ pass-through, Range
# on a nar not cached yet, a narinfo for the wrong store path.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless nginx curl gzip

store=$TMP/store1
top=$(nix_build_closure "$store" 1 lay 300000)
nix_copy_to_file "$store" "$top" "$TMP/nix" none
h=$(basename "$top" | cut -c1-32)
base=$(basename "$top")
nixnar=$(sed -n 's/^URL: //p' "$TMP/nix/$h.narinfo")

# a Guix-style cache: gzip'ed nar under nar/gzip/<basename>, no FileHash
mkdir -p "$TMP/guix/nar/gzip" "$TMP/guix/log"
gzip -c < "$TMP/nix/$nixnar" > "$TMP/guix/nar/gzip/$base"
{
  grep -E '^(StorePath|NarHash|NarSize|References):' "$TMP/nix/$h.narinfo"
  echo "URL: nar/gzip/$base"
  echo "Compression: gzip"
  echo "FileSize: $(stat -c %s "$TMP/guix/nar/gzip/$base")"
} > "$TMP/guix/$h.narinfo"
printf 'StoreDir: /gnu/store\n' > "$TMP/guix/nix-cache-info"
echo '{"version":1,"root":{"type":"directory","entries":{}}}' > "$TMP/guix/$h.ls"
echo "build log of $base" > "$TMP/guix/log/$base"
# a narinfo served under another path's hash
other=00000000000000000000000000000000
cp "$TMP/guix/$h.narinfo" "$TMP/guix/$other.narinfo"
nginx_serve g "$TMP/guix"
mirror_start m --upstream "http://127.0.0.1:$NGINX_PORT" --cache "$TMP/mc"
url=http://127.0.0.1:$MIRROR_PORT

check "Guix nar asked for directly (the narinfo is fetched to learn its hashes)" \
  cmp <(curl -fs "$url/nar/gzip/$base") "$TMP/guix/nar/gzip/$base"
check "... and cached after decompressing to NarHash" [ "$(ls "$TMP/mc/data" | wc -l)" -eq 1 ]
check "... then a hit" cmp <(curl -fs "$url/nar/gzip/$base") "$TMP/guix/nar/gzip/$base"
check "... no second upstream request" [ "$(count_requests g "/nar/gzip/")" -eq 1 ]
check ".ls passed through" cmp <(curl -fs "$url/$h.ls") "$TMP/guix/$h.ls"
check "/log/ passed through" cmp <(curl -fs "$url/log/$base") "$TMP/guix/log/$base"
check "a narinfo naming another store path is refused" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/$other.narinfo")" != 200 ]
mirror_stop

# tampered Guix nar: valid gzip of other bytes
cp -r "$TMP/guix" "$TMP/guixbad"
python3 - "$TMP/nix/$nixnar" "$TMP/guixbad/nar/gzip/$base" <<'PY'
import gzip, sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[len(b) // 2] ^= 1
open(sys.argv[2], 'wb').write(gzip.compress(bytes(b)))
PY
nginx_serve gb "$TMP/guixbad"
mirror_start m2 --upstream "http://127.0.0.1:$NGINX_PORT" --cache "$TMP/mc2"
url=http://127.0.0.1:$MIRROR_PORT
check "tampered Guix nar: the client sees a failure" \
  bash -c "! curl -fs '$url/nar/gzip/$base' -o /dev/null"
check "tampered Guix nar: not cached" [ "$(ls "$TMP/mc2/data" | wc -l)" -eq 0 ]
mirror_stop

# Range on a nar that is not cached yet: one whole download, answered from it
nginx_serve slow "$TMP/nix" "" "limit_rate 200k;"
mirror_start m3 --upstream "http://127.0.0.1:$NGINX_PORT" --cache "$TMP/mc3"
url=http://127.0.0.1:$MIRROR_PORT
curl -fs "$url/$h.narinfo" > /dev/null
check "Range on an uncached nar: 206 with the right bytes" bash -c "
  [ \"\$(curl -s -r 1000-1999 -o '$TMP/part' -w '%{http_code}' '$url/$nixnar')\" = 206 ] &&
  cmp '$TMP/part' <(tail -c +1001 '$TMP/nix/$nixnar' | head -c 1000)"
check "... the whole object was fetched once (no Range upstream)" \
  bash -c "curl -fs '$url/$nixnar' | cmp - '$TMP/nix/$nixnar' && [ \$(grep -c '\"GET /$nixnar' '$TMP/slow.access') -eq 1 ]"
mirror_stop
finish
