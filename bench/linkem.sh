#!/usr/bin/env bash
# bench/linkem.sh - measures the link emulator itself (tests/integration/linkem.c):
# what it costs with no limits, and how close a limited link comes to the
# rate and delay it was given.  nginx serves the files; curl downloads them.
#
#   bench/linkem.sh [BUILDDIR [RUNS]]
#
# Prints a Markdown table: for each link, the median of RUNS downloads,
# the time an ideal link would take (one round trip for the handshake, one
# for the request, then size*8/rate) and the ratio measured/ideal; for the
# unlimited link, its throughput against nginx straight.
set -euo pipefail
BUILD=$(realpath "${1:-build}")
RUNS=${2:-5}
LINKEM=$BUILD/tests/integration/linkem
[ -x "$LINKEM" ] || { echo "no $LINKEM: build first" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-linkem.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

mkdir -p "$TMP/www"
head -c 200000000 /dev/urandom >"$TMP/www/f200M"
head -c 10000000 /dev/urandom >"$TMP/www/f10M"
head -c 1000000 /dev/urandom >"$TMP/www/f1M"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/nginx.conf" <<NG
daemon off; master_process off; worker_processes 1;
pid $TMP/nginx.pid; error_log $TMP/error.log;
events { worker_connections 256; }
http { access_log off; sendfile on;
  server { listen 127.0.0.1:$port; root $TMP/www; } }
NG
nginx -c "$TMP/nginx.conf" -p "$TMP" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done

link() { # NAME ARGS...: sets p to the link's port
  "$LINKEM" --to 127.0.0.1:$port --port-file "$TMP/$1.port" "${@:2}" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$TMP/$1.port" ] && break; sleep 0.05; done
  p=$(cat "$TMP/$1.port")
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
times() { # URL: RUNS download times, median
  for _ in $(seq "$RUNS"); do curl -s --max-time 120 -o /dev/null -w '%{time_total}\n' "$1"; done | median
}

echo "| link | file | median s | ideal s | measured/ideal |"
echo "|---|---|---:|---:|---:|"
direct=$(times "http://127.0.0.1:$port/f200M")
link free
free=$(times "http://127.0.0.1:$p/f200M")
echo "| nginx straight | 200 MB | $direct | - | - |"
echo "| linkem, no delay, no limit | 200 MB | $free | $direct | $(echo "$free / $direct" | bc -l | cut -c1-4) |"
for spec in "50 20000000 f10M 10000000" "150 2000000 f1M 1000000" "10 10000000 f10M 10000000"; do
  set -- $spec
  link "l$1" --delay-ms "$1" --rate "$2"
  m=$(times "http://127.0.0.1:$p/$3")
  ideal=$(echo "4 * $1 / 1000 + $4 * 8 / $2" | bc -l)
  printf '| %s ms RTT, %s Mbit/s | %s | %s | %.3f | %.3f |\n' $((2 * $1)) $(($2 / 1000000)) "$3" "$m" "$ideal" \
    "$(echo "$m / $ideal" | bc -l)"
done
