#!/usr/bin/env bash
# bench/ranges.sh - how many range requests in flight per source help a
# download from several mirrors at once (issue 17, point 4): the setting
# of bench/far-multi.sh (two mirrors of one binary cache, each behind its
# own emulated link, RATE bit/s each way shared by all its connections
# (linkem --shared 1: more connections must not make a link faster),
# 2*DELAY_MS of round trip; one
# item of MB megabytes of random bytes, uncompressed), fetched from both
# with `--multi-per-source` 1, 2 and 4, in turn within each of RUNS rounds
# (so that the machine's load falls on all three alike), a fresh store
# each time.  Prints each one's median wall time and throughput.  Needs
# root (Nix without a daemon), nix-bin, nginx, bc.
#
#   bench/ranges.sh BUILDDIR [RUNS [MB [RATE [DELAY_MS]]]]
#   (defaults: 3 runs, 30 MB, 10M, 50)
set -euo pipefail
BUILD=$(realpath "${1:?usage: bench/ranges.sh BUILDDIR [RUNS [MB [RATE [DELAY_MS]]]]}")
RUNS=${2:-3}
MB=${3:-30}
RATE=${4:-10M}
DELAY=${5:-50}
CAIRN=$BUILD/src/cairn
LINKEM=$BUILD/tests/integration/linkem
[ -x "$CAIRN" ] && [ -x "$LINKEM" ] || { echo "build first: no $CAIRN or $LINKEM" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-ranges.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  chmod -R u+w "$TMP" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
narinfo-cache-negative-ttl = 0
experimental-features = nix-command
sandbox-paths = /bin /usr /lib /lib64
"
export XDG_CACHE_HOME=$TMP/xdg/cache XDG_CONFIG_HOME=$TMP/xdg/config \
  XDG_DATA_HOME=$TMP/xdg/data XDG_STATE_HOME=$TMP/xdg/state

cat >"$TMP/big.nix" <<NIX
derivation {
  name = "far-big";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  args = [ "-c" "mkdir -p \$out && head -c $((MB * 1000000)) /dev/urandom > \$out/data" ];
}
NIX
TOP=$(nix-build --store "local?root=$TMP/src" --no-out-link --quiet "$TMP/big.nix")
nix key generate-secret --key-name far-1 >"$TMP/k.sec"
nix key convert-secret-to-public <"$TMP/k.sec" >"$TMP/k.pub"
nix copy --quiet --from "local?root=$TMP/src" \
  --to "file://$TMP/www/c?compression=none&secret-key=$TMP/k.sec" "$TOP"
narbytes=$(sed -n 's/^FileSize: //p' "$TMP/www/c/$(basename "$TOP" | cut -c1-32).narinfo")

mkdir -p "$TMP/ng"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/ng/nginx.conf" <<NGX
daemon off; master_process off; worker_processes 1;
pid $TMP/ng/nginx.pid; error_log $TMP/ng/error.log;
events { worker_connections 256; }
http { access_log off; sendfile on; default_type application/octet-stream;
  client_body_temp_path $TMP/ng; proxy_temp_path $TMP/ng; fastcgi_temp_path $TMP/ng;
  uwsgi_temp_path $TMP/ng; scgi_temp_path $TMP/ng;
  server { listen 127.0.0.1:$port; root $TMP/www; } }
NGX
nginx -e "$TMP/ng/error.log" -p "$TMP/ng" -c "$TMP/ng/nginx.conf" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done

link() { # NAME: a linkem in front of nginx; sets p to its port
  "$LINKEM" --to "127.0.0.1:$port" --port-file "$TMP/$1.port" --rate "$RATE" \
    --delay-ms "$DELAY" --shared 1 2>"$TMP/$1.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$TMP/$1.port" ] && break; sleep 0.05; done
  p=$(cat "$TMP/$1.port")
}
link a; A=http://127.0.0.1:$p/c
link b; B=http://127.0.0.1:$p/c

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# one K: a fetch from both with K requests per source; wall seconds
one() {
  rm -rf "$TMP/dst"
  /usr/bin/time -f "%e" -o "$TMP/time" "$CAIRN" fetch --no-cache --quiet --multi-per-source "$1" \
    --from "$A" --from "$B" --trusted-key "$TMP/k.pub" --store "$TMP/dst" "$TOP" \
    >/dev/null 2>"$TMP/err" || { echo "K=$1 failed:" >&2; cat "$TMP/err" >&2; exit 1; }
  cat "$TMP/time"
}
for i in $(seq "$RUNS"); do
  for k in 1 2 4; do echo "$k $(one "$k")"; done
done >"$TMP/times"
mbps() { echo "$narbytes * 8 / $1 / 1000000" | bc -l | cut -c1-5; }
echo "two mirrors, each $RATE bit/s, $((2 * DELAY)) ms RTT; one item, NAR $narbytes bytes; median of $RUNS"
echo "| requests per source | wall s (runs) | Mbit/s |"
echo "|---:|---:|---:|"
for k in 1 2 4; do
  runs=$(awk -v k="$k" '$1 == k {print $2}' "$TMP/times" | tr '\n' ' ')
  t=$(awk -v k="$k" '$1 == k {print $2}' "$TMP/times" | median)
  echo "| $k | $t (${runs% }) | $(mbps "$t") |"
done
