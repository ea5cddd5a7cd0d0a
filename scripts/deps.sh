#!/bin/sh
# Install the Debian 12 packages cairn needs that are missing.  Quiet when
# everything is there.  Usage: scripts/deps.sh [build|run|test|bench]
set -e
build="meson ninja-build pkg-config gcc clang libsodium-dev libgcrypt20-dev
libcurl4-openssl-dev libzstd-dev liblzma-dev liblz-dev zlib1g-dev libbz2-dev
libsqlite3-dev libh2o-evloop-dev libcmocka-dev"
run="$build nix-bin curl"
test="$build nix-bin sqlite3 strace nginx curl xz-utils zstd bzip2 lzip gzip python3 libclang-rt-14-dev llvm
man-db systemd nodejs chromium diffoscope-minimal"
bench="$test hyperfine wrk varnish"
case "${1:-build}" in
  build) want=$build ;;
  run) want=$run ;;
  test) want=$test ;;
  bench) want=$bench ;;
  *) echo "usage: $0 [build|run|test|bench]" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# Debian packages npm apart from nodejs; NodeSource's nodejs holds it
case " $want " in
  *" nodejs "*) command -v npm >/dev/null 2>&1 || missing="$missing npm" ;;
esac
if [ -n "$missing" ]; then
  echo "installing:$missing" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The IPFS implementations the interop test checks cairn against, exactly
# as tests/npm/package-lock.json pins them.
case "${1:-build}" in
  test|bench)
    npmdir=$(dirname "$0")/../tests/npm
    # again whenever the lockfile changed since the last install
    if ! cmp -s "$npmdir/package-lock.json" "$npmdir/node_modules/.cairn-installed" 2>/dev/null; then
      (cd "$npmdir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null &&
        cp package-lock.json node_modules/.cairn-installed)
    fi ;;
esac
