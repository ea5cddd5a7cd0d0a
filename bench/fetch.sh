#!/usr/bin/env bash
# bench/fetch.sh - cairn fetch against `nix copy --from http://...`: the same
# closure, the same nginx-served binary cache, both cold, one run each.
#
#   bench/fetch.sh CAIRN [N_PATHS [KIB_PER_PATH [COMPRESSION...]]]
#
# Builds N_PATHS (default 300) derivations with nix-build into a private
# chroot store (each refers to the two before it, each holds KIB_PER_PATH
# (default 1024) KiB of base64 text: compressible like real files, unlike
# random bytes), copies the closure with `nix copy --to file://...` for
# every COMPRESSION (default: xz zstd), serves it with nginx, then times
#   nix copy --from http://... --to local?root=DIR TOP      (Nix 2.8)
#   cairn fetch --from http://... --store DIR --closure TOP
# with /usr/bin/time (wall, user, sys, max RSS).  Needs root (Nix without
# a daemon), nix-bin, nginx.  Prints a Markdown table.  With BENCH_DIR set,
# the store and caches are kept there and reused by the next run (the
# clients' stores are always made afresh).
set -euo pipefail
. "$(dirname "$0")/closure-lib.sh"
CAIRN=$(realpath "${1:?usage: bench/fetch.sh CAIRN [N [KIB [COMPRESSION...]]]}")
N=${2:-300}
KIB=${3:-1024}
shift $(($# < 3 ? $# : 3))
COMPS=("$@")
[ ${#COMPS[@]} -gt 0 ] || COMPS=(xz zstd)

if [ -n "${BENCH_DIR:-}" ]; then
  TMP=$BENCH_DIR
  mkdir -p "$TMP"
else
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
fi
ngpid=
cleanup() {
  [ -z "$ngpid" ] || kill "$ngpid" 2>/dev/null || true
  chmod -R u+w "$TMP" 2>/dev/null || true
  if [ -n "${BENCH_DIR:-}" ]; then
    rm -rf "$TMP"/nix-* "$TMP"/cairn-* "$TMP/ng"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
narinfo-cache-negative-ttl = 0
narinfo-cache-positive-ttl = 0
experimental-features = nix-command
sandbox-paths = /bin /usr /lib /lib64
"
export XDG_CACHE_HOME=$TMP/xdg/cache XDG_CONFIG_HOME=$TMP/xdg/config \
  XDG_DATA_HOME=$TMP/xdg/data XDG_STATE_HOME=$TMP/xdg/state

TOP=$(bench_closure "$TMP" "$N" "$KIB")
rm -rf "$TMP"/nix-* "$TMP"/cairn-*
npaths=$(nix path-info --store "local?root=$TMP/src" -r "$TOP" | wc -l)
narbytes=$(nix path-info --store "local?root=$TMP/src" -r -S "$TOP" | awk '{print $NF}' | tail -1)
[ -s "$TMP/k.sec" ] || nix key generate-secret --key-name bench-1 >"$TMP/k.sec"
nix key convert-secret-to-public <"$TMP/k.sec" >"$TMP/k.pub"

mkdir -p "$TMP/www" "$TMP/ng"
for c in "${COMPS[@]}"; do
  [ ! -s "$TMP/www/$c/$(basename "$TOP" | cut -c1-32).narinfo" ] || continue
  echo "nix copy --to file:// ($c)..." >&2
  nix copy --quiet --from "local?root=$TMP/src" --to "file://$TMP/www/$c?compression=$c&secret-key=$TMP/k.sec" "$TOP" 2>/dev/null
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/ng/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 2;
pid $TMP/ng/nginx.pid;
error_log $TMP/ng/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path $TMP/ng;
  proxy_temp_path $TMP/ng;
  fastcgi_temp_path $TMP/ng;
  uwsgi_temp_path $TMP/ng;
  scgi_temp_path $TMP/ng;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$port; root $TMP/www; }
}
EOF
nginx -e "$TMP/ng/error.log" -p "$TMP/ng" -c "$TMP/ng/nginx.conf" &
ngpid=$!
sleep 0.5

# timed LABEL CMD...: one line "LABEL wall user sys maxrss_kib"
timed() {
  local label=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$TMP/time" "$@" >/dev/null 2>"$TMP/err" ||
    { echo "$label failed:" >&2; cat "$TMP/err" >&2; return 1; }
  echo "$label $(cat "$TMP/time")"
}

echo "| cache | client | wall s | user s | sys s | CPU s | max RSS MiB |"
echo "|---|---|---:|---:|---:|---:|---:|"
for c in "${COMPS[@]}"; do
  url="http://127.0.0.1:$port/$c"
  sync
  read -r _ nw nu ns nm < <(timed nix nix copy --from "$url" --to "local?root=$TMP/nix-$c" \
    --option trusted-public-keys "$(cat "$TMP/k.pub")" "$TOP")
  sync
  read -r _ cw cu cs cm < <(timed cairn "$CAIRN" fetch --no-cache --quiet --from "$url" \
    --trusted-key "$TMP/k.pub" --store "$TMP/cairn-$c" --closure "$TOP")
  got=$(find "$TMP/cairn-$c/nix/store" -mindepth 1 -maxdepth 1 | wc -l)
  [ "$got" = "$npaths" ] || { echo "cairn fetched $got of $npaths paths" >&2; exit 1; }
  # the unpacked trees are the same as Nix's
  cmp <(nix-store --dump "$TMP/cairn-$c$TOP") <(nix-store --dump "$TMP/nix-$c/$TOP") >/dev/null ||
    { echo "cairn and Nix unpacked different trees" >&2; exit 1; }
  for r in "nix copy:$nw:$nu:$ns:$nm" "cairn fetch:$cw:$cu:$cs:$cm"; do
    IFS=: read -r who w u s m <<<"$r"
    printf '| %s | %s | %s | %s | %s | %.2f | %.0f |\n' "$c" "$who" "$w" "$u" "$s" \
      "$(echo "$u + $s" | bc)" "$(echo "$m / 1024" | bc)"
  done
done
echo
echo "$npaths paths, $((narbytes / 1048576)) MiB of NAR (closure), $(du -sm "$TMP/www" | cut -f1) MiB of caches; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
