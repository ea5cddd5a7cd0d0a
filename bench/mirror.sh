#!/usr/bin/env bash
# bench/mirror.sh [BUILD]: cairn mirror vs Varnish (malloc storage) vs nginx
# proxy_cache, all in front of the same nginx origin on 127.0.0.1, serving
# the same objects:
#   - warm narinfo hits per second (wrk -t2 -c64)
#   - warm large-nar hits, GB/s (wrk -t2 -c4 on a 256 MiB nar)
#   - cold fan-out: 100 clients ask at once for one 32 MiB nar nobody has
#     cached; wall time until all have it, and how many requests reached the
#     origin.
# Results go to stdout as a Markdown table; ROUNDS and DURATION as in
# bench/httpd.sh.  Varnish and nginx get private configs under a temp dir.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
CAIRN=$BUILD/src/cairn
DURATION=${DURATION:-2}
ROUNDS=${ROUNDS:-5}
BASE=${BASE_PORT:-19080}
ORIGIN=$BASE MIRROR=$((BASE + 1)) VARNISH=$((BASE + 2)) NGCACHE=$((BASE + 3))

for t in wrk nginx varnishd curl; do
  command -v "$t" > /dev/null || { echo "need $t (apt-get install wrk nginx varnish)" >&2; exit 1; }
done
[ -x "$CAIRN" ] || { echo "no $CAIRN: build first" >&2; exit 1; }

W=$(mktemp -d /tmp/cairn-bench-mirror.XXXXXX)
chmod 755 "$W"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

# --- objects: a narinfo-fronted 256 MiB nar and a 32 MiB one ----------------
mkdir -p "$W/www/nar"
printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n' > "$W/www/nix-cache-info"
alphabet=0123456789abcdfghijklmnpqrsvwxyz
randhash() { python3 -c "import random; print(''.join(random.choice('$alphabet') for _ in range(32)))"; }
make_item() { # NAME MiB -> prints the store hash
  local name=$1 mib=$2 h fh nar
  h=$(randhash)
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$W/tmp.nar"
  fh=$("$CAIRN" hash file --to nix32 "$W/tmp.nar" | awk '{print $1}' | sed 's/^sha256://')
  nar=nar/$fh.nar.xz
  mv "$W/tmp.nar" "$W/www/$nar"
  cat > "$W/www/$h.narinfo" <<EOF
StorePath: /nix/store/$h-$name
URL: $nar
Compression: xz
FileHash: sha256:$fh
FileSize: $((mib * 1024 * 1024))
NarHash: sha256:$fh
NarSize: $((mib * 1024 * 1024))
References: 
EOF
  echo "$h"
}
BIG=$(make_item big 256)
BIGNAR=$(sed -n 's/^URL: //p' "$W/www/$BIG.narinfo")
chmod -R a+rX "$W/www"

# --- servers -------------------------------------------------------------------
nginx_conf() { # NAME BODY
  mkdir -p "$W/$1"
  cat > "$W/$1/nginx.conf" <<EOF
worker_processes 2;
daemon off;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
pid $W/$1/nginx.pid;
error_log $W/$1/error.log warn;
events { worker_connections 8192; }
http {
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 60s;
  open_file_cache max=1000 inactive=60s;
  types { text/x-nix-narinfo narinfo; }
  default_type application/octet-stream;
  client_body_temp_path $W/$1/body; proxy_temp_path $W/$1/proxy;
  fastcgi_temp_path $W/$1/fcgi; uwsgi_temp_path $W/$1/uwsgi; scgi_temp_path $W/$1/scgi;
  $2
}
EOF
}
nginx_conf origin "access_log $W/origin.access; server { listen 127.0.0.1:$ORIGIN; root $W/www; }"
nginx_conf ngcache "access_log off;
  proxy_cache_path $W/ngcache/cache levels=1:2 keys_zone=c:16m max_size=4g inactive=1h use_temp_path=off;
  server { listen 127.0.0.1:$NGCACHE;
    location / { proxy_pass http://127.0.0.1:$ORIGIN; proxy_cache c; proxy_cache_valid 200 1h;
      proxy_cache_valid 404 1m; proxy_cache_lock on; proxy_cache_lock_timeout 60s;
      proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"

wait_url() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no $1" >&2; return 1; }
start_origin() { nginx -p "$W/origin" -c "$W/origin/nginx.conf" -e "$W/origin/error.log" & pids+=("$!"); wait_url "http://127.0.0.1:$ORIGIN/nix-cache-info"; }
start_mirror() {
  rm -rf "$W/mc"
  "$CAIRN" mirror --upstream "http://127.0.0.1:$ORIGIN" --cache "$W/mc" --threads 2 \
    --listen "127.0.0.1:$MIRROR" 2> "$W/mirror.log" & MIRROR_PID=$!; pids+=("$MIRROR_PID")
  wait_url "http://127.0.0.1:$MIRROR/nix-cache-info"
}
start_varnish() {
  rm -rf "$W/varnish"; mkdir -p "$W/varnish"
  varnishd -F -n "$W/varnish" -a "127.0.0.1:$VARNISH" -b "127.0.0.1:$ORIGIN" -s malloc,1g \
    -p thread_pools=2 > "$W/varnish.log" 2>&1 & VARNISH_PID=$!; pids+=("$VARNISH_PID")
  wait_url "http://127.0.0.1:$VARNISH/nix-cache-info"
}
start_ngcache() {
  rm -rf "$W/ngcache/cache"
  nginx -p "$W/ngcache" -c "$W/ngcache/nginx.conf" -e "$W/ngcache/error.log" & NGCACHE_PID=$!; pids+=("$NGCACHE_PID")
  wait_url "http://127.0.0.1:$NGCACHE/nix-cache-info"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

start_origin
start_mirror; start_varnish; start_ngcache
declare -A URL=([cairn]=http://127.0.0.1:$MIRROR [varnish]=http://127.0.0.1:$VARNISH [nginx]=http://127.0.0.1:$NGCACHE)
NAMES=(cairn varnish nginx)
for n in "${NAMES[@]}"; do # warm
  for _ in 1 2; do curl -sf -o /dev/null "${URL[$n]}/$BIG.narinfo"; curl -sf -o /dev/null "${URL[$n]}/$BIGNAR"; done
done
before=$(grep -c "GET /$BIGNAR" "$W/origin.access" || true)

rps() { wrk -t2 -c64 -d"${DURATION}s" "$1" | awk '/^Requests\/sec:/{print $2}'; }
gbps() {
  wrk -t2 -c4 -d"${DURATION}s" "$1" | awk '/^Transfer\/sec:/{
    v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2)
    m = (u=="GB") ? 1073741824 : (u=="MB") ? 1048576 : (u=="KB") ? 1024 : 1
    printf "%.2f\n", n*m/1e9 }'
}
declare -A R
add() { R[$1]="${R[$1]:-} $2"; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$ROUNDS"); do
  echo "warm round $round/$ROUNDS" >&2
  for n in "${NAMES[@]}"; do add "small-$n" "$(rps "${URL[$n]}/$BIG.narinfo")"; done
  for n in "${NAMES[@]}"; do add "big-$n" "$(gbps "${URL[$n]}/$BIGNAR")"; done
done
after=$(grep -c "GET /$BIGNAR" "$W/origin.access" || true)
[ "$before" = "$after" ] || echo "warning: $((after - before)) origin requests during the warm runs" >&2

# cold fan-out: a fresh cache each time, a fresh 32 MiB nar per run
fanout() { # NAME -> "seconds origin_requests ok_clients"
  local n=$1 h nar t0 t1 want
  h=$(make_item fan 32); chmod -R a+rX "$W/www"
  nar=$(sed -n 's/^URL: //p' "$W/www/$h.narinfo")
  want=$(sha256sum < "$W/www/$nar" | cut -d' ' -f1)
  curl -sf -o /dev/null "${URL[$n]}/$h.narinfo"
  rm -rf "$W/fan"; mkdir "$W/fan"
  t0=$(date +%s.%N)
  seq 100 | xargs -P 100 -I{} sh -c "curl -sf '${URL[$n]}/$nar' | sha256sum | cut -c1-64 > '$W/fan/{}'"
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc) $(grep -c "GET /$nar" "$W/origin.access") $(grep -c "$want" "$W"/fan/* | grep -c ':1$')"
}
for round in $(seq "$ROUNDS"); do
  echo "cold round $round/$ROUNDS" >&2
  stop "$MIRROR_PID"; start_mirror
  stop "$VARNISH_PID"; start_varnish
  stop "$NGCACHE_PID"; start_ngcache
  for n in "${NAMES[@]}"; do
    read -r s o ok < <(fanout "$n")
    add "fan-$n" "$s"; add "fanorig-$n" "$o"; add "fanok-$n" "$ok"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

med() { tr ' ' '\n' <<<"${R[$1]}" | grep . | sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
mx() { tr ' ' '\n' <<<"${R[$1]}" | grep . | sort -g | tail -1; }
mn() { tr ' ' '\n' <<<"${R[$1]}" | grep . | sort -g | head -1; }
cat <<EOF
| median of $ROUNDS rounds (${DURATION}s slices) | cairn mirror | Varnish $(varnishd -V 2>&1 | sed -n 's/.*varnish-\([0-9.]*\).*/\1/p' | head -1) (malloc) | nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') proxy_cache |
|---|---:|---:|---:|
| narinfo hits/s (wrk -t2 -c64) | $(med small-cairn) | $(med small-varnish) | $(med small-nginx) |
| 256 MiB nar hits, GB/s (wrk -t2 -c4) | $(med big-cairn) | $(med big-varnish) | $(med big-nginx) |
| cold fan-out, 100 clients x 32 MiB nar, s | $(med fan-cairn) | $(med fan-varnish) | $(med fan-nginx) |
| ... origin requests for it (min-max) | $(mn fanorig-cairn)-$(mx fanorig-cairn) | $(mn fanorig-varnish)-$(mx fanorig-varnish) | $(mn fanorig-nginx)-$(mx fanorig-nginx) |
| ... clients with correct bytes (min) | $(mn fanok-cairn) | $(mn fanok-varnish) | $(mn fanok-nginx) |
EOF
echo
echo "Raw (per round):"
for k in $(printf '%s\n' "${!R[@]}" | sort); do echo "- $k:${R[$k]}"; done
