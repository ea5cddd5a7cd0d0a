#!/usr/bin/env bash
# cairn mirror --ipfs-gateway (issue 15): the mirror fills the nar of an
# uncompressed nar's URL from IPFS gateways when the served narinfo names
# its root CID, through the same source as cairn fetch (lib/ipfs-source.c):
#   - the upstream's nar files are gone (404): a client gets every nar
#     through the mirror, from the gateway (cairn fetch of a closure, and
#     curl of a narinfo and its nar), the bytes the signed NarHash says,
#     and the mirror keeps them (a second request is a cache hit);
#   - a gateway that stalls on one nar holds that nar only: the other
#     items of the closure come through the mirror meanwhile;
#   - a lying gateway (a wrong block, a CAR cut short) is skipped: the
#     upstream's file is used, the bytes are right.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
. "$SRCDIR/tests/integration/ipfs-lib.sh"
skip_unless nginx python3 curl

C=$TMP/cache CARS=$TMP/cars
mkdir -p "$C" "$CARS"
printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n' > "$C/nix-cache-info"
ipfs_tree "$TMP/t-lib" 40 1
ipfs_tree "$TMP/t-app" 60 2
LIB=$(ipfs_item "$C" "$CARS" lib-1.0 "$TMP/t-lib")
APP=$(ipfs_item "$C" "$CARS" app-1.0 "$TMP/t-app" "$(basename "$LIB")")
mv "$C/nar" "$TMP/nar-hidden" # the upstream's nar URLs are dead
nginx_serve up "$C"
UP=http://127.0.0.1:$NGINX_PORT
ipfs_gateway ok; OK_URL=$GW_URL OK_LOG=$GW_LOG

# a block cache far smaller than the closure's blocks (about 100 KiB): a
# transit store, trimmed as the items' fills end
mirror_start m1 --upstream "$UP" --cache "$TMP/m1" --trusted-key "$PUB" --ipfs-gateway "$OK_URL" \
  --ipfs-block-cache 20K
M=http://127.0.0.1:$MIRROR_PORT

# 1. cairn fetch through the mirror
rc=0; "$CAIRN" fetch -q --no-cache --json --from "$M" --trusted-key "$PUB" --store "$TMP/s1" \
  --closure "$APP" > "$TMP/j1" 2> "$TMP/e1" || rc=$?
cat "$TMP/e1"; cat "$MIRROR_LOG"
check "upstream nar files dead, gateway up: the closure of 2 is fetched through the mirror" \
  test "$rc" = 0 -a "$(json "$TMP/j1" "d['fetched']")" = 2
check "  ... its files are the trees'" diff -r "$TMP/t-app" "$TMP/s1$APP"
check "  ... the gateway was asked (blocks and CARs)" grep -q "format=car" "$OK_LOG"
kept=$(find "$TMP/m1/ipfs-blocks" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
check "  ... /metrics: 2 nars filled from the gateway, none failed" \
  test "$(metric cairn_mirror_gateway_fills_total)-$(metric cairn_mirror_gateway_fill_failures_total)" = 2-0
check "  ... the blocks kept are within --ipfs-block-cache 20K ($kept bytes)" test "$kept" -le 20480

# 2. curl: the narinfo and its nar through the mirror, the NarHash's bytes
h=$(basename "$APP" | cut -c1-32)
curl -fsS "$M/$h.narinfo" > "$TMP/app.narinfo"
url=$(sed -n 's/^URL: //p' "$TMP/app.narinfo")
curl -fsS "$M/$url" > "$TMP/app.nar"
check "curl: the narinfo's IPFS field is passed on" grep -q '^IPFS: ' "$TMP/app.narinfo"
check "curl: the nar's hash is the NarHash" \
  test "$("$CAIRN" hash file "$TMP/app.nar")" = "$(sed -n 's/^NarHash: //p' "$TMP/app.narinfo")"
hits=$(metric cairn_mirror_nar_hits_total)
check "  ... and it came from the cache ($hits hits)" test "${hits:-0}" -ge 1
mirror_stop

# 3. a gateway that stalls on the app's nar holds that nar only: the
# references' narinfos and nars go through the mirror meanwhile (counted
# in the client's store while the stall is held, released after)
HOLD=$TMP/hold; mkdir -p "$HOLD"
ipfs_gateway ok --hold "$(ipfs_cid "$C" "$APP")" --hold-dir "$HOLD"
mirror_start m2 --upstream "$UP" --cache "$TMP/m2" --trusted-key "$PUB" --ipfs-gateway "$GW_URL"
M=http://127.0.0.1:$MIRROR_PORT
S=$TMP/s3
"$CAIRN" fetch -q --no-cache --json --from "$M" --trusted-key "$PUB" --store "$S" \
  --closure --stall-timeout 300 "$APP" > "$TMP/j3" 2> "$TMP/e3" &
fpid=$!
cleanup_hooks+=("kill $fpid 2> /dev/null")
check "stall: the gateway holds the app's first block" wait_file "$HOLD/held" 30
check "  ... while it is held, the reference comes through the mirror" \
  wait_for 30 test -e "$S$LIB/README"
check "  ... and the app is not there yet" test ! -e "$S$APP"
touch "$HOLD/release"
rc=0; wait "$fpid" || rc=$?
cat "$TMP/e3"
check "  ... released: the closure of 2 is fetched, the app's files right" \
  bash -c '[ "$0" = 0 ] && diff -r "$1" "$2"' "$rc" "$TMP/t-app" "$S$APP"
mirror_stop

# 4. liars: skipped, the upstream's file used
mv "$TMP/nar-hidden" "$C/nar"
for mode in wrong-block truncated-car extra-blocks 404; do
  ipfs_gateway "$mode"
  mirror_start "m-$mode" --upstream "$UP" --cache "$TMP/m-$mode" --trusted-key "$PUB" \
    --ipfs-gateway "$GW_URL"
  M=http://127.0.0.1:$MIRROR_PORT
  before=$(count_requests up "/nar/")
  rc=0; "$CAIRN" fetch -q --no-cache --json --from "$M" --trusted-key "$PUB" \
    --store "$TMP/s-$mode" --closure "$APP" > "$TMP/jl" 2> "$TMP/el" || rc=$?
  cat "$TMP/el"
  check "$mode gateway: the closure is fetched through the mirror" \
    test "$rc" = 0 -a "$(json "$TMP/jl" "d['fetched']")" = 2
  check "  ... its files are the trees'" diff -r "$TMP/t-app" "$TMP/s-$mode$APP"
  check "  ... the gateway was asked, the upstream's nar files used" \
    test -s "$GW_LOG" -a "$(count_requests up "/nar/")" -ge $((before + 2))
  check "  ... the mirror says why" grep -q "not from the IPFS gateways" "$MIRROR_LOG"
  check "  ... its block cache holds only blocks that are their CIDs'" cache_true "$TMP/m-$mode/ipfs-blocks"
  check "  ... /metrics: 2 gateway fills failed, none filled" \
    test "$(metric cairn_mirror_gateway_fills_total)-$(metric cairn_mirror_gateway_fill_failures_total)" = 0-2
  mirror_stop
done

finish
