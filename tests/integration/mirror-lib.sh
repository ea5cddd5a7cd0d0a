# shellcheck shell=bash
# Helpers for the cairn mirror tests: an nginx serving a binary-cache
# directory (private config, access log in $TMP), a cairn mirror in front of
# it, and request counting in the access log.  Source after lib.sh.

: "${TMP:?source lib.sh first}"

# free_port: a TCP port nothing listens on right now
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# nginx_serve NAME DIR [PORT [EXTRA]]: serve DIR on 127.0.0.1:PORT (picked when
# empty); sets NGINX_PORT; the access log is $TMP/NAME.access, the pid in
# $TMP/NAME.pid.  EXTRA goes into the server block (e.g. "limit_rate 1m;").
nginx_serve() {
  local name=$1 dir=$2 port=${3:-} extra=${4:-} conf pid
  [ -n "$port" ] || port=$(free_port)
  conf=$TMP/$name.conf
  mkdir -p "$TMP/$name.tmp"
  cat > "$conf" <<NGX
daemon off;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $TMP/$name.nginx.pid;
error_log $TMP/$name.error warn;
events { worker_connections 4096; }
http {
  access_log $TMP/$name.access;
  client_body_temp_path $TMP/$name.tmp/body;
  proxy_temp_path $TMP/$name.tmp/proxy;
  fastcgi_temp_path $TMP/$name.tmp/fcgi;
  uwsgi_temp_path $TMP/$name.tmp/uwsgi;
  scgi_temp_path $TMP/$name.tmp/scgi;
  types { text/x-nix-narinfo narinfo; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$port;
    root $dir;
    $extra
  }
}
NGX
  nginx -c "$conf" -p "$TMP" &
  pid=$!
  echo "$pid" > "$TMP/$name.pid"
  cleanup_hooks+=("kill $pid 2>/dev/null")
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/nix-cache-info" > /dev/null && { NGINX_PORT=$port; return 0; }
    sleep 0.05
  done
  echo "nginx_serve: nginx did not start" >&2; cat "$TMP/$name.error" >&2
  return 1
}

# nginx_stop NAME: stop that nginx and wait for it to go
nginx_stop() {
  local pid; pid=$(cat "$TMP/$1.pid")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# count_requests NAME REGEX: lines of NAME's access log whose request matches
count_requests() {
  local n; n=$(grep -cE "\"GET $2" "$TMP/$1.access" 2>/dev/null) || true
  echo "${n:-0}"
}

# mirror_start NAME ARGS...: start cairn mirror on a free port with ARGS;
# sets MIRROR_PORT and MIRROR_PID; its stderr is $TMP/NAME.log
mirror_start() {
  local name=$1; shift
  rm -f "$TMP/$name.port"
  "$CAIRN" mirror --listen 127.0.0.1:0 --threads 2 --port-file "$TMP/$name.port" \
    --access-log "$TMP/$name.mirror-access" "$@" 2> "$TMP/$name.log" &
  MIRROR_PID=$!
  MIRROR_LOG=$TMP/$name.log
  cleanup_hooks+=("kill -9 $MIRROR_PID 2>/dev/null")
  for _ in $(seq 200); do
    if [ -s "$TMP/$name.port" ]; then MIRROR_PORT=$(cat "$TMP/$name.port"); return 0; fi
    kill -0 "$MIRROR_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "mirror_start: cairn mirror did not start" >&2; cat "$TMP/$name.log" >&2
  return 1
}

# mirror_stop: SIGTERM the last mirror and wait for it; a sanitizer report
# in its log (a sanitized build) fails the test
mirror_stop() {
  kill "$MIRROR_PID" 2>/dev/null || true
  wait "$MIRROR_PID" 2>/dev/null || true
  if grep -qE 'ERROR: AddressSanitizer|runtime error|edge(-store)?\.c' "$MIRROR_LOG" 2>/dev/null; then
    cat "$MIRROR_LOG" >&2
    not_ok "cairn mirror ran clean under the sanitizers"
  fi
}

# wait_log REGEX: wait (5 s at most) for a line of the last mirror's log
wait_log() {
  for _ in $(seq 100); do
    grep -qE -- "$1" "$MIRROR_LOG" && return 0
    sleep 0.05
  done
  return 1
}

# nar_urls DIR: the nar URL of every narinfo in the cache directory DIR
nar_urls() { sed -n 's/^URL: //p' "$1"/*.narinfo; }

# metric NAME: the value of a counter in the mirror's /metrics
metric() {
  curl -fs "http://127.0.0.1:$MIRROR_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
