# Shared helpers for integration tests.  Source it: . "$SRCDIR/tests/integration/lib.sh"
# The other *-lib.sh files build on it: waiting (wait_for, wait_port,
# wait_file, wait_grep, port_from_file), ports (free_port) and the one nginx
# starter (nginx_start/nginx_stop) live here and nowhere else.
#
# Tests run two at a time (meson test --num-processes 2), so a test owns
# everything it touches: its files are under $TMP, its servers listen on
# ports the kernel picked, and HOME and the XDG directories are under $TMP
# (Nix keeps a narinfo cache keyed by URL in ~/.cache/nix: a port one test
# used and another reuses would answer from it).  Readiness is polled for,
# never slept for, and every wait is bounded.
set -euo pipefail

: "${CAIRN:?CAIRN must point at the cairn binary}"
: "${SRCDIR:?}"
: "${VECTORS_DIR:=$SRCDIR/tests/vectors}"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-test.XXXXXX")
cleanup_hooks=()
cleanup() {
  local h
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

export HOME=$TMP/home XDG_CACHE_HOME=$TMP/home/.cache XDG_CONFIG_HOME=$TMP/home/.config \
  XDG_DATA_HOME=$TMP/home/.local/share XDG_STATE_HOME=$TMP/home/.local/state
mkdir -p "$HOME"

passes=0
fails=0

ok() { passes=$((passes + 1)); echo "ok - $*"; }
not_ok() { fails=$((fails + 1)); echo "not ok - $*"; }

# check DESCRIPTION COMMAND...: passes when the command succeeds
check() {
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# skip_unless TOOL...: exit 77 (skipped) when a tool is missing, but fail in CI
skip_unless() {
  local t
  for t in "$@"; do
    if ! command -v "$t" >/dev/null 2>&1; then
      if [ "${CI:-}" = true ]; then
        echo "error: $t is required in CI" >&2
        exit 1
      fi
      echo "skip: $t not found"
      exit 77
    fi
  done
}

# Nix without a daemon, as root, with no network substituters.
nix_env() {
  export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
narinfo-cache-negative-ttl = 0
experimental-features = nix-command
"
}

# wait_for SECONDS COMMAND...: run COMMAND every 50 ms until it succeeds;
# fails (COMMAND's last status) when it has not after SECONDS (an integer)
wait_for() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 20; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  "$@"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# wait_port PORT [SECONDS]: until 127.0.0.1:PORT accepts (default 15 s)
wait_port() { wait_for "${2:-15}" port_open "$1"; }

# wait_file FILE [SECONDS]: until FILE exists and is not empty
wait_file() { wait_for "${2:-15}" test -s "$1"; }

# wait_grep FILE REGEX [SECONDS]: until a line of FILE matches REGEX (ERE)
wait_grep() { wait_for "${3:-15}" grep -qE -- "$2" "$1" 2> /dev/null; }

# wait_gone PID [SECONDS]: until process PID has exited
wait_gone() { wait_for "${2:-15}" eval "! kill -0 $1 2> /dev/null"; }

# port_from_file FILE PID [SECONDS]: print the port that the server PID
# writes to FILE once it listens (cairn publish/mirror --port-file, the test
# servers' --port-file); fails at once if PID exits first.  Better than
# free_port: nothing can take the port between choosing and binding it.
port_from_file() {
  local f=$1 pid=$2 secs=${3:-15} i
  for ((i = 0; i < secs * 20; i++)); do
    if [ -s "$f" ]; then head -n 1 "$f"; return 0; fi
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
  done
  if [ -s "$f" ]; then head -n 1 "$f"; return 0; fi
  echo "error: no port in $f (pid $pid $(kill -0 "$pid" 2> /dev/null && echo 'still running' || echo exited))" >&2
  return 1
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
# Only for servers that cannot report the port they bound (nginx, a port
# that must stay closed): another test may take it before it is used.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx_start NAME DIR [PORT [EXTRA [WORKERS]]]: serve the directory DIR
# (a binary cache) with a private nginx on 127.0.0.1:PORT (picked when
# empty; another is picked if a chosen one was taken meanwhile).  Sets
# NGINX_PORT, NGINX_URL and NGINX_PID; config, pid, logs and temp files are
# under $TMP/NAME.*, the access log is $TMP/NAME.access.  EXTRA goes into
# the server block (e.g. "limit_rate 1m;").  nginx stops when the test exits.
nginx_start() {
  local name=$1 dir=$2 port=${3:-} extra=${4:-} workers=${5:-1} conf try pid
  conf=$TMP/$name.conf
  mkdir -p "$TMP/$name.tmp"
  for try in 1 2 3 4 5; do
    local p=$port
    [ -n "$p" ] || p=$(free_port)
    # as root, the workers would run as nobody and not get into $TMP (0700)
    cat > "$conf" << NGX
daemon off;
$([ "$(id -u)" != 0 ] || echo "user root root;")
worker_processes $workers;
pid $TMP/$name.nginx.pid;
error_log $TMP/$name.error warn;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
  access_log $TMP/$name.access;
  client_body_temp_path $TMP/$name.tmp/body;
  proxy_temp_path $TMP/$name.tmp/proxy;
  fastcgi_temp_path $TMP/$name.tmp/fastcgi;
  uwsgi_temp_path $TMP/$name.tmp/uwsgi;
  scgi_temp_path $TMP/$name.tmp/scgi;
  types {
    text/x-nix-cache-info nix-cache-info;
    text/x-nix-narinfo narinfo;
    application/json ls;
  }
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$p;
    root $dir;
    $extra
  }
}
NGX
    : > "$TMP/$name.error"
    nginx -e "$TMP/$name.error" -p "$TMP" -c "$conf" > "$TMP/$name.out" 2>&1 &
    pid=$!
    cleanup_hooks+=("kill $pid 2> /dev/null")
    # up when it answers, or gone (a port taken since free_port: retry)
    wait_for 15 eval "port_open $p || ! kill -0 $pid 2> /dev/null"
    if kill -0 "$pid" 2> /dev/null && port_open "$p"; then
      NGINX_PORT=$p NGINX_URL=http://127.0.0.1:$p NGINX_PID=$pid
      echo "$pid" > "$TMP/$name.pid"
      return 0
    fi
    kill "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    [ -z "$port" ] && grep -q 'Address already in use' "$TMP/$name.error" "$TMP/$name.out" || break
  done
  echo "error: nginx $name did not start" >&2
  cat "$TMP/$name.error" "$TMP/$name.out" >&2
  return 1
}

# nginx_stop [NAME]: stop that nginx (default: the last one started) and
# wait for it to go
nginx_stop() {
  local pid=$NGINX_PID
  [ -z "${1:-}" ] || pid=$(cat "$TMP/$1.pid")
  kill "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}

# words_text FILE BYTES SEED: text of pseudo-random words, the same for the
# same SEED: it compresses (xz clearly tighter than zstd), unlike random bytes
words_text() {
  python3 - "$1" "$2" "$3" << 'PY'
import random, sys
r = random.Random(int(sys.argv[3]))
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9)))
         for _ in range(3000)]
with open(sys.argv[1], "w") as f:
    n = 0
    while n < int(sys.argv[2]):
        line = " ".join(r.choice(words) for _ in range(12)) + "\n"
        f.write(line)
        n += len(line)
PY
}

finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}

# npm_modules: tests/npm/node_modules as its lockfile pins it.  Tests that
# use it run two at a time, and `npm ci` first deletes node_modules, so the
# check and the install are under one lock; installed only when what is
# there is not what the lockfile says (npm keeps a copy of the lockfile it
# installed in node_modules/.package-lock.json).  Under CI, scripts/deps.sh
# has installed it: a mismatch is an error, never a silent install.
npm_modules() {
  local dir=$SRCDIR/tests/npm
  (
    flock 9
    if [ -f "$dir/node_modules/.package-lock.json" ] &&
      python3 - "$dir" << 'PY'
import json, sys
d = sys.argv[1]
want = json.load(open(d + "/package-lock.json"))["packages"]
have = json.load(open(d + "/node_modules/.package-lock.json"))["packages"]
# optional packages for other platforms are never installed
want = {k: v.get("version") for k, v in want.items() if k and not v.get("optional")}
have = {k: v.get("version") for k, v in have.items() if k}
sys.exit(0 if all(have.get(k) == v for k, v in want.items()) else 1)
PY
    then
      exit 0
    fi
    if [ "${CI:-}" = true ]; then
      echo "error: $dir/node_modules does not match its lockfile (scripts/deps.sh test runs npm ci there)" >&2
      exit 1
    fi
    (cd "$dir" && npm ci --no-audit --no-fund > /dev/null) ||
      { echo "error: npm ci in $dir failed" >&2; exit 1; }
  ) 9> "$dir/.lock"
}
