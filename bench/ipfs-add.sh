#!/usr/bin/env bash
# bench/ipfs-add.sh - how fast a NAR becomes IPFS blocks: `cairn ipfs add`
# (fixed-size, the importer's mode, and FastCDC) against
# ipfs-unixfs-importer under Node (tests/npm, the same settings as
# test-ipfs-interop.sh, blocks kept in a MemoryBlockstore) and against
# `zstd -3` (what publish does to the same bytes today) and sha256sum.
#
#   bench/ipfs-add.sh CAIRN [DIR [MIB]]
#
# The NAR is `cairn nar dump DIR` (default /usr/lib/x86_64-linux-gnu: real
# binaries and libraries), cut to its first MIB MiB (default 200), in
# /dev/shm so the disk is not measured.  Needs hyperfine, node (run
# scripts/deps.sh test first), zstd.  Prints hyperfine's Markdown table;
# MB/s = MIB * 1.048576 / seconds.
set -euo pipefail
CAIRN=$(realpath "${1:?usage: bench/ipfs-add.sh CAIRN [DIR [MIB]]}")
DIR=${2:-/usr/lib/x86_64-linux-gnu}
MIB=${3:-200}
cd "$(dirname "$0")/.."
npm=$PWD/tests/npm
W=$(mktemp -d /dev/shm/cairn-ipfs-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$CAIRN" nar dump "$DIR" 2>/dev/null | head -c $((MIB << 20)) > "$W/nar" || true
echo "NAR: $(stat -c %s "$W/nar") bytes from $DIR" >&2
hyperfine -N -w 1 -r "${RUNS:-5}" --export-markdown "$W/table.md" \
  "$CAIRN ipfs add --chunker size-262144 $W/nar" \
  "$CAIRN ipfs add --chunker fastcdc $W/nar" \
  "node $npm/importer.mjs 262144 $W/nar" \
  "zstd -3 -T1 -q -c -f $W/nar -o /dev/null" \
  "sha256sum $W/nar" >&2
cat "$W/table.md"
