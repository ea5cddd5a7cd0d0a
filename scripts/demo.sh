#!/bin/bash
# `make run`: build a small demo Nix store (three derivations with
# references, in a private chroot store, no daemon), make a signing key, and
# serve it with `cairn publish`, printing how a Nix client uses it.
#   scripts/demo.sh [CAIRN] [PORT]
# Environment: CAIRN_DEMO_DIR (default build/demo; kept between runs),
# CAIRN_DEMO_LISTEN (default 127.0.0.1:PORT).
set -euo pipefail
CAIRN=${1:-build/src/cairn}
PORT=${2:-${CAIRN_DEMO_PORT:-8080}}
DIR=${CAIRN_DEMO_DIR:-$(dirname "$CAIRN")/../demo}
LISTEN=${CAIRN_DEMO_LISTEN:-127.0.0.1:$PORT}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
root=$DIR/root

if ! command -v nix-build > /dev/null; then
  # no Nix to build a store with: serve the binary cache that the test
  # vectors hold (made by Nix 2.8), as a directory
  here=$(cd "$(dirname "$0")/.." && pwd)
  cache=$here/tests/vectors/nix/cache-xz
  pub=$(cat "$here/tests/vectors/nix/keys/cache.example.org-1.pub")
  top=$(sed -n 's/^StorePath: //p' "$cache"/*.narinfo | head -n 1)
  cat <<EOF
demo: nix-build is not installed (apt-get install nix-bin builds a demo store);
serving the binary-cache directory $cache instead on http://$LISTEN/

  curl http://$LISTEN/nix-cache-info
  nix copy --from http://$LISTEN --to /tmp/cairn-demo-copy \\
    --option trusted-public-keys '$pub' $top

Stop with Ctrl-C.
EOF
  exec "$CAIRN" publish --binary-cache "$cache" --listen "$LISTEN"
fi

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
  echo "demo: building a small store in $root ..."
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
pub=$(cat "$DIR/key.pub")

host=${LISTEN%:*}
case $host in '*'|0.0.0.0|'[::]') host=127.0.0.1 ;; esac
cat <<EOF

cairn publish is serving the demo store ($root/nix/store, seen by clients as
/nix/store) on http://$host:$PORT/ with the signing key $DIR/key.sec.

  curl http://$host:$PORT/nix-cache-info
  curl http://$host:$PORT/$(basename "$top" | cut -c1-32).narinfo

Copy the demo closure with a Nix client (into a private store, no daemon needed):

  nix copy --from http://$host:$PORT --to /tmp/cairn-demo-copy \\
    --option trusted-public-keys '$pub' \\
    $top

Or as a substituter in nix.conf:
  extra-substituters = http://$host:$PORT
  extra-trusted-public-keys = $pub

Stop with Ctrl-C.
EOF
exec "$CAIRN" publish --store "$root/nix/store" --key "$DIR/key.sec" \
  --cache "$DIR/cache" --compression zstd:3,xz:6 --listen "$LISTEN"
