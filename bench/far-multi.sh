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
far_two_mirrors far-multi 50 "$@"

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
