#!/bin/bash
# `make run`: the whole system on one machine, in three steps.
#   1. cairn publish serves a small demo Nix store (three derivations with
#      references, built into a private chroot store, no daemon), signing
#      narinfos with a fresh key;
#   2. cairn mirror, a verifying caching edge, sits in front of it and
#      accepts only narinfos signed by that key;
#   3. cairn fetch substitutes the demo closure through the mirror into a
#      private store, checking signatures and hashes.
# Then both servers keep running, and the script prints how a real Nix (or
# Guix) uses them.  Ctrl-C stops both and ends the script.
#   scripts/demo.sh [CAIRN] [PORT]
# Environment: CAIRN_DEMO_DIR (default build/demo; kept between runs),
# CAIRN_DEMO_HOST (default 127.0.0.1), CAIRN_DEMO_MIRROR_PORT (default
# PORT+1).  Without nix-build, the test vectors' binary cache is published.
set -euo pipefail
CAIRN=${1:-build/src/cairn}
PORT=${2:-${CAIRN_DEMO_PORT:-8080}}
MPORT=${CAIRN_DEMO_MIRROR_PORT:-$((PORT + 1))}
HOST=${CAIRN_DEMO_HOST:-127.0.0.1}
DIR=${CAIRN_DEMO_DIR:-$(dirname "$CAIRN")/../demo}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CAIRN=$(cd "$(dirname "$CAIRN")" && pwd)/$(basename "$CAIRN")
root=$DIR/root

step() { printf '\n== %s\n' "$*"; }

pids=()
stop() {
  trap - INT TERM EXIT
  [ "${#pids[@]}" -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  [ "${#pids[@]}" -gt 0 ] && wait "${pids[@]}" 2>/dev/null || true
  echo
  echo "demo: stopped."
  exit 0
}
trap stop INT TERM
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT

# wait_port FILE PID: the port a server wrote once listening
wait_port() {
  local i
  for i in $(seq 100); do
    [ -s "$1" ] && { cat "$1"; return 0; }
    kill -0 "$2" 2>/dev/null || { echo "demo: a server did not start" >&2; return 1; }
    sleep 0.1
  done
  echo "demo: a server did not start within 10 s" >&2
  return 1
}

if command -v nix-build > /dev/null; then
  # Nix 2.8 as root without a daemon, into a chroot store (see
  # tests/integration/nix-lib.sh for why each setting is there).
  export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
experimental-features = nix-command
sandbox-paths = /bin /usr /lib /lib64
"
  export XDG_CACHE_HOME=$DIR/xdg/cache XDG_CONFIG_HOME=$DIR/xdg/config \
    XDG_DATA_HOME=$DIR/xdg/data XDG_STATE_HOME=$DIR/xdg/state
  if [ ! -s "$DIR/top" ]; then
    step "building a small store in $root"
    cat > "$DIR/demo.nix" <<'EOF'
let
  mk = name: deps: text: derivation {
    inherit name deps;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    args = [ "-c" ''
      mkdir -p $out/bin $out/share
      echo "${text}" > $out/share/message
      for d in $deps; do echo "$d" >> $out/share/depends-on; done
      printf '#!/bin/sh\ncat %s/share/message\n' "$out" > $out/bin/${name}
      chmod +x $out/bin/${name}
      head -c 200000 /usr/bin/sh >> $out/share/blob || true
    '' ];
  };
  greeting = mk "cairn-demo-greeting" [] "hello from a cairn-published store";
  lib = mk "cairn-demo-lib" [ greeting ] "a library that needs the greeting";
in mk "cairn-demo-app" [ lib greeting ] "an app on top of both"
EOF
    nix-build --store "local?root=$root" --no-out-link --quiet "$DIR/demo.nix" > "$DIR/top.tmp"
    mv "$DIR/top.tmp" "$DIR/top"
  fi
  top=$(cat "$DIR/top")
  if [ ! -s "$DIR/key.sec" ]; then
    "$CAIRN" key generate --format nix --secret "$DIR/key.sec" --public "$DIR/key.pub" \
      cairn-demo-1 > /dev/null
  fi
  keypub=$DIR/key.pub
  what="the demo store $root/nix/store (clients see /nix/store)"
  serve=(--store "$root/nix/store" --key "$DIR/key.sec" --cache "$DIR/cache"
         --compression zstd:3,xz:6)
else
  # No Nix to build a store with: the binary cache the test vectors hold
  # (made by Nix 2.8), published as a directory.
  cache=$here/tests/vectors/nix/cache-xz
  keypub=$here/tests/vectors/nix/keys/cache.example.org-1.pub
  top=$(sed -n 's/^StorePath: //p' "$cache"/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo)
  what="the binary cache $cache (install nix-bin for a store built here)"
  serve=(--binary-cache "$cache")
fi
pub=$(cat "$keypub")

step "1. cairn publish: $what"
rm -f "$DIR/publish.port" "$DIR/mirror.port"
"$CAIRN" publish "${serve[@]}" --listen "$HOST:$PORT" --port-file "$DIR/publish.port" &
pids+=($!)
PORT=$(wait_port "$DIR/publish.port" "${pids[0]}")
origin=http://$HOST:$PORT
echo "   serving on $origin/ (narinfos signed by $(cut -d: -f1 "$keypub"))"

step "2. cairn mirror: a verifying edge in front of it"
rm -rf "$DIR/mirror"
"$CAIRN" mirror --upstream "$origin" --cache "$DIR/mirror" --trusted-key "$keypub" \
  --listen "$HOST:$MPORT" --port-file "$DIR/mirror.port" &
pids+=($!)
MPORT=$(wait_port "$DIR/mirror.port" "${pids[1]}")
edge=http://$HOST:$MPORT
echo "   serving on $edge/, caching in $DIR/mirror, trusting $keypub"

step "3. cairn fetch: the closure of $(basename "$top") through the mirror"
rm -rf "$DIR/fetched"
"$CAIRN" fetch --no-cache --from "$edge" --trusted-key "$keypub" --closure \
  --store "$DIR/fetched" "$top"
echo "   unpacked under $DIR/fetched$(dirname "$top"), each item checked against"
echo "   its signed NarHash; the mirror now holds the nars it verified:"
curl -fsS "$edge/metrics" 2>/dev/null | grep -E '^cairn_mirror_(nar_misses|verify_failures)_total' |
  sed 's/^/     /' || true

cat <<EOF

== Use it from Nix (these commands work as printed with Debian's nix 2.8)

  nix --extra-experimental-features nix-command copy --from $edge --to /tmp/cairn-demo-copy --option trusted-public-keys '$pub' $top

  or, in nix.conf, the mirror (or the origin, $origin) as a substituter:
    extra-substituters = $edge
    extra-trusted-public-keys = $pub

== Use it from Guix

  cairn publish speaks Guix's protocol for a Guix store: run it with
  --store /gnu/store --key /etc/guix/signing-key.sec, authorize its key with
  'guix archive --authorize < signing-key.pub' (fetched from the server's
  /signing-key.pub), and pass --substitute-urls=http://HOST:PORT to guix.

Both servers keep running; Ctrl-C stops them.
EOF
wait "${pids[@]}" || true
stop
