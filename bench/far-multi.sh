#!/usr/bin/env bash
# bench/far-multi.sh - part (c) of issue 17's far-from-the-head benchmark:
# two mirrors of one binary cache, each behind its own emulated link
# (tests/integration/linkem: RATE bit/s each way and DELAY_MS one way, so
# 2*DELAY_MS of round trip), and one item of MB megabytes of random bytes
# (an uncompressed NAR, so that the link, not xz, is the bottleneck).
# Times, RUNS times each with a fresh store:
#   cairn fetch --from A              (mirror A alone)
#   cairn fetch --from B              (mirror B alone)
#   cairn fetch --from A --from B     (both: ranges from each at once)
# and prints the medians, the throughput (NAR bytes / wall) and the
# both-vs-the-better-single ratio (issue 17's goal: >= 1.8).  Needs root
# (Nix without a daemon), nix-bin, nginx, bc.
#
#   bench/far-multi.sh BUILDDIR [RUNS [MB [RATE [DELAY_MS]]]]
#   (defaults: 3 runs, 50 MB, 10M, 50)
set -euo pipefail
. "$(dirname "$0")/far-lib.sh"
BUILD=$(realpath "${1:?usage: bench/far-multi.sh BUILDDIR [RUNS [MB [RATE [DELAY_MS]]]]}")
RUNS=${2:-3}
MB=${3:-50}
RATE=${4:-10M}
DELAY=${5:-50}
CAIRN=$BUILD/src/cairn
LINKEM=$BUILD/tests/integration/linkem
[ -x "$CAIRN" ] && [ -x "$LINKEM" ] || { echo "build first: no $CAIRN or $LINKEM" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-far.XXXXXX")
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
far_link a "$port" --rate "$RATE" --delay-ms "$DELAY"
A=http://127.0.0.1:$far_port/c
far_link b "$port" --rate "$RATE" --delay-ms "$DELAY"
B=http://127.0.0.1:$far_port/c

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# fetch LABEL URL...: RUNS fetches into a fresh store, the median wall seconds
fetch() {
  local label=$1 i u from=(); shift
  for u in "$@"; do from+=(--from "$u"); done
  for i in $(seq "$RUNS"); do
    rm -rf "$TMP/dst"
    /usr/bin/time -f "%e" -o "$TMP/time" "$CAIRN" fetch --no-cache --quiet "${from[@]}" \
      --trusted-key "$TMP/k.pub" --store "$TMP/dst" "$TOP" >/dev/null 2>"$TMP/err" ||
      { echo "$label failed:" >&2; cat "$TMP/err" >&2; exit 1; }
    cat "$TMP/time"
  done | median
}
ta=$(fetch a "$A"); tb=$(fetch b "$B"); tab=$(fetch both "$A" "$B")
best=$(echo "if ($ta < $tb) $ta else $tb" | bc -l)
mbps() { echo "$narbytes * 8 / $1 / 1000000" | bc -l | cut -c1-5; }
echo "two mirrors, each $RATE bit/s, $((2 * DELAY)) ms RTT; one item, NAR $narbytes bytes; median of $RUNS"
echo "| cairn fetch from | wall s | Mbit/s |"
echo "|---|---:|---:|"
echo "| mirror A alone | $ta | $(mbps "$ta") |"
echo "| mirror B alone | $tb | $(mbps "$tb") |"
echo "| A and B at once | $tab | $(mbps "$tab") |"
echo "both / better single (throughput): $(echo "$best / $tab" | bc -l | cut -c1-4)"
