#!/usr/bin/env bash
# `cairn publish` under bad input: malformed and oversized requests, path
# traversal, unknown and malformed hashes, slowloris, 1100 idle connections,
# keep-alive and pipelining (publish-badinput.py, raw sockets); HTTP/2 with
# prior knowledge (curl); and a store item deleted while its nar streams,
# which must end in an error, never in a short nar that looks complete.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3
publish_require
nix_lib_init
# 1100 idle connections: the client and the server (which inherits this)
# need the descriptors
ulimit -n 8192 2> /dev/null || ulimit -n 4096

pstore_init "$TMP/src"
top=$(pstore_build "$TMP/src" 3 pbad 1000 2> /dev/null) || { not_ok "nix-build"; finish; exit 1; }
# 96 files of 512 KiB, opened one after the other while the nar streams
big=$(pstore_build "$TMP/src" 1 big 524288 96 2> /dev/null) || { not_ok "nix-build big"; finish; exit 1; }
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" bad-test-1
hash=$(basename "$top" | cut -c1-32)

publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --compression none || {
  not_ok "cairn publish starts"
  finish
  exit 1
}

if timeout 150 python3 "$SRCDIR/tests/integration/publish-badinput.py" \
  "$PUBLISH_PORT" "$hash" "$NIX_STORE_DIR"; then
  ok "every raw-socket case"
else
  not_ok "every raw-socket case (see above)"
fi
check "the server is still running" kill -0 "$PUBLISH_PID"

# HTTP/2 without upgrade (h2c, prior knowledge)
h1=$(curl -s --max-time 10 "$PUBLISH_URL/$hash.narinfo")
out=$(curl -s --max-time 10 --http2-prior-knowledge -o "$TMP/h2.body" -w '%{http_version} %{http_code}' \
  "$PUBLISH_URL/$hash.narinfo") || true
check "HTTP/2 with prior knowledge: $out" [ "$out" = "2 200" ]
check "  and the same narinfo as HTTP/1.1" [ "$(cat "$TMP/h2.body")" = "$h1" ]
out=$(curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' \
  "$PUBLISH_URL/$(printf '0%.0s' {1..32}).narinfo") || true
check "  an unknown hash over HTTP/2: $out" [ "$out" = "2 404" ]

# A store item garbage-collected while its nar streams: a slow download of
# the 48 MiB nar, then its files go away.  The server has opened only the
# first few of the 96 files; the rest are gone when it gets to them.
ni=$(curl -sf --max-time 10 "$PUBLISH_URL/$(basename "$big" | cut -c1-32).narinfo") || ni=""
url=$(narinfo_field "$ni" URL)
size=$(narinfo_field "$ni" NarSize)
check "the big item's narinfo has a URL ($url) and NarSize ($size)" [ -n "$url" -a -n "$size" ]
curl -s --max-time 60 --limit-rate 2M -o "$TMP/big.nar" "$PUBLISH_URL/$url" &
curl_pid=$!
# (a few MB in: the server is into the first of the 96 files)
wait_for 15 eval '[ "$(stat -c %s "$TMP/big.nar" 2> /dev/null || echo 0)" -gt 2000000 ]' || true
chmod -R u+w "$big"
rm -rf "$big"
# bounded: at 2 MiB/s the whole nar would take 24 s
rc=0
wait "$curl_pid" || rc=$?
got=$(stat -c %s "$TMP/big.nar" 2> /dev/null || echo 0)
check "the interrupted download ends in an error (curl exit $rc), not a clean end" [ "$rc" -ne 0 ]
check "  and it is short ($got of $size bytes)" [ "$got" -lt "${size:-0}" ]
check "a valid path is still served afterwards" \
  curl -sf --max-time 10 -o /dev/null "$PUBLISH_URL/$hash.narinfo"
rc=0
st=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PUBLISH_URL/$url") || rc=$?
check "the gone item's nar is now an error (status $st, curl exit $rc), not a clean 200" \
  [ "$st" != 200 -o "$rc" -ne 0 ]
check "/health is 200" curl -sf --max-time 10 -o /dev/null "$PUBLISH_URL/health"

# A store item whose bytes changed in place (same size) before it was first
# streamed.  A fresh server each time, since an item already checked whole
# is trusted (size check only).
ni=$(curl -sf --max-time 10 "$PUBLISH_URL/$hash.narinfo") || ni=""
url=$(narinfo_field "$ni" URL)
publish_stop || not_ok "cairn publish stops cleanly on SIGTERM"
victim=$(find "$top" -type f | head -1)
chmod -R u+w "$top"
flip() {
  python3 - "$victim" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[0] ^= 0xff
open(sys.argv[1], "wb").write(b)
PY
}
metric() { curl -s --max-time 10 "$PUBLISH_URL/metrics" | sed -n "s/^$1 //p"; }
flip
# --verify strict: the first stream hashes as it goes and never ends cleanly
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --compression none --verify strict ||
  not_ok "cairn publish restarts"
rc=0
st=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PUBLISH_URL/$url") || rc=$?
check "--verify strict: a nar whose bytes changed under the store is an error (status $st, curl exit $rc)" \
  [ "$st" != 200 -o "$rc" -ne 0 ]
st=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PUBLISH_URL/$hash.narinfo")
check "  then the item is withdrawn: its narinfo is 404 ($st)" [ "$st" = 404 ]
check "  and the operator is told" grep -q "does not match its NarHash" "$PUBLISH_LOG"
publish_stop || not_ok "cairn publish stops cleanly on SIGTERM"

# the default, --verify background: the first stream goes out at full speed
# (the client checks NarHash), the check follows it at idle priority and
# withdraws the item
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --compression none ||
  not_ok "cairn publish restarts"
rc=0
st=$(curl -s --max-time 10 -o "$TMP/changed.nar" -w '%{http_code}' "$PUBLISH_URL/$url") || rc=$?
check "background: the first stream is served whole (status $st, curl exit $rc)" \
  [ "$st" = 200 -a "$rc" = 0 ]
st=200
for _ in $(seq 100); do
  st=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PUBLISH_URL/$hash.narinfo")
  [ "$st" = 404 ] && break
  sleep 0.1
done
check "  then the item is withdrawn within 10 s: narinfo $st" [ "$st" = 404 ]
st=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PUBLISH_URL/$url")
check "  and its nar is 404 ($st)" [ "$st" = 404 ]
check "  the operator is told" grep -q "does not match its NarHash" "$PUBLISH_LOG"
check "  /metrics counts one failed check ($(metric cairn_publish_verify_failures_total))" \
  [ "$(metric cairn_publish_verify_failures_total)" = 1 ]
other=$(narinfo_field "$ni" References | tr ' ' '\n' | grep -v "^$hash" | head -1 | cut -c1-32)
check "  other items are still served ($other)" \
  curl -sf --max-time 10 -o /dev/null "$PUBLISH_URL/$other.narinfo"
publish_stop || not_ok "cairn publish stops cleanly on SIGTERM"

# --verify off: sizes only; the changed item is served and never withdrawn
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --compression none --verify off ||
  not_ok "cairn publish restarts"
rc=0
st=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PUBLISH_URL/$url") || rc=$?
sleep 0.5
st2=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PUBLISH_URL/$hash.narinfo")
check "--verify off: the changed item is served ($st, curl $rc) and stays ($st2), unchecked ($(metric cairn_publish_verify_failures_total))" \
  [ "$st" = 200 -a "$rc" = 0 -a "$st2" = 200 -a "$(metric cairn_publish_verify_failures_total)" = 0 ]
publish_stop || not_ok "cairn publish stops cleanly on SIGTERM"

# repaired: back as it was, checked again, served again
flip
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --compression none ||
  not_ok "cairn publish restarts"
curl -s --max-time 10 -o /dev/null "$PUBLISH_URL/$url"
for _ in $(seq 100); do
  [ "$(metric cairn_publish_verified_total)" = 1 ] && break
  sleep 0.1
done
check "background: an intact item is checked once ($(metric cairn_publish_verified_total))" \
  [ "$(metric cairn_publish_verified_total)" = 1 ]
curl -s --max-time 10 -o /dev/null "$PUBLISH_URL/$url"
sleep 0.5
check "  and not again on its next stream" [ "$(metric cairn_publish_verified_total)" = 1 ]
check "  the check queue is empty again ($(metric cairn_publish_verify_queue))" \
  [ "$(metric cairn_publish_verify_queue)" = 0 ]
check "  its narinfo is served" curl -sf --max-time 10 -o /dev/null "$PUBLISH_URL/$hash.narinfo"

publish_stop || not_ok "cairn publish stops cleanly on SIGTERM"
finish
