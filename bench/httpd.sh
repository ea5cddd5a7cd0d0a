#!/usr/bin/env bash
# bench/httpd.sh - cairn's http layer (through tests/integration/httpd-test-server)
# against nginx on the same machine, same files, loopback only.
#
#   small:  wrk -t2 -c64 -d${DURATION}s on a 300-byte narinfo-like response
#           (cairn from memory at /small, cairn from a file at /file/small.narinfo,
#           nginx from the same file), cairn with 1 and 2 loops, shared
#           listening socket and SO_REUSEPORT
#   large:  a 256 MiB file: wrk -t2 -c4 (aggregate GB/s) and a single
#           curl -o /dev/null (one connection)
#
# usage: bench/httpd.sh [BUILDDIR]   (default: build).  Needs wrk, nginx, curl;
# installs them with apt-get when missing and allowed (root).  Runs each
# measurement ROUNDS times, alternating servers, and keeps the best (the
# machine is shared; the best run is the least disturbed one).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
SERVER=$BUILD/tests/integration/httpd-test-server
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CAIRN_PORT=${CAIRN_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}

[ -x "$SERVER" ] || { echo "no $SERVER: build first (ninja -C $BUILD)" >&2; exit 1; }
for t in wrk nginx curl; do
  if ! command -v "$t" >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y "$t" >/dev/null; else echo "need $t" >&2; exit 1; fi
  fi
done

W=$(mktemp -d /tmp/cairn-bench-httpd.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
chmod 755 "$W"
mkdir -p "$W/www" "$W/nginx"
# the same 300 bytes cairn serves at /small
"$SERVER" --listen 127.0.0.1:$CAIRN_PORT --dir "$W/www" --threads 1 > "$W/probe.out" 2>&1 &
probe=$!
for _ in $(seq 50); do curl -sf -o "$W/www/small.narinfo" "http://127.0.0.1:$CAIRN_PORT/small" && break; sleep 0.1; done
kill $probe; wait $probe 2>/dev/null || true
[ "$(stat -c %s "$W/www/small.narinfo")" = 300 ]
head -c $((256 * 1024 * 1024)) /dev/urandom > "$W/www/big.bin"
chmod 644 "$W/www/"*

cat > "$W/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  open_file_cache max=1000 inactive=60s;
  default_type application/octet-stream;
  client_body_temp_path $W/nginx/body;
  proxy_temp_path $W/nginx/proxy;
  fastcgi_temp_path $W/nginx/fastcgi;
  uwsgi_temp_path $W/nginx/uwsgi;
  scgi_temp_path $W/nginx/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport;
    root $W/www;
  }
}
EOF

wait_port() {
  for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "server at $1 did not come up" >&2; return 1
}

start_cairn() { # ARGS...
  "$SERVER" --listen 127.0.0.1:$CAIRN_PORT --dir "$W/www" "$@" > "$W/cairn.out" 2>&1 &
  cairn_pid=$!
  pids+=("$cairn_pid")
  wait_port "http://127.0.0.1:$CAIRN_PORT/small"
}
stop_cairn() { kill -TERM "$cairn_pid"; wait "$cairn_pid" 2>/dev/null || true; }

nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_port "http://127.0.0.1:$NGINX_PORT/small.narinfo"

# rps URL [CONNS]: wrk requests/s
rps() {
  wrk -t2 -c"${2:-64}" -d"${DURATION}s" "$1" | awk '/^Requests\/sec:/{print $2}'
}
# gbps URL: wrk aggregate transfer rate on the big file, in GB/s (10^9)
gbps() {
  wrk -t2 -c4 -d"${DURATION}s" "$1" | awk '/^Transfer\/sec:/{
    v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2)
    m = (u=="GB") ? 1073741824 : (u=="MB") ? 1048576 : (u=="KB") ? 1024 : 1
    printf "%.2f\n", n*m/1e9 }'
}
# curl_gbps URL: one connection, one transfer
curl_gbps() {
  curl -s -o /dev/null -w '%{speed_download}' "$1" | awk '{printf "%.2f\n", $1/1e9}'
}
best() { sort -g | tail -1; }

declare -A R
measure() { # KEY COMMAND...
  local key=$1; shift
  R[$key]="${R[$key]:-} $("$@")"
}

for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  for mode in "2 shared:--threads 2" "2 reuseport:--threads 2 --reuseport" "1:--threads 1"; do
    name=${mode%%:*} args=${mode#*:}
    # shellcheck disable=SC2086
    start_cairn $args
    measure "cairn-mem-$name" rps "http://127.0.0.1:$CAIRN_PORT/small"
    if [ "$name" = "2 shared" ]; then
      measure "cairn-file-small" rps "http://127.0.0.1:$CAIRN_PORT/file/small.narinfo"
      measure "cairn-big-wrk" gbps "http://127.0.0.1:$CAIRN_PORT/file/big.bin"
      measure "cairn-big-curl" curl_gbps "http://127.0.0.1:$CAIRN_PORT/file/big.bin"
    fi
    stop_cairn
  done
  measure "nginx-small" rps "http://127.0.0.1:$NGINX_PORT/small.narinfo"
  measure "nginx-big-wrk" gbps "http://127.0.0.1:$NGINX_PORT/big.bin"
  measure "nginx-big-curl" curl_gbps "http://127.0.0.1:$NGINX_PORT/big.bin"
done

b() { tr ' ' '\n' <<<"${R[$1]}" | grep . | best; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
ns=$(b nginx-small) nw=$(b nginx-big-wrk) nc=$(b nginx-big-curl)

cat <<EOF
| what | cairn | nginx 1.22 | cairn/nginx |
|---|---|---|---|
| 300 B from memory, 2 loops, shared socket (req/s) | $(b "cairn-mem-2 shared") | $ns | $(ratio "$(b "cairn-mem-2 shared")" "$ns") |
| 300 B from memory, 2 loops, SO_REUSEPORT (req/s) | $(b "cairn-mem-2 reuseport") | $ns | $(ratio "$(b "cairn-mem-2 reuseport")" "$ns") |
| 300 B from memory, 1 loop (req/s) | $(b "cairn-mem-1") | $ns | $(ratio "$(b "cairn-mem-1")" "$ns") |
| 300 B file (open+fstat+pread per request), 2 loops (req/s) | $(b cairn-file-small) | $ns | $(ratio "$(b cairn-file-small)" "$ns") |
| 256 MiB file, wrk -t2 -c4 (GB/s) | $(b cairn-big-wrk) | $nw | $(ratio "$(b cairn-big-wrk)" "$nw") |
| 256 MiB file, one curl (GB/s) | $(b cairn-big-curl) | $nc | $(ratio "$(b cairn-big-curl)" "$nc") |

All runs (best is reported):
EOF
for k in "${!R[@]}"; do echo "- $k:${R[$k]}"; done | sort
echo
echo "load before/after: $(cut -d' ' -f1-3 /proc/loadavg)"
