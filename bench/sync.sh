#!/usr/bin/env bash
# bench/sync.sh - cairn sync (issue 14), side by side in one run:
#
#   bench/sync.sh CAIRN [N_PATHS [KIB_PER_PATH [LAG_RUNS [SNAP_COUNT]]]]
#
# 1. Initial replication of a closure of N_PATHS (default 300) built with
#    nix-build (as bench/fetch.sh builds it: KIB_PER_PATH, default 1024,
#    KiB of base64 text each), copied with `nix copy --to file://HEAD`
#    (zstd, signed) and served by `cairn publish --binary-cache HEAD
#    --feed`:  `nix copy --from http://HEAD --to file://DIR` against
#    `cairn sync --from http://HEAD --to DIR`, and `rsync -a HEAD/ DIR/`
#    (no verification) when rsync is installed.
# 2. Follow lag: `cairn publish --store` over the build store with
#    --feed, a `cairn sync --follow` replica of it; LAG_RUNS (default 10)
#    times, nix-build a new small item and time from nix-build's return to
#    its narinfo in the replica (polled every 10 ms).  Median and max.
#    (bench/feed-snapshot.c times the snapshot of 1,000,000 narinfos
#    without a million files.)
# 3. Snapshot: SNAP_COUNT (default 0: skipped) synthetic narinfos
#    (bench/gen-narinfos.py) served by `cairn publish --binary-cache
#    --feed`; once the feed holds them, the snapshot fetched (curl) and
#    checked as it streams by `cairn feed verify`: wall time and max RSS.
#
# Needs root (Nix without a daemon), nix-bin, curl, python3.  Prints
# Markdown for RESULTS.md.
set -euo pipefail
. "$(dirname "$0")/closure-lib.sh"
CAIRN=$(realpath "${1:?usage: bench/sync.sh CAIRN [N [KIB [LAG_RUNS [SNAP_COUNT]]]]}")
N=${2:-300}
KIB=${3:-1024}
LAG_RUNS=${4:-10}
SNAP=${5:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-sync.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  chmod -R u+w "$TMP" 2> /dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
narinfo-cache-negative-ttl = 0
narinfo-cache-positive-ttl = 0
experimental-features = nix-command
sandbox-paths = /bin /usr /lib /lib64
"
export XDG_CACHE_HOME=$TMP/xdg/cache XDG_CONFIG_HOME=$TMP/xdg/config \
  XDG_DATA_HOME=$TMP/xdg/data XDG_STATE_HOME=$TMP/xdg/state

SRC="local?root=$TMP/src"
TOP=$(bench_closure "$TMP" "$N" "$KIB" 2> /dev/null)
npaths=$(nix path-info --store "$SRC" -r "$TOP" | wc -l)
narbytes=$(nix path-info --store "$SRC" -r --json "$TOP" |
  python3 -c 'import json, sys; print(sum(p["narSize"] for p in json.load(sys.stdin)))')
nix key generate-secret --key-name bench-1 > "$TMP/k.sec"
nix key convert-secret-to-public < "$TMP/k.sec" > "$TMP/k.pub"
echo "nix copy --to file:// (zstd)..." >&2
nix copy --quiet --from "$SRC" --to "file://$TMP/head?compression=zstd&secret-key=$TMP/k.sec" "$TOP" 2> /dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# serve PORTVAR ARG...: cairn publish on a free port, waited for
serve() {
  local p
  p=$(port)
  "$CAIRN" publish --listen "127.0.0.1:$p" "$@" > "$TMP/publish-$p.log" 2>&1 &
  pids+=($!)
  for ((i = 0; i < 300; i++)); do
    (exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null && break
    sleep 0.05
  done
  echo "$p"
}
# feed_head URL: the feed's head
feed_head() { curl -sf "$1/feed/events?since=0&max=1" | sed -n 's/^head //p'; }
wait_head() { # URL N
  for ((i = 0; i < 6000; i++)); do
    [ "$(feed_head "$1" || echo 0)" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
timed() { # LABEL CMD...: "wall user sys maxrss"
  local label=$1
  shift
  /usr/bin/time -f "%e %U %S %M" -o "$TMP/time" "$@" > /dev/null 2> "$TMP/err" ||
    { echo "$label failed:" >&2; cat "$TMP/err" >&2; return 1; }
  cat "$TMP/time"
}
row() { # WHO wall user sys maxrss
  printf '| %s | %s | %s | %s | %.2f | %.0f |\n' "$1" "$2" "$3" "$4" "$(echo "$3 + $4" | bc)" "$(echo "$5 / 1024" | bc)"
}

hp=$(serve --binary-cache "$TMP/head" --key "$TMP/k.sec" --feed "$TMP/feed-head")
URL=http://127.0.0.1:$hp
wait_head "$URL" "$npaths"

echo "### Initial replication"
echo
echo "| replica by | wall s | user s | sys s | CPU s | max RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
sync
read -r w u s m < <(timed nix nix copy --from "$URL" --to "file://$TMP/r-nix" \
  --option trusted-public-keys "$(cat "$TMP/k.pub")" "$TOP")
row "nix copy --from http:// --to file://" "$w" "$u" "$s" "$m"
nixw=$w
# file:// stores compress with xz by default: the same with zstd kept, so
# that recompression is not all the difference
sync
read -r w u s m < <(timed nix nix copy --from "$URL" --to "file://$TMP/r-nix-zstd?compression=zstd" \
  --option trusted-public-keys "$(cat "$TMP/k.pub")" "$TOP")
row "nix copy --from http:// --to 'file://…?compression=zstd'" "$w" "$u" "$s" "$m"
nixzw=$w
sync
read -r w u s m < <(timed cairn "$CAIRN" sync --from "$URL" --to "$TMP/r-cairn" --trusted-key "$TMP/k.pub")
row "cairn sync" "$w" "$u" "$s" "$m"
cairnw=$w
got=$(find "$TMP/r-cairn" -maxdepth 1 -name '*.narinfo' | wc -l)
[ "$got" = "$npaths" ] || { echo "cairn sync copied $got of $npaths narinfos" >&2; exit 1; }
for f in "$TMP"/head/*.narinfo; do
  cmp -s "$f" "$TMP/r-cairn/${f##*/}" || { echo "${f##*/} differs" >&2; exit 1; }
done
rsyncw=
if command -v rsync > /dev/null; then
  sync
  read -r w u s m < <(timed rsync rsync -a "$TMP/head/" "$TMP/r-rsync/")
  row "rsync -a (no verification)" "$w" "$u" "$s" "$m"
  rsyncw=$w
fi
echo
echo "cairn sync / nix copy: $(printf '%.3f' "$(echo "scale=4; $cairnw / $nixw" | bc)") (xz, Nix's default for file://), $(printf '%.3f' "$(echo "scale=4; $cairnw / $nixzw" | bc)") (zstd)${rsyncw:+; cairn sync / rsync: $(printf '%.2f' "$(echo "scale=3; $cairnw / $rsyncw" | bc)")}" \
  "(rsync $(command -v rsync > /dev/null && echo ran || echo "is not installed here"))"
echo
echo "$npaths paths, $((narbytes / 1048576)) MiB of NAR, $(du -sm "$TMP/head" | cut -f1) MiB of cache (zstd); every narinfo byte-identical to the head's"
echo

if [ "$LAG_RUNS" -gt 0 ]; then
  sp=$(serve --store "$TMP/src/nix/store" --key "$TMP/k.sec" --feed "$TMP/feed-store")
  SURL=http://127.0.0.1:$sp
  n_valid=$(nix path-info --store "$SRC" --all | wc -l)
  wait_head "$SURL" "$n_valid"
  "$CAIRN" sync --from "$SURL" --to "$TMP/r-follow" --trusted-key "$TMP/k.pub" --follow \
    > /dev/null 2> "$TMP/follow.err" &
  pids+=($!)
  top_hp=$(basename "$TOP" | cut -c1-32)
  for ((i = 0; i < 6000; i++)); do [ -e "$TMP/r-follow/$top_hp.narinfo" ] && break; sleep 0.1; done
  lags=()
  for ((r = 1; r <= LAG_RUNS; r++)); do
    cat > "$TMP/new-$r.nix" << EOF
derivation { name = "lag-$r-$RANDOM"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo $r > \$out" ]; }
EOF
    out=$(nix-build --store "$SRC" --no-out-link --quiet "$TMP/new-$r.nix" 2> /dev/null)
    t0=$(date +%s.%N)
    f="$TMP/r-follow/$(basename "$out" | cut -c1-32).narinfo"
    for ((i = 0; i < 3000; i++)); do [ -e "$f" ] && break; sleep 0.01; done
    t1=$(date +%s.%N)
    [ -e "$f" ] || { echo "run $r: never arrived" >&2; exit 1; }
    lags+=("$(printf '%.3f' "$(echo "$t1 - $t0" | bc)")")
  done
  sorted=$(printf '%s\n' "${lags[@]}" | sort -n)
  med=$(echo "$sorted" | sed -n "$(((LAG_RUNS + 1) / 2))p")
  max=$(echo "$sorted" | tail -n 1)
  echo "### Follow lag"
  echo
  echo "From nix-build's return to the narinfo in a \`cairn sync --follow\` replica of \`cairn publish --store --feed\`, $LAG_RUNS runs: median ${med} s, max ${max} s (all: $(printf '%s ' "${lags[@]}"))"
  echo
fi

if [ "$SNAP" -gt 0 ]; then
  echo "generating $SNAP narinfos..." >&2
  python3 "$HERE/gen-narinfos.py" "$TMP/synth" "$SNAP" > /dev/null
  np=$(serve --binary-cache "$TMP/synth" --key "$TMP/k.sec" --feed "$TMP/feed-synth")
  NURL=http://127.0.0.1:$np
  t0=$(date +%s.%N)
  wait_head "$NURL" "$SNAP"
  t1=$(date +%s.%N)
  read -r w u s m < <(timed curl curl -sf "$NURL/feed/snapshot" -o "$TMP/snap.zst")
  read -r vw vu vs vm < <(timed verify "$CAIRN" feed verify --trusted-key "$TMP/k.pub" "$TMP/snap.zst")
  echo "### Snapshot of $SNAP synthetic narinfos"
  echo
  echo "| step | wall s | max RSS MiB |"
  echo "|---|---:|---:|"
  echo "| the feed takes in the directory (first listing) | $(printf '%.2f' "$(echo "$t1 - $t0" | bc)") | |"
  echo "| GET /feed/snapshot ($(du -m "$TMP/snap.zst" | cut -f1) MiB zstd) | $w | $(echo "$m / 1024" | bc) (curl) |"
  echo "| cairn feed verify, streaming (every narinfo parsed and its signature checked) | $vw | $(echo "$vm / 1024" | bc) |"
  echo
fi
echo "$(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%d)"
