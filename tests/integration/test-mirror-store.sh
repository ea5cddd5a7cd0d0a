#!/usr/bin/env bash
# cairn mirror's cache on disk: LRU eviction under --max-size, the cache
# survives a restart, and a kill -9 in the middle of a download leaves a
# consistent cache (no partial file is ever served or indexed).
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless nginx curl sqlite3

store=$TMP/store1
# four unrelated items of ~1 MiB each (uncompressed, so sizes are known)
tops=()
for i in 1 2 3 4; do tops+=("$(nix_build_closure "$store" 1 "s$i" $((1024 * 1024)))"); done
for t in "${tops[@]}"; do nix_copy_to_file "$store" "$t" "$TMP/cache" none; done
big=$(nix_build_closure "$store" 1 slow $((4 * 1024 * 1024)))
nix_copy_to_file "$store" "$big" "$TMP/slowcache" none

hash_of() { basename "$1" | cut -c1-32; }
nginx_serve up "$TMP/cache"
up=$NGINX_PORT
args=(--upstream "http://127.0.0.1:$up" --cache "$TMP/mc" --max-size 2600K)
mirror_start m "${args[@]}"
url=http://127.0.0.1:$MIRROR_PORT

# get I: item I's narinfo and nar through the mirror, checked
get() {
  local h nar
  h=$(hash_of "${tops[$1]}")
  nar=$(sed -n 's/^URL: //p' "$TMP/cache/$h.narinfo")
  curl -fs "$url/$h.narinfo" > /dev/null && curl -fs "$url/$nar" | cmp - "$TMP/cache/$nar"
}
nar_of() { sed -n 's/^URL: //p' "$TMP/cache/$(hash_of "${tops[$1]}").narinfo"; }
upstream_gets() { count_requests up "/$(nar_of "$1")"; }
cache_bytes() { du -cb "$TMP"/mc/data/* 2>/dev/null | tail -1 | cut -f1; }

check "item 0" get 0
check "item 1" get 1
check "item 0 again (a hit, now the most recent)" get 0
check "item 2 (over --max-size: evicts the least recently used, item 1)" get 2
check "two nars left on disk" [ "$(ls "$TMP/mc/data" | wc -l)" -eq 2 ]
check "the cache stays under --max-size" [ "$(cache_bytes)" -le $((2600 * 1024)) ]
check "item 0 is still a hit" bash -c "$(declare -f get hash_of); url=$url TMP=$TMP; tops=(${tops[*]}); get 0"
check "... not fetched again" [ "$(upstream_gets 0)" -eq 1 ]
check "evictions are counted" [ "$(metric cairn_mirror_evictions_total)" -ge 1 ]
check "item 1 was evicted: fetched again" get 1
check "... from upstream (evicting item 2, now the least recent)" [ "$(upstream_gets 1)" -eq 2 ]

mirror_stop
mirror_start m "${args[@]}"
url=http://127.0.0.1:$MIRROR_PORT
before=$(count_requests up /nar/)
check "after a restart, cached items are served" get 1
check "... without going upstream" [ "$(count_requests up /nar/)" -eq "$before" ]
mirror_stop

# kill -9 in the middle of a slow download
nginx_serve slow "$TMP/slowcache" "" "limit_rate 1m;"
sargs=(--upstream "http://127.0.0.1:$NGINX_PORT" --cache "$TMP/mc")
mirror_start m "${sargs[@]}"
url=http://127.0.0.1:$MIRROR_PORT
h=$(hash_of "$big")
nar=$(sed -n 's/^URL: //p' "$TMP/slowcache/$h.narinfo")
curl -fs "$url/$h.narinfo" > /dev/null
curl -s "$url/$nar" -o "$TMP/partial" &
cpid=$!
wait_for 15 eval '[ -n "$(ls "$TMP/mc/tmp")" ] && [ -s "$TMP/partial" ]' || true
check "a download is in progress" [ -n "$(ls "$TMP/mc/tmp")" ]
kill -9 "$MIRROR_PID"; wait "$MIRROR_PID" 2>/dev/null || true
wait "$cpid" 2>/dev/null || true
check "the client saw a short body" [ "$(stat -c %s "$TMP/partial")" -lt "$(stat -c %s "$TMP/slowcache/$nar")" ]
mirror_start m "${sargs[@]}"
url=http://127.0.0.1:$MIRROR_PORT
check "restart: temporary files are gone" [ -z "$(ls "$TMP/mc/tmp")" ]
check "restart: the partial nar is not indexed" \
  [ "$(sqlite3 "$TMP/mc/index.sqlite" "SELECT count(*) FROM nar WHERE path = '$nar'")" = 0 ]
check "restart: every indexed nar has its whole file" bash -c "
  sqlite3 '$TMP/mc/index.sqlite' 'SELECT file, size FROM nar' | while IFS='|' read -r f s; do
    [ \"\$(stat -c %s '$TMP/mc/data/'\$f)\" = \"\$s\" ] || exit 1; done"
check "restart: the earlier items are still served" get 1
check "restart: the interrupted nar is fetched whole" \
  bash -c "curl -fs '$url/$nar' | cmp - '$TMP/slowcache/$nar'"
check "... and then cached" [ "$(sqlite3 "$TMP/mc/index.sqlite" "SELECT count(*) FROM nar WHERE path = '$nar'")" = 1 ]
mirror_stop

# every client gives up in the middle: the download goes on and is cached
mirror_start m4 --upstream "http://127.0.0.1:$NGINX_PORT" --cache "$TMP/mc4"
url=http://127.0.0.1:$MIRROR_PORT
curl -fs "$url/$h.narinfo" > /dev/null
cpids=()
for _ in 1 2 3; do curl -s --max-time 1 "$url/$nar" -o /dev/null & cpids+=("$!"); done
for p in "${cpids[@]}"; do wait "$p" || true; done
n0=$(count_requests slow "/$nar")  # nginx logs a request when it ends
for _ in $(seq 100); do
  [ "$(sqlite3 "$TMP/mc4/index.sqlite" "SELECT count(*) FROM nar" 2>/dev/null)" = 1 ] && break
  sleep 0.1
done
check "clients gone: the download finished and was cached" \
  [ "$(sqlite3 "$TMP/mc4/index.sqlite" "SELECT count(*) FROM nar")" = 1 ]
check "... and is served from the cache" \
  bash -c "curl -fs '$url/$nar' | cmp - '$TMP/slowcache/$nar' && [ \$(grep -c 'GET /$nar' '$TMP/slow.access') -eq $((n0 + 1)) ]"
mirror_stop
finish
