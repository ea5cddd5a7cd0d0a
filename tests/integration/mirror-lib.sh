# shellcheck shell=bash
# Helpers for the cairn mirror tests: an nginx serving a binary-cache
# directory (lib.sh's nginx_start), a cairn mirror in front of it, and
# request counting in nginx's access log.  Source after lib.sh.

: "${TMP:?source lib.sh first}"

# nginx_serve NAME DIR [PORT [EXTRA]]: lib.sh's nginx_start (sets NGINX_PORT;
# the access log is $TMP/NAME.access; nginx_stop NAME stops it)
nginx_serve() { nginx_start "$@"; }

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
  MIRROR_PORT=$(port_from_file "$TMP/$name.port" "$MIRROR_PID") && return 0
  echo "mirror_start: cairn mirror did not start" >&2; cat "$TMP/$name.log" >&2
  return 1
}

# mirror_stop: SIGTERM the last mirror and wait for it; a sanitizer report
# in its log (a sanitized build) fails the test
mirror_stop() {
  kill "$MIRROR_PID" 2>/dev/null || true
  wait "$MIRROR_PID" 2>/dev/null || true
  if grep -qE 'ERROR: AddressSanitizer|runtime error|edge(-[a-z]+)?\.c' "$MIRROR_LOG" 2>/dev/null; then
    cat "$MIRROR_LOG" >&2
    not_ok "cairn mirror ran clean under the sanitizers"
  fi
}

# wait_log REGEX: wait (5 s at most) for a line of the last mirror's log
wait_log() { wait_grep "$MIRROR_LOG" "$1" 5; }

# nar_urls DIR: the nar URL of every narinfo in the cache directory DIR
nar_urls() { sed -n 's/^URL: //p' "$1"/*.narinfo; }

# metric NAME: the value of a counter in the mirror's /metrics
metric() {
  curl -fs "http://127.0.0.1:$MIRROR_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
