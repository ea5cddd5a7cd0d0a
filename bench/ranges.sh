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
far_two_mirrors ranges 30 "$@"

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
