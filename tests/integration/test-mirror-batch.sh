#!/usr/bin/env bash
# The mirror's own misses in batches (issue 17.1): a client asking a cold
# mirror for a deep closure (/narinfos?closure=1, as cairn fetch --closure
# does) costs the upstream cairn publish, which advertises CairnNarinfos,
# a bounded number of narinfo requests, not one per level of the closure.
# With two such upstreams and --require-sigs 2 the verdicts are those of
# single misses: the agreed closure is served with both signatures, an
# item the upstreams disagree about is still refused, an unknown one absent.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
skip_unless curl
publish_require
nix_lib_init

N=12
S1=$TMP/s1
S2=$TMP/s2
# deterministic builds (no random bytes): the same chain, the same NarHash
# in both stores
TOP=$(nix_build_closure "$S1" $N mb)
TOP2=$(nix_build_closure "$S2" $N mb)
mapfile -t CL < <(nix_closure "$S1" "$TOP")
check "the closure has $N paths, the same in both stores" \
  test "${#CL[@]}-$TOP" = "$N-$TOP2"
# the same derivation built twice with random bytes: the upstreams disagree
BAD=$(nix_build_closure "$S1" 1 mbad 2000)
BAD2=$(nix_build_closure "$S2" 1 mbad 2000)
check "the disagreeing item has one store path in both stores" test "$BAD" = "$BAD2"
hp() { basename "$1" | cut -c1-32; }
nix_gen_key mb-a "$TMP/ka"
nix_gen_key mb-b "$TMP/kb"

# count LOG PATTERN [FROM-LINE]: request lines matching PATTERN after FROM-LINE
count() { tail -n +"$((${3:-0} + 1))" "$1" 2>/dev/null | grep -c -- "$2" || true; }

publish_start --store "$S1/nix/store" --key "$TMP/ka.sec" --access-log "$TMP/acc-a.log" ||
  { not_ok "publish a starts"; finish; }
UA=$PUBLISH_URL
publish_start --store "$S2/nix/store" --key "$TMP/kb.sec" --access-log "$TMP/acc-b.log" ||
  { not_ok "publish b starts"; finish; }
UB=$PUBLISH_URL
check "the upstreams advertise CairnNarinfos: 1" \
  bash -c "curl -sf '$UA/nix-cache-info' | grep -qx 'CairnNarinfos: 1'"

# ---- one upstream: a cold mirror, a fetch of the closure through it
mirror_start m1 --upstream "$UA" --cache "$TMP/mc1" --trusted-key "$TMP/ka.pub" ||
  { not_ok "mirror starts"; finish; }
M=http://127.0.0.1:$MIRROR_PORT
rc=0
"$CAIRN" fetch --trusted-key "$TMP/ka.pub" --from "$M" -q --no-cache \
  --nar-dir "$TMP/n1" --closure "$TOP" 2> "$TMP/fetch1.err" || rc=$?
check "fetch --closure through the cold mirror: exit 0, $N nars" \
  test "$rc-$(ls "$TMP/n1" 2>/dev/null | wc -l)" = "0-$N"
single=$(count "$TMP/acc-a.log" '\.narinfo ')
batch=$(count "$TMP/acc-a.log" 'GET /narinfos?')
# the client's first single request (the top) is one miss, its closure
# request one more: one upstream request each, however deep the closure
check "the upstream got O(1) narinfo requests for $N levels ($single single, $batch batch)" \
  test "$((single + batch))" -le 3
# (the misses of one level may straddle two rounds of the mirror's
# upstream thread: two closure requests, the second mostly redundant)
check "... its closure in one or two batch requests" \
  test "$(count "$TMP/acc-a.log" 'GET /narinfos?.*closure=1')" -ge 1 -a \
  "$(count "$TMP/acc-a.log" 'GET /narinfos?.*closure=1')" -le 2
held=$(curl -sf -H 'Cache-Control: only-if-cached' \
  "$M/narinfos?hashes=$(for p in "${CL[@]}"; do hp "$p"; done | paste -sd,)" | grep -c '^Narinfo: ')
check "only-if-cached: the mirror holds all $N narinfos now ($held)" test "$held" = "$N"
mirror_stop

# ---- a plain batch of more hashes than the mirror looks up at once (16):
# its misses reach the upstream together, in one batch request (they once
# went a few per round of the upstream thread: a batch request each)
mirror_start m3 --upstream "$UA" --cache "$TMP/mc3" --trusted-key "$TMP/ka.pub" ||
  { not_ok "mirror 3 starts"; finish; }
M=http://127.0.0.1:$MIRROR_PORT
froma=$(wc -l < "$TMP/acc-a.log")
many=$( { for p in "${CL[@]}"; do hp "$p"; done; for i in $(seq 1 60); do printf '%032d\n' "$i"; done; } | paste -sd,)
curl -sf "$M/narinfos?hashes=$many" > "$TMP/c4" || true
check "a batch of $((N + 60)) through a cold mirror: $N narinfos, 60 absent" \
  test "$(grep -c '^Narinfo: ' "$TMP/c4")-$(grep -c '^Absent: ' "$TMP/c4")" = "$N-60"
b4=$(count "$TMP/acc-a.log" 'GET /narinfos?' "$froma")
s4=$(count "$TMP/acc-a.log" '\.narinfo ' "$froma")
check "... the upstream asked once: $b4 batch request(s), $s4 single" test "$b4-$s4" = "1-0"
check "... the mirror counts $((N + 60)) narinfo misses, no coalescing" \
  bash -c "curl -sf '$M/metrics' | grep -E '^cairn_mirror_(narinfo_misses|coalesced)_total' | tr '\n' ' ' | grep -q 'misses_total $((N + 60)) .*coalesced_total 0 \|coalesced_total 0 .*misses_total $((N + 60)) '"
mirror_stop

# ---- two upstreams, --require-sigs 2: verdicts as for single misses
mirror_start m2 --upstream "$UA" --upstream "$UB" --cache "$TMP/mc2" \
  --trusted-key "$TMP/ka.pub" --trusted-key "$TMP/kb.pub" --require-sigs 2 ||
  { not_ok "mirror 2 starts"; finish; }
M=http://127.0.0.1:$MIRROR_PORT
froma=$(wc -l < "$TMP/acc-a.log"); fromb=$(wc -l < "$TMP/acc-b.log")
curl -sf "$M/narinfos?hashes=$(hp "$TOP")&closure=1" > "$TMP/c2" || true
check "K=2: the agreed closure through the cold mirror: $N narinfos" \
  test "$(grep -c '^Narinfo: ' "$TMP/c2")" = "$N"
check "... each carrying both signatures" \
  test "$(grep -c '^Sig: mb-a:' "$TMP/c2")-$(grep -c '^Sig: mb-b:' "$TMP/c2")" = "$N-$N"
na=$(($(count "$TMP/acc-a.log" 'narinfo' "$froma")))
nb=$(($(count "$TMP/acc-b.log" 'narinfo' "$fromb")))
# (one upstream's closure answer may come after the other's brought the
# next level: it is asked about that level in one more batch)
check "... each upstream asked O(1) times ($na, $nb)" test "$na" -le 3 -a "$nb" -le 3
nothere=00000000000000000000000000000000
curl -sf "$M/narinfos?hashes=$(hp "$BAD"),$nothere,$(hp "${CL[3]}")" > "$TMP/c3" || true
check "K=2: in a batch, the disagreeing item is refused (absent), the unknown absent, the agreed served" \
  test "$(grep -c '^Absent: ' "$TMP/c3")-$(grep -c '^Narinfo: ' "$TMP/c3")" = "2-1"
check "... the refusal is logged, naming the disagreement" wait_log "$(hp "$BAD")"
check "... as a single request would: 404" \
  test "$(curl -s -o /dev/null -w '%{http_code}' "$M/$(hp "$BAD").narinfo")" = 404
mirror_stop
finish
