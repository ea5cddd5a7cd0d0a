#!/usr/bin/env bash
# The link emulator (tests/integration/linkem.c) that tests and bench/ put
# in front of servers: bytes pass unchanged, many connections at once; a
# cut link resets after exactly N bytes (a client must see an error, not a
# short whole), a stalled one delivers exactly N bytes and then nothing.
# Its rate and delay are measured, not asserted here: bench/linkem.sh.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/serve-lib.sh"
skip_unless nginx curl
LINKEM=$BUILDDIR/tests/integration/linkem

mkdir -p "$TMP/www"
head -c 3000000 /dev/urandom >"$TMP/www/blob"
want=$(sha256sum <"$TMP/www/blob")
serve_nginx "$TMP/www"; up=127.0.0.1:$SERVE_PORT

# link NAME ARGS...: start a linkem in front of nginx, sets LINK_PORT
link() {
  local name=$1; shift
  "$LINKEM" --to "$up" --port-file "$TMP/$name.port" "$@" 2>"$TMP/$name.log" &
  local pid=$!
  cleanup_hooks+=("kill $pid")
  LINK_PORT=$(port_from_file "$TMP/$name.port" "$pid")
}

link plain --delay-ms 5
pids=()
for i in 1 2 3 4 5; do
  curl -sf --max-time 60 -o "$TMP/out$i" "http://127.0.0.1:$LINK_PORT/blob" &
  pids+=($!)
done
wait "${pids[@]}" || true
for i in 1 2 3 4 5; do
  check "download $i through the link is byte-identical" test "$(sha256sum <"$TMP/out$i")" = "$want"
done
wait_for 10 test "$(grep -c 'closed' "$TMP/plain.log")" -ge 5 || true
check "five connections, each logged with its byte counts" \
  test "$(grep -c 'closed up=[0-9]* down=3000[0-9][0-9][0-9]$' "$TMP/plain.log")" = 5

link slow --rate 80M --delay-ms 1 --up-rate 1M
check "a rate limit still delivers everything" \
  test "$(curl -sf --max-time 60 "http://127.0.0.1:$LINK_PORT/blob" | sha256sum)" = "$want"

link cut --cut-after 100000
rc=0; curl -s --max-time 60 -o "$TMP/cut" "http://127.0.0.1:$LINK_PORT/blob" || rc=$?
check "a cut link is an error for the client (curl $rc), not a clean end" test "$rc" != 0
check "the cut comes after exactly 100000 bytes (headers included)" \
  test "$(grep -c 'cut after 100000 bytes' "$TMP/cut.log")" = 1
hdr=$(curl -s -D - -o /dev/null "http://127.0.0.1:$SERVE_PORT/blob" | wc -c)
check "the client got exactly the bytes before the cut" test "$(stat -c %s "$TMP/cut")" = $((100000 - hdr))

link stall --stall-after 50000
rc=0; curl -s --max-time 3 -o "$TMP/stall" "http://127.0.0.1:$LINK_PORT/blob" || rc=$?
check "a stalled link times the client out (curl $rc = 28)" test "$rc" = 28
check "the stalled link delivered exactly 50000 bytes" \
  test "$(stat -c %s "$TMP/stall")" = $((50000 - hdr))

finish
