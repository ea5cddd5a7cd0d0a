#!/usr/bin/env bash
# Slow compression is said (issue 12.10): a method that compresses fewer nar
# bytes per CPU second than --slow-compression-rate gets one warning line
# on stderr, however many streams and bakes use it, and /metrics shows each
# method's bytes, CPU seconds and whether it is slow.  The rate is set far
# above any method here, so that the outcome does not depend on the
# machine; zstd:3 under the default rate is not slow.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 bzip2 zstd
publish_require
nix_lib_init

# an 8 MiB item that compresses, but not trivially (base64 of random bytes)
pstore_init "$TMP/src"
head -c 6500000 /dev/urandom | base64 -w 76 > "$TMP/text"
top=$(pstore_build "$TMP/src" 1 slow $((8 << 20)) 1 "$TMP/text")
h=$(basename "$top" | cut -c1-32)
field() { sed -n "s/^$1: //p"; }
metric() { curl -fsS "$PUBLISH_URL/metrics" | sed -n "s/^$1 //p"; }

# fetch_nar DECOMPRESSOR: the nar the narinfo names, decompressed; its hash
fetch_nar() {
  local ni url
  ni=$(curl -fsS "$PUBLISH_URL/$h.narinfo")
  url=$(field URL <<< "$ni")
  curl -fsS "$PUBLISH_URL/$url" | $1 > "$TMP/got.nar"
  test "$("$CAIRN" hash file "$TMP/got.nar")" = "$(field NarHash <<< "$ni")"
}

# --- bzip2:9 on the fly, every method slow: one line after two streams --------
echo "slow-compression-rate 100G" > "$TMP/publish.conf"
publish_start "${PSTORE_ARGS[@]}" --compression bzip2:9 --config "$TMP/publish.conf"
check "first stream: the nar" fetch_nar "bzip2 -dc"
check "second stream: the nar" fetch_nar "bzip2 -dc"
publish_stop
sed 's/^/    | /' "$PUBLISH_LOG"
n=$(grep -c 'slow compression' "$PUBLISH_LOG" || true)
check "one slow-compression line for two streams (got $n)" test "$n" = 1
check "  ... naming the method and level, the rate, and what to do" \
  grep -qE 'warning: slow compression: bzip2:9 compresses [0-9.]+ MiB/s of nar per CPU second .*below 102400.0 MiB/s .*serve zstd on the fly.*keep bzip2 for bakes' "$PUBLISH_LOG"

publish_start "${PSTORE_ARGS[@]}" --compression bzip2:9 --slow-compression-rate 100G
fetch_nar "bzip2 -dc"
fetch_nar "bzip2 -dc"
narsize=$(curl -fsS "$PUBLISH_URL/$h.narinfo" | field NarSize)
bytes=$(metric 'cairn_publish_compress_bytes_total{method="bzip2"}')
secs=$(metric 'cairn_publish_compress_seconds_total{method="bzip2"}')
check "metrics: bzip2 compressed both streams' nar bytes ($bytes = 2 x $narsize)" \
  test "$bytes" = $((2 * narsize))
check "metrics: bzip2 took CPU seconds ($secs)" python3 -c "import sys; sys.exit(not float('$secs') > 0)"
check "metrics: bzip2 is slow" test "$(metric 'cairn_publish_compress_slow{method="bzip2"}')" = 1
check "metrics: xz was not used, so not judged" \
  test "$(metric 'cairn_publish_compress_bytes_total{method="xz"}') $(metric 'cairn_publish_compress_slow{method="xz"}')" = "0 0"
publish_stop

# --- with a cache the bake compresses (once); its readers follow it ------------
publish_start "${PSTORE_ARGS[@]}" --compression bzip2:9 --slow-compression-rate 100G \
  --cache "$TMP/cache"
check "with a cache: the nar, following the bake" fetch_nar "bzip2 -dc"
for _ in $(seq 300); do
  [ "$(metric cairn_publish_bakes_total)" = 1 ] && break
  sleep 0.1
done
check "  ... baked once" test "$(metric cairn_publish_bakes_total)" = 1
check "  ... the bake counted: one nar's bytes ($(metric 'cairn_publish_compress_bytes_total{method="bzip2"}'))" \
  test "$(metric 'cairn_publish_compress_bytes_total{method="bzip2"}')" = "$narsize"
publish_stop
n=$(grep -c 'slow compression: bzip2:9' "$PUBLISH_LOG" || true)
check "  ... and said once ($n)" test "$n" = 1

# --- zstd:3 under the default rate: not slow, nothing said ---------------------
publish_start "${PSTORE_ARGS[@]}" --compression zstd:3
check "zstd:3: the nar" fetch_nar "zstd -dc"
check "zstd:3: not slow at the default rate" \
  test "$(metric 'cairn_publish_compress_slow{method="zstd"}')" = 0
check "zstd:3: its bytes counted" \
  test "$(metric 'cairn_publish_compress_bytes_total{method="zstd"}')" = "$narsize"
publish_stop
check "zstd:3: no slow-compression line" bash -c '! grep -q "slow compression" "$0"' "$PUBLISH_LOG"

# --- 0 turns the warning off ---------------------------------------------------
publish_start "${PSTORE_ARGS[@]}" --compression bzip2:9 --slow-compression-rate 0
fetch_nar "bzip2 -dc"
check "--slow-compression-rate 0: never slow" \
  test "$(metric 'cairn_publish_compress_slow{method="bzip2"}')" = 0
publish_stop
check "  ... nothing said" bash -c '! grep -q "slow compression" "$0"' "$PUBLISH_LOG"
check "--slow-compression-rate takes a rate" \
  bash -c '"$0" publish --slow-compression-rate fast 2>&1 | grep -q "not a rate"; [ "${PIPESTATUS[0]}" -eq 2 ]' "$CAIRN"
finish
