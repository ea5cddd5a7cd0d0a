#!/usr/bin/env bash
# The priority grace from the preferred server's measured time to first
# byte (issue 17, point 4): with K = 1, an answer from a later --from
# server waits for a preferred one that has not answered yet, at most 2 s;
# once an earlier run kept the preferred server's time to first byte (a
# single-source download of a MiB keeps it, as a multi-source one did),
# the wait is a few of those (at least 0.3 s).  Server A (preferred) was
# fast in a first run; now its link has a 400 ms round trip, so it
# answers only after about 0.8 s (a round trip for the connection, one
# for the request): the item comes from B, which answered at once.
# Without a kept time it still waits for A (the constant), and the item
# comes from A.  Outcomes are which server sent the NAR, never a time.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 sqlite3
publish_require
nix_lib_init
LINKEM=$BUILDDIR/tests/integration/linkem

pstore_init "$TMP/src"
WARM=$(pstore_build "$TMP/src" 1 warm 1500000)
ITEM=$(pstore_build "$TMP/src" 1 item 20000)
check "built the warm-up item and the item" test -n "$WARM" -a -n "$ITEM"
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" grace-test-1
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --compression none

# link NAME ARGS...: a linkem to the server; LINK_PORT, LINK_PID
link() {
  local name=$1; shift
  rm -f "$TMP/$name.port"
  "$LINKEM" --to "127.0.0.1:$PUBLISH_PORT" --port-file "$TMP/$name.port" "$@" 2>"$TMP/$name.log" &
  LINK_PID=$!
  cleanup_hooks+=("kill $LINK_PID 2>/dev/null")
  LINK_PORT=$(port_from_file "$TMP/$name.port" "$LINK_PID")
}
json_server() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([x for x in d["items"] if x["path"]==sys.argv[2]][0]["server"])' "$@"; }

# (a rate: a download of a MiB that lasts under 10 ms keeps nothing)
link a-fast --delay-ms 1 --rate 50M; A=$LINK_PORT; APID=$LINK_PID
link b --delay-ms 0; B=$LINK_PORT
rc=0
"$CAIRN" fetch --cache-db "$TMP/kept.sqlite" --trusted-key "$TMP/k.pub" --multi-min 0 \
  --store-dir "$NIX_STORE_DIR" --nar-dir "$TMP/r-warm" --from "http://127.0.0.1:$A" "$WARM" \
  >/dev/null 2>"$TMP/e-warm" || rc=$?
check "warm-up fetch from A exits 0 ($rc)" test "$rc" = 0
rtt=$(sqlite3 "$TMP/kept.sqlite" "select rtt_ms from speeds where url = 'http://127.0.0.1:$A'")
check "A's time to first byte is kept (${rtt:-none} ms), under 75 ms" \
  test -n "$rtt" -a "${rtt:-0}" -gt 0 -a "${rtt:-100}" -lt 75

# A again on the same port (the same server to the cache), now far away
kill "$APID"; wait "$APID" 2>/dev/null || true
link a-far --listen "$A" --delay-ms 200
check "A's far link listens on A's port" test "$LINK_PORT" = "$A"

fetch_ab() {
  local name=$1 db=$2 rc=0
  "$CAIRN" fetch --cache-db "$db" --trusted-key "$TMP/k.pub" --multi-min 0 --json \
    --store-dir "$NIX_STORE_DIR" --nar-dir "$TMP/r-$name" \
    --from "http://127.0.0.1:$A" --from "http://127.0.0.1:$B" "$ITEM" \
    >"$TMP/j-$name" 2>"$TMP/e-$name" || rc=$?
  check "$name: fetch exits 0 ($rc)" test "$rc" = 0
  [ "$rc" = 0 ] || sed 's/^/    | /' "$TMP/e-$name"
}
fetch_ab kept "$TMP/kept.sqlite"
check "with A's time kept: the item came from B ($(json_server "$TMP/j-kept" "$ITEM"))" \
  test "$(json_server "$TMP/j-kept" "$ITEM")" = "http://127.0.0.1:$B"
fetch_ab fresh "$TMP/fresh.sqlite"
check "with nothing kept: it waited for A, the preferred ($(json_server "$TMP/j-fresh" "$ITEM"))" \
  test "$(json_server "$TMP/j-fresh" "$ITEM")" = "http://127.0.0.1:$A"
publish_stop || not_ok "cairn publish stops cleanly"
finish
