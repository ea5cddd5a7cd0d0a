#!/usr/bin/env bash
# bench/ranges.sh - how many range requests in flight per source help a
# download from several mirrors at once (issue 17, point 4): the setting
# of bench/far-multi.sh (two mirrors of one binary cache, each behind its
# own emulated link, RATE bit/s each way shared by all its connections
# (linkem --shared 1: more connections must not make a link faster),
# 2*DELAY_MS of round trip; one
# item of MB megabytes of random bytes, uncompressed), fetched from both
# with `--multi-per-source` 1, 2 and 4, in turn within each of RUNS rounds
# (so that the machine's load falls on all three alike), a fresh store
# each time.  Prints each one's median wall time and throughput.  Needs
# root (Nix without a daemon), nix-bin, nginx, bc.
#
#   bench/ranges.sh BUILDDIR [RUNS [MB [RATE [DELAY_MS]]]]
#   (defaults: 3 runs, 30 MB, 10M, 50)
set -euo pipefail
. "$(dirname "$0")/far-lib.sh"
BUILD=$(realpath "${1:?usage: bench/ranges.sh BUILDDIR [RUNS [MB [RATE [DELAY_MS]]]]}")
RUNS=${2:-3}
MB=${3:-30}
RATE=${4:-10M}
DELAY=${5:-50}
CAIRN=$BUILD/src/cairn
LINKEM=$BUILD/tests/integration/linkem
[ -x "$CAIRN" ] && [ -x "$LINKEM" ] || { echo "build first: no $CAIRN or $LINKEM" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-ranges.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  chmod -R u+w "$TMP" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

far_nix_env "$TMP" "narinfo-cache-negative-ttl = 0"
TOP=$(far_big_item "$TMP" "$MB")
narbytes=$(far_file_cache "$TMP" "$TOP")

far_nginx "$TMP" "root $TMP/www;"
port=$far_port
far_link a "$port" --rate "$RATE" --delay-ms "$DELAY" --shared 1
A=http://127.0.0.1:$far_port/c
far_link b "$port" --rate "$RATE" --delay-ms "$DELAY" --shared 1
B=http://127.0.0.1:$far_port/c

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# one K: a fetch from both with K requests per source; wall seconds
one() {
  rm -rf "$TMP/dst"
  /usr/bin/time -f "%e" -o "$TMP/time" "$CAIRN" fetch --no-cache --quiet --multi-per-source "$1" \
    --from "$A" --from "$B" --trusted-key "$TMP/k.pub" --store "$TMP/dst" "$TOP" \
    >/dev/null 2>"$TMP/err" || { echo "K=$1 failed:" >&2; cat "$TMP/err" >&2; exit 1; }
  cat "$TMP/time"
}
for i in $(seq "$RUNS"); do
  for k in 1 2 4; do echo "$k $(one "$k")"; done
done >"$TMP/times"
mbps() { echo "$narbytes * 8 / $1 / 1000000" | bc -l | cut -c1-5; }
echo "two mirrors, each $RATE bit/s, $((2 * DELAY)) ms RTT; one item, NAR $narbytes bytes; median of $RUNS"
echo "| requests per source | wall s (runs) | Mbit/s |"
echo "|---:|---:|---:|"
for k in 1 2 4; do
  runs=$(awk -v k="$k" '$1 == k {print $2}' "$TMP/times" | tr '\n' ' ')
  t=$(awk -v k="$k" '$1 == k {print $2}' "$TMP/times" | median)
  echo "| $k | $t (${runs% }) | $(mbps "$t") |"
done
