#!/usr/bin/env bash
# Warm edges (issue 14): `cairn mirror --follow` in front of a head (cairn
# publish --feed over a Nix store built by nix-build).  Before it follows,
# a new item is not held: `cairn weather --held --min-coverage 100` fails
# (a line per edge), only-if-cached asks of the mirror are 504 and reach
# no upstream; the follower restarted goes on from where it was in the
# feed and fetches the item into the cache with no client asking; weather
# then passes.  A budget stops warming (counted).  A head serving a
# binary-cache directory with an item signed by a key the mirror does not
# trust: that item is not warmed, logged, and the others are.  A forged
# feed page is refused and not applied.  A head that no longer keeps
# event 1: the first contact reads its snapshot.  A head whose feed was
# recreated: the follower starts again in the new feed.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
skip_unless curl python3
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
first=$(pstore_build "$TMP/src" 1 wfa 1000) || { not_ok "nix-build builds an item"; finish; exit 1; }
hp() { basename "$1" | cut -c1-32; }
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" head-test-1
"$CAIRN" key generate --format nix --secret "$TMP/o.sec" --public "$TMP/o.pub" other-test-1

publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --feed "$TMP/feed" \
  --access-log "$TMP/head.access" || { not_ok "the head starts"; finish; exit 1; }
HEAD_URL=$PUBLISH_URL
# head_requests PATH: the head's access log lines for GET PATH (as it is)
head_requests() {
  local n; n=$(grep -cF "\"GET $1 " "$TMP/head.access" 2> /dev/null) || true
  echo "${n:-0}"
}
# head_ni_requests HASHPART: requests for its narinfo, alone or in a batch
# (GET /narinfos?hashes=...: the survey's, when the head advertises it)
head_ni_requests() {
  local n; n=$(grep -cE "\"GET /($1\.narinfo|narinfos\?[^ ]*$1)" "$TMP/head.access" 2> /dev/null) || true
  echo "${n:-0}"
}
# metric_at PORT NAME: a value of a mirror's /metrics
metric_at() {
  curl -fs "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
# metric_ge PORT NAME N: the metric is at least N
metric_ge() { local v; v=$(metric_at "$1" "$2"); [ "${v:-0}" -ge "$3" ]; }
# status URL [CURL ARGS]: the HTTP status of a GET
status() { local u=$1; shift; curl -s -o /dev/null -w '%{http_code}' "$@" "$u"; }
OIC=(-H "Cache-Control: only-if-cached")

check "--follow without --trusted-key is a usage error" \
  bash -c '"$0" mirror --upstream "$1" --cache "$2" --follow "$1" 2>&1; test $? = 2' \
  "$CAIRN" "$HEAD_URL" "$TMP/nokeys" > /dev/null

MC=$TMP/mc
MARGS=(--upstream "$HEAD_URL" --cache "$MC" --trusted-key "$TMP/k.pub")
# 1. first contact: the follower starts at the head's newest event
mirror_start m1 "${MARGS[@]}" --follow "$HEAD_URL" || { not_ok "the mirror starts"; finish; exit 1; }
check "the follower's first contact starts at the head" wait_log "follow: feed [0-9a-f]{32} of .*: warming what comes after its event [0-9]+"
check "  and keeps where it is in the cache directory" wait_file "$MC/follow-state"
check "/metrics: the follow sequence" test -n "$(metric cairn_mirror_follow_seq)"
mirror_stop

# 2. a new item while the follower is stopped
new=$(pstore_build "$TMP/src" 1 wfnew 20000)
new_hp=$(hp "$new")
new_ni=$(curl -fs "$HEAD_URL/$new_hp.narinfo")
new_url=$(narinfo_field "$new_ni" URL)
check "the head serves the new item" test -n "$new_url"

# 3. a mirror that does not follow: the item is not held
mirror_start m2 "${MARGS[@]}" || { not_ok "the mirror starts"; finish; exit 1; }
M2=http://127.0.0.1:$MIRROR_PORT
before_ni=$(head_ni_requests "$new_hp")
before_nar=$(head_requests "/$new_url")
rc=0
"$CAIRN" weather --held --min-coverage 100 --from "$M2" "$new" > "$TMP/w1.out" 2>&1 || rc=$?
sed 's/^/  | /' "$TMP/w1.out"
check "weather --held --min-coverage 100 fails before warming" test "$rc" = 1
check "  with a line for the edge below it" grep -q '^  below --min-coverage 100.0%$' "$TMP/w1.out"
check "  0% held" grep -q '^  0.0% held (0 of 1)$' "$TMP/w1.out"
check "only-if-cached narinfo not held: 504" test "$(status "$M2/$new_hp.narinfo" "${OIC[@]}")" = 504
check "only-if-cached nar not held: 504" test "$(status "$M2/$new_url" "${OIC[@]}")" = 504
check "  and none of them reached the upstream" \
  test "$(head_ni_requests "$new_hp")/$(head_requests "/$new_url")" = "$before_ni/$before_nar"
check "  nor counted a narinfo miss" test "$(metric cairn_mirror_narinfo_misses_total)" = 0
mirror_stop

# 4. the follower again: it goes on after the event it had reached, and
# warms the new item with no client asking
mirror_start m3 "${MARGS[@]}" --follow "$HEAD_URL" || { not_ok "the mirror starts"; finish; exit 1; }
M3=http://127.0.0.1:$MIRROR_PORT
check "the follower goes on from its state file" wait_log "follow: feed [0-9a-f]{32} of .*: going on after its event"
# held_at URL HASHPART: the mirror holds the item (only-if-cached: 200)
held_at() { test "$(status "$1/$2.narinfo" "${OIC[@]}")" = 200; }
check "the new item is warmed with no client asking (polled)" wait_for 30 held_at "$M3" "$new_hp"
check "  counted in /metrics" metric_ge "$MIRROR_PORT" cairn_mirror_follow_warmed_total 1
fetched="$(head_ni_requests "$new_hp")/$(head_requests "/$new_url")"
check "  its narinfo and nar fetched once from the head ($fetched)" \
  test "$fetched" = "$((before_ni + 1))/$((before_nar + 1))"
check "  its nar is in the cache: only-if-cached 200" test "$(status "$M3/$new_url" "${OIC[@]}")" = 200
check "  and its narinfo" test "$(status "$M3/$new_hp.narinfo" "${OIC[@]}")" = 200
check "  byte for byte what the head serves" \
  bash -c 'cmp -s <(curl -fs "$0/$2") <(curl -fs "$1/$2")' "$HEAD_URL" "$M3" "$new_url"
check "warmed bytes counted" metric_ge "$MIRROR_PORT" cairn_mirror_follow_warmed_bytes_total 20000
rc=0
"$CAIRN" weather --held --min-coverage 100 --from "$M3" "$new" > "$TMP/w2.out" 2>&1 || rc=$?
sed 's/^/  | /' "$TMP/w2.out"
check "weather --held --min-coverage 100 passes after warming" test "$rc" = 0
check "  with a line for the edge meeting it" grep -q '^  meets --min-coverage 100.0%$' "$TMP/w2.out"
# an item built while it follows: warmed within the long-poll
live=$(pstore_build "$TMP/src" 1 wflive 5000)
check "an item built while following is warmed" wait_for 30 held_at "$M3" "$(hp "$live")"
# caught_up: /metrics says the follower is at the head it last heard of
caught_up() {
  local m; m=$(curl -fs "http://127.0.0.1:$MIRROR_PORT/metrics")
  [ "$(awk '$1 == "cairn_mirror_follow_lag" { print $2 }' <<< "$m")" = 0 ] &&
    [ "$(awk '$1 == "cairn_mirror_follow_seq" { print $2 }' <<< "$m")" = \
      "$(awk '$1 == "cairn_mirror_follow_head" { print $2 }' <<< "$m")" ]
}
check "/metrics: follow sequence at the head's, lag 0" wait_for 10 caught_up
head_seq=$(curl -sf "$HEAD_URL/feed/events?since=0&max=1" | sed -n 's/^head //p')
check "  the head's own sequence" test "$(metric cairn_mirror_follow_seq)" = "$head_seq"
check "  lag in seconds 0" test "$(metric cairn_mirror_follow_lag_seconds)" = 0.000000000
mirror_stop

# 5. a budget: warming stops once it is spent, and the rest is counted
mirror_start m4 --upstream "$HEAD_URL" --cache "$TMP/mb" --trusted-key "$TMP/k.pub" \
  --follow "$HEAD_URL" --follow-budget 30000 || { not_ok "the mirror starts"; finish; exit 1; }
M4=http://127.0.0.1:$MIRROR_PORT
check "the budgeted follower starts at the head" wait_log "warming what comes after"
b1=$(pstore_build "$TMP/src" 1 wfb1 20000)
b2=$(pstore_build "$TMP/src" 1 wfb2 20000)
b3=$(pstore_build "$TMP/src" 1 wfb3 20000)
check "an item past the budget is skipped (counted)" \
  wait_for 30 bash -c 'curl -fs "$0/metrics" | grep -q "^cairn_mirror_follow_budget_skipped_total [1-9]"' "$M4"
check "  the first item fits the budget: warmed" test "$(status "$M4/$(hp "$b1").narinfo" "${OIC[@]}")" = 200
check "  the second does not: not held" test "$(status "$M4/$(hp "$b2").narinfo" "${OIC[@]}")" = 504
check "  nor the third" \
  wait_for 30 bash -c 'curl -fs "$0/metrics" | grep -q "^cairn_mirror_follow_budget_skipped_total [2-9]"' "$M4"
check "  not held either" test "$(status "$M4/$(hp "$b3").narinfo" "${OIC[@]}")" = 504
check "  the budget logged once" test "$(grep -c "warming budget is spent" "$MIRROR_LOG")" = 1
check "  warmed bytes within the budget" \
  test "$(metric cairn_mirror_follow_warmed_bytes_total)" -le 30000
check "  budget left reported" test -n "$(metric cairn_mirror_follow_budget_left_bytes)"
mirror_stop

# 6. an item signed by a key the mirror does not trust (a head serving a
# binary-cache directory whose feed the trusted key signs)
BC=$TMP/bc
good=$(pstore_build "$TMP/src" 1 wfgood 3000)
bad=$(pstore_build "$TMP/src" 1 wfbad 3000)
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=xz" "$first"
publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed-bc" ||
  { not_ok "the binary-cache head starts"; finish; exit 1; }
BC_URL=$PUBLISH_URL
mirror_start m5 --upstream "$BC_URL" --cache "$TMP/mu" --trusted-key "$TMP/k.pub" \
  --follow "$BC_URL" || { not_ok "the mirror starts"; finish; exit 1; }
M5=http://127.0.0.1:$MIRROR_PORT
check "the follower starts at the binary-cache head" wait_log "warming what comes after"
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/o.sec&compression=xz" "$bad"
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=xz" "$good"
check "the item signed by the trusted key is warmed" wait_for 30 held_at "$M5" "$(hp "$good")"
check "the one signed by an unknown key is refused (counted)" \
  wait_for 30 metric_ge "$MIRROR_PORT" cairn_mirror_follow_refused_total 1
check "  and logged" grep -q "follow: $(hp "$bad") not warmed: the mirror does not serve its narinfo" "$MIRROR_LOG"
check "  by the mirror's trust policy" grep -q "refused the narinfo of $(hp "$bad")" "$MIRROR_LOG"
check "  not held" test "$(status "$M5/$(hp "$bad").narinfo" "${OIC[@]}")" = 504
bad_url=$(sed -n 's/^URL: //p' "$BC/$(hp "$bad").narinfo")
check "  its nar not fetched" test "$(status "$M5/$bad_url" "${OIC[@]}")" = 504
# a narinfo the head rewrites in place (an unsigned field changed: Nix's
# signature still holds) is a new event: the held copy is replaced
g_ni=$BC/$(hp "$good").narinfo
grep -v '^Deriver: ' "$g_ni" > "$TMP/g.narinfo"
check "  (the rewrite changes the narinfo)" test "$(wc -c < "$TMP/g.narinfo")" -lt "$(wc -c < "$g_ni")"
mv "$TMP/g.narinfo" "$g_ni"
held_now() { curl -sf "${OIC[@]}" "$M5/$(hp "$good").narinfo" | cmp -s - "$g_ni"; }
check "a narinfo rewritten at the head replaces the held copy" wait_for 30 held_now
check "  counted" metric_ge "$MIRROR_PORT" cairn_mirror_follow_replaced_total 1
# an item removed at the head (a signed removal): forgotten, so the mirror
# asks again and, the head having no more of it, answers 404
rm "$g_ni"
not_held() { test "$(status "$M5/$(hp "$good").narinfo" "${OIC[@]}")" = 504; }
check "an item removed at the head is forgotten by the mirror" wait_for 30 not_held
check "  counted" metric_ge "$MIRROR_PORT" cairn_mirror_follow_removed_total 1
check "  a client now gets 404" test "$(status "$M5/$(hp "$good").narinfo")" = 404
mirror_stop
sed 's/^/  | /' "$MIRROR_LOG" | grep follow || true

# 7. a forged page (hashed right, carrying a real page's signature over
# another statement) is refused and not applied; the follower goes on
python3 "$SRCDIR/tests/integration/feed-proxy.py" "$BC_URL" "$TMP/mode" "$TMP/proxy-port" &
cleanup_hooks+=("kill $! 2>/dev/null")
check "the forging proxy starts" wait_file "$TMP/proxy-port"
PROXY=http://127.0.0.1:$(cat "$TMP/proxy-port")
echo pass > "$TMP/mode"
mirror_start m6 --upstream "$BC_URL" --cache "$TMP/mp" --trusted-key "$TMP/k.pub" \
  --follow "$PROXY" || { not_ok "the mirror starts"; finish; exit 1; }
M6=http://127.0.0.1:$MIRROR_PORT
check "the follower starts through the proxy" wait_log "warming what comes after"
printf 'forge\n%s\n' "$(hp "$good")" > "$TMP/mode"
g2=$(pstore_build "$TMP/src" 1 wfg2 3000)
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=xz" "$g2"
check "a forged page is refused (counted)" \
  wait_for 40 metric_ge "$MIRROR_PORT" cairn_mirror_follow_pages_refused_total 1
check "  and logged" grep -q "follow: page after [0-9]* refused" "$MIRROR_LOG"
echo pass > "$TMP/mode"
g3=$(pstore_build "$TMP/src" 1 wfg3 3000)
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=xz" "$g3"
check "the follower goes on once pages verify again" wait_for 30 held_at "$M6" "$(hp "$g3")"
mirror_stop

# 8. a first contact with a head that no longer keeps event 1 (410): the
# follower learns where the head is from its verified snapshot
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --feed "$TMP/feed-short" --feed-keep 1 \
  --access-log "$TMP/short.access" || { not_ok "the short-memory head starts"; finish; exit 1; }
S_URL=$PUBLISH_URL
nix-store --store "$SRC" --delete "$b3" > /dev/null 2>&1 || true
pstore_build "$TMP/src" 1 wfs1 100 > /dev/null
gone() { test "$(status "$S_URL/feed/events?since=0")" = 410; }
check "the head answers 410 for since=0" wait_for 20 gone
mirror_start m7 --upstream "$S_URL" --cache "$TMP/ms" --trusted-key "$TMP/k.pub" \
  --follow "$S_URL" || { not_ok "the mirror starts"; finish; exit 1; }
M7=http://127.0.0.1:$MIRROR_PORT
check "the follower starts at the head, from its snapshot" wait_log "warming what comes after"
check "  which it read" grep -q '"GET /feed/snapshot ' "$TMP/short.access"
s2=$(pstore_build "$TMP/src" 1 wfs2 3000)
check "  and warms what comes after" wait_for 30 held_at "$M7" "$(hp "$s2")"

# 9. the head's feed recreated (a new feed id, its own numbering, fewer
# events than the follower saw: a 400 for its position): the follower
# finds the new feed, starts again at its head and warms what comes after
S_PORT=${S_URL##*:}
publish_stop
"$CAIRN" publish --listen "127.0.0.1:$S_PORT" "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" \
  --feed "$TMP/feed-short2" > "$TMP/short2.log" 2>&1 &
PUBLISH_PID=$!
cleanup_hooks+=("kill -9 $PUBLISH_PID 2>/dev/null")
restarted() { test "$(grep -cE "warming what comes after" "$MIRROR_LOG")" -ge 2; }
check "the head's feed recreated: the follower starts again in the new feed" wait_for 30 restarted
check "  and says why" grep -q "follow: the feed is now [0-9a-f]\{32\}, not" "$MIRROR_LOG"
s3=$(pstore_build "$TMP/src" 1 wfs3 3000)
check "  and warms what comes after" wait_for 30 held_at "$M7" "$(hp "$s3")"
mirror_stop

finish
