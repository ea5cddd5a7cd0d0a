#!/usr/bin/env bash
# cairn fetch --ipfs-gateway does not hold the network thread (issue 15):
# an item whose blocks come from a gateway that stalls waits alone, while
# the other items of the closure (its references) are queried, downloaded
# from the --from server, checked and placed.  The stall is a response
# held after its headers (ipfs-gateway.py --hold) until the test releases
# it: the other items are counted in the store while it is held, and only
# then is it released; the held item then comes from the gateway.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/serve-lib.sh"
. "$SRCDIR/tests/integration/ipfs-lib.sh"
skip_unless nginx python3

C=$TMP/cache CARS=$TMP/cars
mkdir -p "$C" "$CARS"
printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n' > "$C/nix-cache-info"
ipfs_tree "$TMP/t-a" 20 1
ipfs_tree "$TMP/t-b" 30 2
ipfs_tree "$TMP/t-app" 40 3
A=$(ipfs_item "$C" "$CARS" liba-1.0 "$TMP/t-a")
B=$(ipfs_item "$C" "$CARS" libb-1.0 "$TMP/t-b")
APP=$(ipfs_item "$C" "$CARS" app-1.0 "$TMP/t-app" "$(basename "$A") $(basename "$B")")
# the references come from the server's nar files only: no IPFS field
sed -i '/^IPFS: /d' "$C/$(basename "$A" | cut -c1-32).narinfo" "$C/$(basename "$B" | cut -c1-32).narinfo"
# the app from the gateway only
rm "$C/nar/$(basename "$APP" | cut -c1-32).nar"
serve_nginx "$C"
NI=http://127.0.0.1:$SERVE_PORT

HOLD=$TMP/hold; mkdir -p "$HOLD"
ipfs_gateway ok --hold "$(ipfs_cid "$C" "$APP")" --hold-dir "$HOLD"

# The app is asked first (its references are learnt from its narinfo): its
# gateway's answer is held before theirs are even queried.
S=$TMP/s
"$CAIRN" fetch -q --no-cache --json --from "$NI" --trusted-key "$PUB" --store "$S" \
  --block-cache "$TMP/blocks" --closure --stall-timeout 300 --ipfs-gateway "$GW_URL" \
  "$APP" > "$TMP/j" 2> "$TMP/e" &
fpid=$!
cleanup_hooks+=("kill $fpid 2> /dev/null")
check "the gateway holds the app's first block" wait_file "$HOLD/held" 30
placed() { [ -e "$S$A/README" ] && [ -e "$S$B/README" ]; }
check "while it is held, both references are fetched from the server and placed" \
  wait_for 30 placed
check "  ... and the held request is still the only one held, the app not placed" \
  test "$(cat "$HOLD/held")" = 1 -a ! -e "$S$APP"
touch "$HOLD/release"
rc=0; wait "$fpid" || rc=$?
cat "$TMP/e"
check "released: the closure of 3 is fetched" \
  test "$rc" = 0 -a "$(json "$TMP/j" "d['fetched']")" = 3
check "  ... the app from the gateway, the references from the server" \
  test "$(json "$TMP/j" "sorted(i['compression'] for i in d['items'])")" = "['ipfs', 'none', 'none']"
check "  ... the files are the trees'" \
  bash -c 'diff -r "$0" "$1" && diff -r "$2" "$3" && diff -r "$4" "$5"' \
  "$TMP/t-app" "$S$APP" "$TMP/t-a" "$S$A" "$TMP/t-b" "$S$B"

finish
