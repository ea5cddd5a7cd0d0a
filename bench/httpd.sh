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
# installs them with apt-get when missing and allowed (root).
# ROUNDS (10) rounds of DURATION (2) second slices, alternating servers.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
SERVER=$BUILD/tests/integration/httpd-test-server
DURATION=${DURATION:-2}
ROUNDS=${ROUNDS:-10}
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

start_cairn() { # PORT ARGS...
  local port=$1; shift
  "$SERVER" --listen 127.0.0.1:$port --dir "$W/www" "$@" > "$W/cairn-$port.out" 2>&1 &
  pids+=("$!")
  wait_port "http://127.0.0.1:$port/small"
}

# Every server runs for the whole benchmark (an idle one costs nothing); the
# measurements alternate between them in short slices, so a burst of load
# from elsewhere on this shared machine hits neighbouring cairn and nginx
# slices alike.  Reported: the median of each, and the median of the
# per-round ratios cairn/nginx.
start_cairn $CAIRN_PORT --threads 2
start_cairn $((CAIRN_PORT + 2)) --threads 2 --reuseport
start_cairn $((CAIRN_PORT + 3)) --threads 1
nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" &
pids+=("$!")
wait_port "http://127.0.0.1:$NGINX_PORT/small.narinfo"

C2=http://127.0.0.1:$CAIRN_PORT
CR=http://127.0.0.1:$((CAIRN_PORT + 2))
C1=http://127.0.0.1:$((CAIRN_PORT + 3))
NG=http://127.0.0.1:$NGINX_PORT

# rps URL: wrk requests/s
rps() {
  wrk -t2 -c64 -d"${DURATION}s" "$1" | awk '/^Requests\/sec:/{print $2}'
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

declare -A R
add() { R[$1]="${R[$1]:-} $2"; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  ng=$(rps "$NG/small.narinfo"); add nginx-small "$ng"
  v=$(rps "$C2/small");               add mem2 "$v"; add r-mem2 "$(awk -v a="$v" -v b="$ng" 'BEGIN{print a/b}')"
  v=$(rps "$CR/small");               add memr "$v"; add r-memr "$(awk -v a="$v" -v b="$ng" 'BEGIN{print a/b}')"
  v=$(rps "$C1/small");               add mem1 "$v"; add r-mem1 "$(awk -v a="$v" -v b="$ng" 'BEGIN{print a/b}')"
  v=$(rps "$C2/file/small.narinfo");  add file "$v"; add r-file "$(awk -v a="$v" -v b="$ng" 'BEGIN{print a/b}')"
  ng=$(gbps "$NG/big.bin"); add nginx-bigw "$ng"
  v=$(gbps "$C2/file/big.bin"); add bigw "$v"; add r-bigw "$(awk -v a="$v" -v b="$ng" 'BEGIN{print a/b}')"
  ng=$(curl_gbps "$NG/big.bin"); add nginx-bigc "$ng"
  v=$(curl_gbps "$C2/file/big.bin"); add bigc "$v"; add r-bigc "$(awk -v a="$v" -v b="$ng" 'BEGIN{print a/b}')"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

med() { tr ' ' '\n' <<<"${R[$1]}" | grep . | sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
row() { # LABEL KEY NGINXKEY
  printf '| %s | %s | %s | %s |\n' "$1" "$(med "$2")" "$(med "$3")" "$(med "r-$2")"
}
cat <<EOF
| what (median of $ROUNDS alternating ${DURATION}s slices) | cairn | nginx 1.22 | cairn/nginx (median of per-round ratios) |
|---|---|---|---|
EOF
row "300 B from memory, 2 loops, shared socket (req/s)" mem2 nginx-small
row "300 B from memory, 2 loops, SO_REUSEPORT (req/s)" memr nginx-small
row "300 B from memory, 1 loop (req/s)" mem1 nginx-small
row "300 B file (open+fstat+pread each time), 2 loops (req/s)" file nginx-small
row "256 MiB file, wrk -t2 -c4 (GB/s)" bigw nginx-bigw
row "256 MiB file, one curl (GB/s)" bigc nginx-bigc
echo
echo "All runs:"
for k in $(printf '%s\n' "${!R[@]}" | sort); do echo "- $k:${R[$k]}"; done
