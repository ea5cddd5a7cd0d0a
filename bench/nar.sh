#!/usr/bin/env bash
# NAR dump, restore and hash of one large tree: cairn against the real Nix,
# in one run, repetitions alternating between the two so that a slow patch
# of the machine hits both.  Prints a Markdown table of medians and the
# ratio cairn/nix, for wall-clock and CPU time, in milliseconds; the raw
# times go to WORK/times.tsv (operation, program, run, wall, CPU).
#
# usage: bench/nar.sh [-n RUNS] [-s SRC] [-w WORK] [-c CAIRN] [-H]
#   RUNS   repetitions of each command (default 5)
#   SRC    tree to copy and benchmark (default /usr/share: ~0.9 GiB, ~65k entries here)
#   WORK   scratch directory (default /dev/shm/cairn-bench-nar, a tmpfs: about
#          4x the size of SRC in RAM); the copy of SRC is kept there between
#          runs, everything else is replaced.  On disk (ext4 with `discard`
#          here) restores took 3 s to 44 s for the same work, as the removal
#          of the previous run's files was still being flushed: tmpfs measures
#          the programs, not the disk.
#   CAIRN  the cairn binary (default build/src/cairn)
#   -H     also run each pair under hyperfine (not alternating), with
#          --export-json WORK/hyperfine-OP.json
# Both programs read the same copy of SRC, made beforehand (so it is in RAM);
# restores read the same NAR (Nix's) and go to a fresh directory each time,
# removed and synced outside the timed part.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5 src=/usr/share work=/dev/shm/cairn-bench-nar cairn=build/src/cairn hf=false
while getopts n:s:w:c:Hh o; do
  case $o in
    n) runs=$OPTARG ;;
    s) src=$OPTARG ;;
    w) work=$OPTARG ;;
    c) cairn=$OPTARG ;;
    H) hf=true ;;
    *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
cairn=$(realpath "$cairn")
export NIX_CONFIG="experimental-features = nix-command
substituters =
"
export XDG_CACHE_HOME=$work/xdg-cache
command -v nix-store > /dev/null || { echo "bench: nix-store not found (apt-get install nix-bin)" >&2; exit 1; }

tree=$work/tree
mkdir -p "$work"
if [ ! -e "$work/tree.done" ] || [ "$(cat "$work/tree.done")" != "$src" ]; then
  echo "copying $src to $tree..." >&2
  rm -rf "$tree" "$work/tree.done"
  cp -a "$src" "$tree"
  echo "$src" > "$work/tree.done"
fi
nix-store --dump "$tree" > "$work/nix.nar"     # also warms the page cache
nar_size=$(stat -c %s "$work/nix.nar")
entries=$(find "$tree" | wc -l)
files=$(find "$tree" -type f | wc -l)

cairn_ok=true
if ! "$cairn" nar dump "$tree" 2> "$work/cairn.err" | cmp -s - "$work/nix.nar"; then
  echo "bench: cairn nar dump does not work or differs from nix-store --dump; timing Nix only" >&2
  head -n 3 "$work/cairn.err" >&2
  cairn_ok=false
fi

# time_ms CMD: run CMD (a bash string) once, print its wall-clock and CPU
# (user + system, children included) times in ms; a failing command prints
# "fail".  CPU time is the steadier figure on a machine shared with other jobs.
time_ms() {
  local out rc
  out=$( { TIMEFORMAT='%3R %3U %3S'; time bash -c "$1" > /dev/null 2> "$work/last.err"; } 2>&1 ) &&
    rc=0 || rc=$?
  if [ "$rc" -eq 0 ]; then
    awk '{printf "%d\t%d\n", $1 * 1000, ($2 + $3) * 1000}' <<< "$out"
  else
    echo fail
  fi
}

median() { sort -n | awk '{v[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR+1)/2]; else print int((v[NR/2]+v[NR/2+1])/2)}'; }

# op NAME NIXCMD CAIRNCMD [PREP]: RUNS alternating timings, PREP (untimed) before each
ops=()
op() {
  local name=$1 nixcmd=$2 cairncmd=$3 prep=${4:-} i t who cmd
  ops+=("$name")
  printf '%s\tnix\t%s\n%s\tcairn\t%s\n' "$name" "$nixcmd" "$name" "$cairncmd" >> "$work/commands.tsv"
  # One untimed run each first: the first restore into a tmpfs was 3x
  # slower than the next ones (allocating inodes and dentries).
  for who in nix cairn; do
    [ "$who" = cairn ] && ! $cairn_ok && continue
    if [ "$who" = nix ]; then cmd=$nixcmd; else cmd=$cairncmd; fi
    [ -z "$prep" ] || bash -c "$prep"
    time_ms "$cmd" > /dev/null
  done
  for i in $(seq "$runs"); do
    for who in nix cairn; do
      [ "$who" = cairn ] && ! $cairn_ok && continue
      if [ "$who" = nix ]; then cmd=$nixcmd; else cmd=$cairncmd; fi
      [ -z "$prep" ] || bash -c "$prep"
      sync
      t=$(time_ms "$cmd")
      printf '%s\t%s\t%s\t%s\n' "$name" "$who" "$i" "$t" >> "$work/times.tsv"
      echo "  $name $who #$i: $t ms (wall, cpu)" >&2
    done
  done
  if $hf; then
    local args=(--runs "$runs" --style basic --export-json "$work/hyperfine-${name//[^a-z]/_}.json")
    [ -z "$prep" ] || args+=(--prepare "$prep")
    args+=(-n nix "$nixcmd")
    ! $cairn_ok || args+=(-n cairn "$cairncmd")
    hyperfine "${args[@]}" >&2
  fi
}

: > "$work/times.tsv"
: > "$work/commands.tsv"
q() { printf '%q' "$1"; }
T=$(q "$tree") W=$(q "$work") C=$(q "$cairn")
op "dump > /dev/null" "nix-store --dump $T > /dev/null" "$C nar dump $T > /dev/null"
op "dump > file" "nix-store --dump $T > $W/out.nar" "$C nar dump $T > $W/out.nar" "rm -f $W/out.nar"
op "restore" "nix-store --restore $W/restored < $W/nix.nar" "$C nar restore $W/restored < $W/nix.nar" \
  "chmod -R u+w $W/restored 2>/dev/null; rm -rf $W/restored"
op "hash" "nix hash path --type sha256 --base32 $T" "$C nar hash $T"
rm -rf "$work/restored" "$work/out.nar"

echo
echo "Tree: copy of $src, $entries entries ($files regular files), NAR $((nar_size / 1048576)) MiB;" \
  "$runs runs each, alternating; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))."
echo "$(nix --version); $("$cairn" --version 2>/dev/null | head -n 1) ($cairn); $(date -u +%F)."
echo
echo "| operation | nix wall | cairn wall | cairn/nix | nix CPU | cairn CPU | cairn/nix |"
echo "|---|---:|---:|---:|---:|---:|---:|"
# med OP WHO COLUMN: median of that column over the successful runs
med() {
  awk -F'\t' -v o="$1" -v w="$2" -v c="$3" '$1 == o && $2 == w && $4 != "fail" {print $c}' \
    "$work/times.tsv" | median
}
ratio() {
  if [ "$1" != n/a ] && [ "$2" != n/a ] && [ "$1" -gt 0 ]; then
    awk -v n="$1" -v c="$2" 'BEGIN {printf "%.2f", c / n}'
  else
    echo n/a
  fi
}
for name in "${ops[@]}"; do
  nw=$(med "$name" nix 4) cw=$(med "$name" cairn 4) nc=$(med "$name" nix 5) cc=$(med "$name" cairn 5)
  echo "| $name | $nw | $cw | $(ratio "$nw" "$cw") | $nc | $cc | $(ratio "$nc" "$cc") |"
done
if grep -q $'\tfail$' "$work/times.tsv"; then
  echo
  echo "Some runs failed (not counted):"
  grep $'\tfail$' "$work/times.tsv" | cut -f1,2 | sort | uniq -c
fi
