#!/usr/bin/env bash
# cairn mirror with two upstreams: the primary killed mid-run (requests go
# on from the secondary), the primary back (used again); negative caching
# (an item that appears upstream is visible within the negative TTL);
# stale-if-error when every upstream is down.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless nginx curl

store=$TMP/store1
top=$(nix_build_closure "$store" 7 f 20000)
nix_gen_key failover-1 "$TMP/key"
nix_copy_to_file "$store" "$top" "$TMP/a" zstd "$TMP/key.sec"
cp -r "$TMP/a" "$TMP/b"
mapfile -t hashes < <(cd "$TMP/a" && ls *.narinfo | sed 's/\.narinfo$//' | sort)
# the last item is missing from both upstreams at first
late=${hashes[6]}
mv "$TMP/a/$late.narinfo" "$TMP/late.narinfo"
rm "$TMP/b/$late.narinfo"

nginx_serve a "$TMP/a"; pa=$NGINX_PORT
nginx_serve b "$TMP/b"; pb=$NGINX_PORT
mirror_start m --upstream "http://127.0.0.1:$pa" --upstream "http://127.0.0.1:$pb" \
  --cache "$TMP/mc" --trusted-key "$TMP/key.pub" --negative-ttl 2s --ttl 1s \
  --health-interval 300ms --max-backoff 1s --connect-timeout 500ms
url=http://127.0.0.1:$MIRROR_PORT

# get ITEM: its narinfo and nar through the mirror, the nar checked
get() {
  local h=$1 nar
  curl -fs "$url/$h.narinfo" > "$TMP/got.narinfo" || return 1
  nar=$(sed -n 's/^URL: //p' "$TMP/got.narinfo")
  curl -fs "$url/$nar" | cmp - "$TMP/b/$nar"
}

check "item 0 through the primary" get "${hashes[0]}"
check "item 1 through the primary" get "${hashes[1]}"
check "the primary served them" [ "$(count_requests a /nar/)" -eq 2 ]
check "the secondary was not asked for nars" [ "$(count_requests b /nar/)" -eq 0 ]

nginx_stop a
check "primary down: item 2 from the secondary" get "${hashes[2]}"
check "primary down: item 3 from the secondary" get "${hashes[3]}"
check "the secondary served them" [ "$(count_requests b /nar/)" -eq 2 ]
# asked until its 1 s TTL is over and the mirror asks the secondary again
nb0=$(count_requests b "/${hashes[0]}.narinfo")
refreshed() {
  curl -fs "$url/${hashes[0]}.narinfo" -o /dev/null &&
    [ "$(count_requests b "/${hashes[0]}.narinfo")" -gt "$nb0" ]
}
check "primary down: an expired narinfo is refreshed from the secondary" wait_for 15 refreshed

nginx_serve a "$TMP/a" "$pa"
# until the health checks have seen it back
wait_grep "$MIRROR_LOG" "^cairn mirror: upstream http://127\.0\.0\.1:$pa is up again\$" 15 || true
check "primary back: item 4 through it again" get "${hashes[4]}"
check "the primary served it" [ "$(count_requests a /nar/)" -eq 3 ]
check "the secondary did not" [ "$(count_requests b /nar/)" -eq 2 ]

code() { curl -s -o /dev/null -w '%{http_code}' "$url/$1.narinfo"; }
check "a missing item is 404" [ "$(code "$late")" = 404 ]
n404=$(count_requests a "/$late.narinfo")
check "the 404 is cached (no new upstream request)" \
  bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$url/$late.narinfo')\" = 404 ] && \
           [ \"\$(grep -c '\"GET /$late.narinfo' '$TMP/a.access')\" -eq $n404 ]"
cp "$TMP/late.narinfo" "$TMP/a/$late.narinfo"
cp "$TMP/late.narinfo" "$TMP/b/$late.narinfo"
# Polled every 50 ms: the 404 is served from the cache until the 2 s
# negative TTL runs out (the default, 60 s, would outlast the 15 s bound),
# then one new request upstream finds it.
polls=0
appeared() { polls=$((polls + 1)); [ "$(code "$late")" = 200 ]; }
wait_for 15 appeared || true
asked=$(( $(count_requests a "/$late.narinfo") - n404 ))
check "the item appears once the negative TTL is over ($polls polls, $asked new upstream requests)" \
  bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$url/$late.narinfo')\" = 200 ] && \
           [ $asked -ge 1 ] && [ $asked -le 2 ] && [ $polls -gt $asked ]"

# every upstream down: an expired narinfo is still served (stale-if-error)
nginx_stop a
nginx_stop b
# asked until its 1 s TTL is over and the mirror answers from its stale copy
stale() {
  curl -fs "$url/${hashes[1]}.narinfo" -o /dev/null &&
    [ "$(metric cairn_mirror_stale_served_total)" -ge 1 ]
}
wait_for 15 stale || true
check "all upstreams down: a stale narinfo is served" \
  cmp <(curl -fs "$url/${hashes[1]}.narinfo") "$TMP/b/${hashes[1]}.narinfo"
check "all upstreams down: a cached nar is still served" get "${hashes[1]}"
check "all upstreams down: an unknown item fails" \
  [ "$(code "${hashes[5]}")" = 502 ]
check "stale answers are counted" [ "$(metric cairn_mirror_stale_served_total)" -ge 1 ]
mirror_stop

# the primary dies in the middle of a nar: the download resumes from the
# secondary (Range) and the client gets every byte, verified
big=$(nix_build_closure "$store" 1 fbig $((3 * 1024 * 1024)))
nix_copy_to_file "$store" "$big" "$TMP/c" none
cp -r "$TMP/c" "$TMP/d"
nginx_serve c "$TMP/c" "" "limit_rate 1m;"; pc=$NGINX_PORT
nginx_serve d "$TMP/d"; pd=$NGINX_PORT
mirror_start m2 --upstream "http://127.0.0.1:$pc" --upstream "http://127.0.0.1:$pd" \
  --cache "$TMP/mc2" --health-interval 300ms --connect-timeout 500ms
url=http://127.0.0.1:$MIRROR_PORT
bh=$(basename "$big" | cut -c1-32)
bnar=$(sed -n 's/^URL: //p' "$TMP/c/$bh.narinfo")
curl -fs "$url/$bh.narinfo" > /dev/null
curl -fs "$url/$bnar" -o "$TMP/bignar" &
cpid=$!
wait_for 15 test -s "$TMP/bignar" || true
nginx_stop c
check "primary killed mid-nar: the client still gets it whole" wait "$cpid"
check "... with the right bytes" cmp "$TMP/bignar" "$TMP/d/$bnar"
check "... resumed from the secondary with a Range request" \
  grep -q "\"GET /$bnar HTTP/1.1\" 206" "$TMP/d.access"
check "... and cached" [ "$(ls "$TMP/mc2/data" | wc -l)" -eq 1 ]
mirror_stop

# the upstreams name different files of one nar: the primary nar/X.nar
# (uncompressed), the secondary nar/Y.nar.zst, both signed for the same
# NarHash.  The primary's narinfo is served; when it has no nar, the
# secondary has nothing under that URL either, and the mirror sends the
# NAR the secondary's own file decompresses to (issue 14).
nix_copy_to_file "$store" "$big" "$TMP/e" none "$TMP/key.sec"
nix_copy_to_file "$store" "$big" "$TMP/f" zstd "$TMP/key.sec"
enar=$(sed -n 's/^URL: //p' "$TMP/e/$bh.narinfo")
mv "$TMP/e/$enar" "$TMP/plain.nar"
nginx_serve e "$TMP/e"; pe=$NGINX_PORT
nginx_serve f "$TMP/f"; pf=$NGINX_PORT
mirror_start m3 --upstream "http://127.0.0.1:$pe" --upstream "http://127.0.0.1:$pf" \
  --cache "$TMP/mc3" --trusted-key "$TMP/key.pub" --health-interval 300ms --connect-timeout 500ms
url=http://127.0.0.1:$MIRROR_PORT
check "another compression upstream: the primary's narinfo is served" \
  bash -c 'curl -fs "$0/$1.narinfo" | grep -qx "URL: $2"' "$url" "$bh" "$enar"
check "... its nar, on neither upstream under that URL, is the secondary's decompressed" \
  bash -c 'curl -fs "$0/$1" | cmp - "$2"' "$url" "$enar" "$TMP/plain.nar"
check "... which was asked for its own file" grep -q '"GET /nar/[^ ]*\.nar\.zst HTTP/1.1" 200' "$TMP/f.access"
check "... and cached under the URL asked" \
  bash -c 'curl -fs "$0/$1" | cmp - "$2" && [ "$(grep -c "\.nar\.zst" "$3")" -eq 1 ]' \
  "$url" "$enar" "$TMP/plain.nar" "$TMP/f.access"
mirror_stop

# ... and when the secondary's narinfo comes after the primary's was
# served and the nar's download began: the primary dies in the middle of
# it, the download goes on from the secondary's file learnt meanwhile
cp -r "$TMP/e" "$TMP/g"
cp "$TMP/plain.nar" "$TMP/g/$enar"
nginx_serve g "$TMP/g" "" "limit_rate 256k;"; pg=$NGINX_PORT
python3 "$SRCDIR/tests/integration/fetch-test-server.py" "$TMP/f" "$TMP/late.port" late-300 \
  "$TMP/late.log" 2> "$TMP/late.err" &
cleanup_hooks+=("kill $! 2>/dev/null")
plate=$(port_from_file "$TMP/late.port" $!)
mirror_start m4 --upstream "http://127.0.0.1:$pg" --upstream "http://127.0.0.1:$plate" \
  --cache "$TMP/mc4" --trusted-key "$TMP/key.pub" --health-interval 300ms --connect-timeout 500ms
url=http://127.0.0.1:$MIRROR_PORT
curl -fs "$url/$bh.narinfo" -o /dev/null
curl -fs "$url/$enar" -o "$TMP/latenar" &
cpid=$!
# 1 MiB at 256 KiB/s: the secondary's narinfo, 300 ms late, is in by then
big_enough() { [ "$(stat -c %s "$TMP/latenar" 2> /dev/null || echo 0)" -ge 1048576 ]; }
wait_for 30 big_enough || true
nginx_stop g
check "secondary's narinfo late, primary killed mid-nar: the client gets it whole" wait "$cpid"
check "... with the right bytes" cmp "$TMP/latenar" "$TMP/plain.nar"
check "... from the secondary's own file" grep -q '^GET /nar/[^ ]*\.nar\.zst ' "$TMP/late.log"
mirror_stop
finish
