#!/usr/bin/env bash
# Fail-over, end to end (issue 14): the real Nix client copies a closure of
# many paths, some large, through a cairn mirror whose upstreams are the
# head (cairn publish over a Nix store built here, without --cache: its nar
# URLs carry `?hash=`) and a replica (cairn sync into a directory, served
# by cairn publish --binary-cache).  The head is killed with SIGKILL in the
# middle of the copy -- "the middle" known by counting: a proxy in front of
# the head passes the first nar transfers whole and holds the next ones
# after their first bytes, so a transfer from the head is in flight when it
# dies.  The copy completes from the replica and every path verifies in
# the destination store.  Then `cairn fetch --from HEAD --from REPLICA`,
# the head killed the same way mid-transfer: it completes from the replica.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
skip_unless curl python3 timeout
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
# the small paths: text that compresses, as packages do.  The big ones:
# random data, which the head offers uncompressed once it measured that:
# its narinfo then names nar/X.nar while the replica, which copied the
# first answer, has nar/X.nar.zst -- same signed NarHash, another URL and
# compression.  The mirror serves the head's narinfo; when the head dies,
# the replica has no file under that URL, and the mirror must fetch the
# replica's own (see "Fail-over" in docs/cairn-mirror.md).
python3 -c '
import random, sys
r = random.Random(14)
w = ["%x" % r.getrandbits(24) for _ in range(4096)]
sys.stdout.write("\n".join(" ".join(r.choice(w) for _ in range(12)) for _ in range(70000)))
' > "$TMP/text"
small=$(pstore_build "$TMP/src" 30 fos 50000 1 "$TMP/text") || { not_ok "nix-build (small paths)"; finish; exit 1; }
big=$(pstore_build "$TMP/src" 4 fob $((3 * 1024 * 1024)) 1 /dev/urandom) || { not_ok "nix-build (big paths)"; finish; exit 1; }
mapfile -t closure < <(nix path-info --store "$SRC" -r "$small" "$big")
echo "  closure of ${#closure[@]} paths"
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" head-test-1

# the head: the store itself, nars compressed on the fly
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "the head starts"; finish; exit 1; }
HEAD_PID=$PUBLISH_PID HEAD_URL=$PUBLISH_URL
n_valid=$(nix path-info --store "$SRC" --all | wc -l)
at_head() {
  curl -sf "$HEAD_URL/feed/events?since=0&max=1" -o "$TMP/page" &&
    [ "$(sed -n 's/^head //p' "$TMP/page")" -ge "$n_valid" ]
}
wait_for 30 at_head || true

# the replica: a full sync, served as a directory
R=$TMP/replica
if "$CAIRN" sync --from "$HEAD_URL" --to "$R" --trusted-key "$TMP/k.pub" \
  > "$TMP/sync.out" 2> "$TMP/sync.err"; then
  ok "the replica is synced from the head"
else
  not_ok "the replica is synced from the head"
  sed 's/^/  | /' "$TMP/sync.out" "$TMP/sync.err"
fi
publish_start --binary-cache "$R" || { not_ok "the replica is served"; finish; exit 1; }
REPLICA_PID=$PUBLISH_PID REPLICA_URL=$PUBLISH_URL

# proxy_start PASS: a hold-proxy in front of the head (sets PROXY_PID,
# PROXY_URL, PROXY_STATE)
proxy_n=0
proxy_start() {
  proxy_n=$((proxy_n + 1))
  PROXY_STATE=$TMP/proxy-$proxy_n
  mkdir -p "$PROXY_STATE"
  python3 "$SRCDIR/tests/integration/hold-proxy.py" "$HEAD_URL" "$1" "$PROXY_STATE" &
  PROXY_PID=$!
  cleanup_hooks+=("kill -9 $PROXY_PID 2>/dev/null")
  PROXY_URL=http://127.0.0.1:$(port_from_file "$PROXY_STATE/port" "$PROXY_PID")
}
# nar_requests URL: nar requests the cairn publish at URL answered (/metrics)
nar_requests() {
  curl -sf "$1/metrics" |
    awk '$1 ~ /^cairn_http_requests_total\{route="nar"/ { n += $2 } END { print n + 0 }'
}

# 1. the real Nix through the mirror
proxy_start 5
mirror_start m --upstream "$PROXY_URL" --upstream "$REPLICA_URL" --cache "$TMP/mc" \
  --trusted-key "$TMP/k.pub" --connect-timeout 500ms --health-interval 300ms --max-backoff 1s
MURL=http://127.0.0.1:$MIRROR_PORT
replica_before=$(nar_requests "$REPLICA_URL")
dst=$TMP/dst
timeout 300 nix copy --quiet --from "$MURL" --to "$(pstore_dst_uri "$dst")" \
  --option trusted-public-keys "$(cat "$TMP/k.pub")" "$small" "$big" \
  > "$TMP/copy.out" 2> "$TMP/copy.err" &
copy=$!
check "nix copy is held in the middle of a nar from the head (after 5 whole ones)" \
  wait_file "$PROXY_STATE/held" 60
check "  while nix copy still runs" kill -0 "$copy"
head_nars=$(grep -c "^GET /nar/" "$PROXY_STATE/log")
kill -9 "$HEAD_PID" "$PROXY_PID"
wait "$HEAD_PID" "$PROXY_PID" 2> /dev/null || true
echo "  $head_nars nar requests went to the head (held ones included) before it was killed"
if wait "$copy"; then
  ok "nix copy completes after the head is killed"
else
  not_ok "nix copy completes after the head is killed"
  sed 's/^/  | /' "$TMP/copy.err" | tail -20
  sed 's/^/  m| /' "$MIRROR_LOG" | tail -20
fi
replica_after=$(nar_requests "$REPLICA_URL")
check "  the rest came from the replica ($((replica_after - replica_before)) nar requests)" \
  [ "$replica_after" -gt "$replica_before" ]
DST=$(pstore_dst_uri "$dst")
bad=0
for p in "${closure[@]}"; do
  nix-store --store "$DST" --verify-path "$p" 2> /dev/null || { bad=$((bad + 1)); echo "  $p does not verify"; }
done
check "every path of the closure (${#closure[@]}) is valid and verifies in the destination" [ "$bad" -eq 0 ]
mirror_stop

# 2. cairn fetch --from HEAD --from REPLICA, the head killed mid-transfer.
# fetch asks for the bytes in --from order (the head first); a first run
# fills its narinfo cache with both servers' answers and tells how many
# nars the proxy is to pass whole in the second.
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "the head starts again"; finish; exit 1; }
HEAD_PID=$PUBLISH_PID HEAD_URL=$PUBLISH_URL
proxy_start 1000000
fetch_args=(--from "$PROXY_URL" --from "$REPLICA_URL" --trusted-key "$TMP/k.pub"
  --store-dir "$NIX_STORE_DIR" --closure --cache-db "$TMP/narinfo-cache.sqlite" --jobs 4
  --first-byte-timeout 5s --stall-timeout 60s)
"$CAIRN" fetch "${fetch_args[@]}" --nar-dir "$TMP/nars0" "$small" "$big" > /dev/null 2>&1 ||
  not_ok "a first cairn fetch, both up"
echo $(($(grep -c "^GET /nar/" "$PROXY_STATE/log") + 3)) > "$PROXY_STATE/pass"
"$CAIRN" fetch "${fetch_args[@]}" --nar-dir "$TMP/nars" "$small" "$big" \
  > "$TMP/fetch.out" 2> "$TMP/fetch.err" &
fetch=$!
check "cairn fetch is held in the middle of a nar from the head (after 3 whole ones)" \
  wait_file "$PROXY_STATE/held" 60
check "  while cairn fetch still runs" kill -0 "$fetch"
kill -9 "$HEAD_PID" "$PROXY_PID"
wait "$HEAD_PID" "$PROXY_PID" 2> /dev/null || true
if timeout 120 tail --pid="$fetch" -f /dev/null && wait "$fetch"; then
  ok "cairn fetch completes after the head is killed"
else
  not_ok "cairn fetch completes after the head is killed"
  sed 's/^/  | /' "$TMP/fetch.out" "$TMP/fetch.err" | tail -20
fi
check "  the rest from the replica" grep -q "from $REPLICA_URL" "$TMP/fetch.err"
bad=0
for p in "${closure[@]}"; do
  f=$TMP/nars/$(basename "$p").nar
  [ -e "$f" ] && [ "$(sha256sum < "$f" | cut -d' ' -f1)" = "$(nar_sha256 "$p")" ] ||
    { bad=$((bad + 1)); echo "  $f missing or wrong"; }
done
check "every nar of the closure (${#closure[@]}) is there, its SHA-256 the store's" [ "$bad" -eq 0 ]
PUBLISH_PID=$REPLICA_PID
publish_stop || true
finish
