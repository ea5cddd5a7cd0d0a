# bench/far-lib.sh - the set-up shared by the far-from-the-head benchmarks
# (issue 17: far.sh, far-multi.sh, ranges.sh), sourced, so that they build
# the same item, run the same nginx and put the same link emulator in
# front of their servers:
#
#   far_nix_env DIR [EXTRA]       # NIX_CONFIG for Nix without a daemon, XDG_* under DIR
#   far_big_item DIR MB           # prints the store path of MB MB of random bytes,
#                                 # built into the chroot store local?root=DIR/src
#   far_file_cache DIR PATH       # signs PATH (key DIR/k.sec, DIR/k.pub) into the
#                                 # uncompressed binary cache DIR/www/c; prints
#                                 # its NAR's FileSize
#   far_nginx DIR SERVER_BODY     # nginx (one worker) with SERVER_BODY inside its
#                                 # server block; sets far_port to its port
#   far_link NAME TO_PORT [ARG...] # tests/integration/linkem in front of TO_PORT
#                                 # (ARGs: --rate, --delay-ms, --shared 1 ...);
#                                 # sets far_port to the link's port
#   far_two_mirrors NAME MB_DEFAULT BUILDDIR [RUNS [MB [RATE [DELAY_MS]]]]
#                                 # the whole set-up of far-multi.sh and ranges.sh:
#                                 # sets BUILD RUNS MB RATE DELAY CAIRN LINKEM TMP
#                                 # (removed on exit), TOP (the item), narbytes,
#                                 # A and B (one nginx'd cache behind two links,
#                                 # each RATE and DELAY_MS one way, shared by a
#                                 # client's connections)
#
# The caller sets TMP (a scratch directory), LINKEM (the emulator's binary),
# and a `pids` array whose processes its EXIT trap kills: far_nginx and
# far_link add theirs.  Needs nix-bin, nginx, python3.

far_nix_env() {
  export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
experimental-features = nix-command
sandbox-paths = /bin /usr /lib /lib64
${2:-}"
  export XDG_CACHE_HOME=$1/xdg/cache XDG_CONFIG_HOME=$1/xdg/config \
    XDG_DATA_HOME=$1/xdg/data XDG_STATE_HOME=$1/xdg/state
}

# Random bytes: no compressor shrinks them, so the link is the bottleneck
# whatever the server offers.
far_big_item() {
  cat >"$1/big.nix" <<NIX
derivation {
  name = "far-big";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  args = [ "-c" "mkdir -p \$out && head -c $(($2 * 1000000)) /dev/urandom > \$out/data" ];
}
NIX
  nix-build --store "local?root=$1/src" --no-out-link --quiet "$1/big.nix"
}

far_file_cache() {
  nix key generate-secret --key-name far-1 >"$1/k.sec"
  nix key convert-secret-to-public <"$1/k.sec" >"$1/k.pub"
  nix copy --quiet --from "local?root=$1/src" \
    --to "file://$1/www/c?compression=none&secret-key=$1/k.sec" "$2"
  sed -n 's/^FileSize: //p' "$1/www/c/$(basename "$2" | cut -c1-32).narinfo"
}

far_wait_port() { # PORT: until something accepts on it
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done
}

far_nginx() {
  local dir=$1/ng-$RANDOM
  mkdir -p "$dir"
  far_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$dir/nginx.conf" <<NGX
daemon off; master_process off; worker_processes 1;
pid $dir/nginx.pid; error_log $dir/error.log;
events { worker_connections 256; }
http { access_log off; sendfile on; default_type application/octet-stream;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
  server { listen 127.0.0.1:$far_port; $2 } }
NGX
  nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" &
  pids+=($!)
  far_wait_port "$far_port"
}

far_link() {
  local name=$1 to=$2
  shift 2
  rm -f "$TMP/$name.port"
  "$LINKEM" --to "127.0.0.1:$to" --port-file "$TMP/$name.port" "$@" 2>"$TMP/$name.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$TMP/$name.port" ] && break; sleep 0.05; done
  far_port=$(cat "$TMP/$name.port")
}

far_two_mirrors() {
  local name=$1 mb_default=$2
  shift 2
  BUILD=$(realpath "${1:?usage: bench/$name.sh BUILDDIR [RUNS [MB [RATE [DELAY_MS]]]]}")
  RUNS=${2:-3}
  MB=${3:-$mb_default}
  RATE=${4:-10M}
  DELAY=${5:-50}
  CAIRN=$BUILD/src/cairn
  LINKEM=$BUILD/tests/integration/linkem
  [ -x "$CAIRN" ] && [ -x "$LINKEM" ] || { echo "build first: no $CAIRN or $LINKEM" >&2; exit 1; }
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-$name.XXXXXX")
  pids=()
  trap far_cleanup EXIT
  far_nix_env "$TMP" "narinfo-cache-negative-ttl = 0"
  TOP=$(far_big_item "$TMP" "$MB")
  narbytes=$(far_file_cache "$TMP" "$TOP")
  far_nginx "$TMP" "root $TMP/www;"
  local port=$far_port
  far_link a "$port" --rate "$RATE" --delay-ms "$DELAY" --shared 1
  A=http://127.0.0.1:$far_port/c
  far_link b "$port" --rate "$RATE" --delay-ms "$DELAY" --shared 1
  B=http://127.0.0.1:$far_port/c
}

far_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  chmod -R u+w "$TMP" 2>/dev/null || true
  rm -rf "$TMP"
}
