#!/usr/bin/env bash
# 200 concurrent cold requests for one large nar through cairn mirror:
# exactly one upstream request, every client gets the same correct bytes.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless nginx curl sha256sum xargs

store=$TMP/store1
top=$(nix_build_closure "$store" 1 big $((16 * 1024 * 1024)))
nix_copy_to_file "$store" "$top" "$TMP/cache" none
nginx_serve up "$TMP/cache" "" "limit_rate 8m;"
mirror_start m --upstream "http://127.0.0.1:$NGINX_PORT" --cache "$TMP/mc"
url=http://127.0.0.1:$MIRROR_PORT

nar=$(nar_urls "$TMP/cache")
hash=$(basename "$TMP"/cache/*.narinfo .narinfo)
want=$(sha256sum < "$TMP/cache/$nar" | cut -d' ' -f1)
curl -fs "$url/$hash.narinfo" > /dev/null

mkdir "$TMP/out"
seq 200 | xargs -P 200 -I{} sh -c \
  "curl -fsS --max-time 120 '$url/$nar' | sha256sum | cut -d' ' -f1 > '$TMP/out/{}'"
check "200 clients finished" [ "$(ls "$TMP/out" | wc -l)" -eq 200 ]
check "every client got the right bytes" \
  [ "$(cat "$TMP"/out/* | sort | uniq -c | awk '{print $1" "$2}')" = "200 $want" ]
n=$(count_requests up "/$nar")
check "exactly one upstream request for the nar ($n)" [ "$n" -eq 1 ]
[ "$n" -eq 1 ] || { grep -E "\"GET /$nar" "$TMP/up.access" >&2; tail -n 20 "$TMP/m.log" >&2; }
check "coalesced requests are counted" \
  [ $(( $(metric cairn_mirror_coalesced_total) + $(metric cairn_mirror_nar_hits_total) )) -eq 199 ]
check "most clients joined the download in flight ($(metric cairn_mirror_coalesced_total))" \
  [ "$(metric cairn_mirror_coalesced_total)" -ge 1 ]
check "the nar is cached" [ "$(ls "$TMP/mc/data" | wc -l)" -eq 1 ]
mirror_stop
finish
