#!/usr/bin/env bash
# bench/before-after.sh BEFORE_BUILD AFTER_BUILD [OUT]: run bench/fetch.sh,
# weather.sh, publish.sh and mirror.sh once with each build's cairn, in
# that order, alternating before and after for each script so that both
# see the same machine; each script also runs its anchor (Nix, curl,
# nginx, Varnish) in the same run, so compare the cairn/anchor ratios,
# which travel better across a noisy shared machine than raw figures.
# Every table goes to OUT (default /tmp/cairn-before-after) as
# SCRIPT-before.md and SCRIPT-after.md.  Smaller sizes than the scripts'
# defaults keep the whole run near a quarter of an hour on 2 cores.
set -euo pipefail
B=$(realpath "${1:?usage: bench/before-after.sh BEFORE_BUILD AFTER_BUILD [OUT]}")
A=$(realpath "${2:?usage: bench/before-after.sh BEFORE_BUILD AFTER_BUILD [OUT]}")
OUT=${3:-/tmp/cairn-before-after}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export BENCH_DIR=${BENCH_DIR:-/dev/shm/cairn-ba-fetch}
for side in before after; do
  build=$B; [ $side = after ] && build=$A
  echo "== fetch ($side)" >&2
  bench/fetch.sh "$build/src/cairn" "${FETCH_PATHS:-100}" "${FETCH_KIB:-512}" zstd xz >"$OUT/fetch-$side.md"
done
for side in before after; do
  build=$B; [ $side = after ] && build=$A
  echo "== weather ($side)" >&2
  bench/weather.sh -n "${WEATHER_PATHS:-5000}" -r 3 -c "$build/src/cairn" >"$OUT/weather-$side.md"
done
for side in before after; do
  build=$B; [ $side = after ] && build=$A
  echo "== publish ($side)" >&2
  bench/publish.sh -n 3 -s "${PUBLISH_MIB:-128}" -c "$build/src/cairn" >"$OUT/publish-$side.md"
done
for side in before after; do
  build=$B; [ $side = after ] && build=$A
  echo "== mirror ($side)" >&2
  ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-2} bench/mirror.sh "$build" >"$OUT/mirror-$side.md"
done
echo "tables in $OUT" >&2
