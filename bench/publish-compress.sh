#!/usr/bin/env bash
# How fast each compression method serves a fresh item on the fly, as
# cairn publish itself measures it (the figures behind its slow-compression
# warning, docs/cairn-publish.md "Compression speed"): DIR is added to a
# private Nix store, then for each SPEC a fresh `cairn publish
# --compression SPEC` (no cache) serves its nar once and /metrics gives the
# nar bytes and the CPU seconds spent in the compressor.  Prints a Markdown
# table: compressed size, MiB of nar per CPU second, and the wall time of
# the fetch (which a loaded machine stretches; the CPU figure it does not).
#
# usage: bench/publish-compress.sh [-c CAIRN] [-w WORK] [DIR [SPEC...]]
#   DIR    default /usr/lib/python3.11 (about 50 MiB of .py, .pyc and .so
#          on Debian 12: what a package holds)
#   SPEC   default zstd:3 zstd:19 gzip:6 xz:6 xz:9 bzip2:9 lzip:6
#   WORK   scratch directory (default /dev/shm/cairn-bench-compress)
set -euo pipefail
cd "$(dirname "$0")/.."

cairn=build/src/cairn work=/dev/shm/cairn-bench-compress
while getopts c:w:h o; do
  case $o in
    c) cairn=$OPTARG ;;
    w) work=$OPTARG ;;
    *) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
dir=${1:-/usr/lib/python3.11}
[ "$#" -gt 0 ] && shift
specs=("$@")
[ "${#specs[@]}" -gt 0 ] || specs=(zstd:3 zstd:19 gzip:6 xz:6 xz:9 bzip2:9 lzip:6)
for t in nix-store curl python3; do
  command -v "$t" > /dev/null || { echo "error: $t is needed" >&2; exit 1; }
done

rm -rf "$work"
mkdir -p "$work"
export NIX_CONFIG="build-users-group =
substituters =
"
path=$(nix-store --store "local?root=$work/root" --add "$dir")
pid=
trap '[ -z "$pid" ] || kill "$pid" 2> /dev/null; rm -rf "$work"' EXIT

hp=$(basename "$path" | cut -c1-32)
narsize=0
printf '| method | compressed | MiB of nar per CPU s | fetch wall s |\n|---|---:|---:|---:|\n'
for spec in "${specs[@]}"; do
  m=${spec%%:*}
  rm -f "$work/port"
  "$cairn" publish --store "$work/root/nix/store" --compression "$spec" \
    --listen 127.0.0.1:0 --port-file "$work/port" --slow-compression-rate 0 \
    2> "$work/log" &
  pid=$!
  for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
  url=http://127.0.0.1:$(cat "$work/port")
  ni=$(curl -fsS "$url/$hp.narinfo")
  narsize=$(sed -n 's/^NarSize: //p' <<< "$ni")
  t0=$(date +%s.%N)
  size=$(curl -fsS "$url/$(sed -n 's/^URL: //p' <<< "$ni")" | wc -c)
  t1=$(date +%s.%N)
  metrics=$(curl -fsS "$url/metrics")
  kill "$pid"
  wait "$pid" 2> /dev/null || true
  pid=
  in=$(sed -n "s/^cairn_publish_compress_bytes_total{method=\"$m\"} //p" <<< "$metrics")
  cpu=$(sed -n "s/^cairn_publish_compress_seconds_total{method=\"$m\"} //p" <<< "$metrics")
  python3 -c "
import sys
spec, size, narsize, nin, cpu, wall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
print('| %s | %.1f%% | %.1f | %.2f |' % (spec, 100.0 * size / narsize, nin / 2**20 / cpu, wall))
" "$spec" "$size" "$narsize" "$in" "$cpu" "$(echo "$t1 - $t0" | bc)"
done
echo
echo "nar: $(basename "$path"), $(python3 -c "print('%.1f' % ($narsize / 2**20))") MiB; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
