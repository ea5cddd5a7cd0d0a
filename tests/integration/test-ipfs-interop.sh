#!/usr/bin/env bash
# cairn's IPFS encoding against the implementation Helia and js-ipfs use,
# installed from the npm registry (tests/npm, pinned by its lockfile; CI
# installs it with scripts/deps.sh test):
#   - `cairn ipfs add --chunker size-N` prints the root CID that
#     ipfs-unixfs-importer computes with raw leaves, CIDv1, that fixed-size
#     chunker and 174 links a node, for 0 B, 1 B, one chunk, one chunk + 1,
#     a file of more than 174 chunks (two levels), 50 MiB, a real NAR, and
#     with small chunks trees of three levels;
#   - a CAR cairn writes (fixed-size and FastCDC) is read by @ipld/car and
#     ipfs-unixfs-exporter back to the same bytes; a CAR the importer's
#     blocks make is read back by `cairn ipfs car --cat`;
#   - a CAR with a wrong block or cut short is refused.
. "$SRCDIR/tests/integration/lib.sh"
skip_unless node npm

npmdir=$SRCDIR/tests/npm
npm_modules || exit 1

# same_cid DESCRIPTION CHUNK-SIZE FILE: cairn and the importer agree
same_cid() {
  local what=$1 size=$2 file=$3 ours theirs
  ours=$("$CAIRN" ipfs add --chunker "size-$size" "$file")
  theirs=$(node "$npmdir/importer.mjs" "$size" "$file")
  if [ -n "$ours" ] && [ "$ours" = "$theirs" ]; then
    ok "$what, size-$size: $ours"
  else
    not_ok "$what, size-$size: cairn '$ours', importer '$theirs'"
  fi
}

# deterministic pseudo-random bytes (incompressible, repeatable)
gen() { python3 -c "import random,sys; random.seed($2); sys.stdout.buffer.write(random.randbytes($1))"; }

: > "$TMP/empty"
gen 1 1 > "$TMP/one"
gen 262144 2 > "$TMP/chunk"
gen 262145 3 > "$TMP/chunk1"
gen 1024 4 > "$TMP/small"
gen 1025 5 > "$TMP/small1"
gen $((175 * 1024 + 7)) 6 > "$TMP/wide"      # 176 chunks of 1 KiB: two levels
gen $((174 * 174 + 1)) 7 > "$TMP/deep"       # 1-byte chunks: three levels
gen $((174 * 174)) 8 > "$TMP/full"           # exactly a full two-level tree
gen $((50 << 20)) 9 > "$TMP/fifty"           # 200 chunks of 256 KiB
nar=$VECTORS_DIR/nix/trees/t07-large.nar

for f in empty one chunk chunk1 wide fifty; do same_cid "$f" 262144 "$TMP/$f"; done
same_cid "a real NAR (t07-large)" 262144 "$nar"
for f in empty one small small1 chunk wide; do same_cid "$f" 1024 "$TMP/$f"; done
same_cid "a real NAR (t07-large)" 1024 "$nar"
for f in deep full; do same_cid "$f" 1 "$TMP/$f"; done

check "an empty file is the empty raw block" \
  test "$("$CAIRN" ipfs add --chunker size-262144 "$TMP/empty")" = \
  bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku

# --nar: the NAR of a path is what `cairn nar dump` writes
mkdir -p "$TMP/tree/sub"
cp "$TMP/chunk1" "$TMP/tree/sub/data"
printf 'hello\n' > "$TMP/tree/a"
"$CAIRN" nar dump "$TMP/tree" > "$TMP/tree.nar"
same_cid "a NAR cairn dumped" 1024 "$TMP/tree.nar"
check "add --nar PATH is the CID of its NAR" \
  test "$("$CAIRN" ipfs add --nar --chunker size-1024 "$TMP/tree")" = \
  "$("$CAIRN" ipfs add --chunker size-1024 "$TMP/tree.nar")"
check "stdin gives the same CID as the file" \
  test "$("$CAIRN" ipfs add < "$TMP/chunk1" -)" = "$("$CAIRN" ipfs add "$TMP/chunk1")"

# cairn's CARs, read by @ipld/car and ipfs-unixfs-exporter; in the order
# a served CAR has (car-check.py: the root first, every block after a
# block that links to it, depth first, each once), so that a streaming
# reader can verify each block as it comes
head -c $((3 << 18)) /dev/zero > "$TMP/zeros"   # equal chunks: each sent once
for spec in size-1024 size-262144 fastcdc; do
  for f in empty one wide fifty zeros; do
    root=$("$CAIRN" ipfs add --chunker $spec --car "$TMP/$f.$spec.car" "$TMP/$f")
    got=$(node "$npmdir/readcar.mjs" "$TMP/$f.$spec.car" "$TMP/$f.$spec.out" 2>&1) || true
    if [ "$got" = "$root" ] && cmp -s "$TMP/$f" "$TMP/$f.$spec.out"; then
      ok "$spec CAR of $f read by @ipld/car + exporter"
    else
      not_ok "$spec CAR of $f read by @ipld/car + exporter: root $root, got '$got'"
    fi
    n=$(python3 "$SRCDIR/tests/integration/car-check.py" "$TMP/$f.$spec.car" "$root" 2>&1) &&
      ok "$spec CAR of $f: parents first, depth first, each block once ($n blocks)" ||
      not_ok "$spec CAR of $f: not in DFS order: $n"
    rm -f "$TMP/$f.$spec.out"
  done
done
check "no temporary file is left next to a CAR" \
  test -z "$(find "$TMP" -name '*.tmp.*')"
check "add --car from stdin: the CAR of the file (stdin kept for the second pass)" \
  bash -c '"$1" ipfs add --chunker size-1024 --car "$2" - < "$3" > /dev/null && cmp -s "$2" "$4"' \
  _ "$CAIRN" "$TMP/stdin.car" "$TMP/wide" "$TMP/wide.size-1024.car"
check "... and nothing of stdin is left behind" test -z "$(find "$TMP" -name '*.in.*')"

# the importer's CAR, read by cairn
theirs=$(node "$npmdir/importer.mjs" 1024 "$TMP/wide" "$TMP/theirs.car")
check "cairn reads the importer's CAR: its root" \
  grep -qx "root $theirs" <("$CAIRN" ipfs car "$TMP/theirs.car")
check "cairn ipfs car --cat rebuilds the importer's file" \
  "$CAIRN" ipfs car --cat "$TMP/theirs.out" "$TMP/theirs.car"
check "the rebuilt file is the original" cmp -s "$TMP/wide" "$TMP/theirs.out"
check "car --cat - writes the file on stdout" \
  cmp -s "$TMP/wide" <("$CAIRN" ipfs car --cat - "$TMP/theirs.car" 2>/dev/null)

# hostile CARs: a flipped byte in a block, a cut-short file, a missing block
car=$TMP/wide.size-1024.car
size=$(stat -c %s "$car")
cp "$car" "$TMP/flip.car"
printf '\xff' | dd of="$TMP/flip.car" bs=1 seek=$((size / 2)) conv=notrunc status=none
check "a CAR with a wrong block is refused" \
  bash -c '! "$1" ipfs car "$2" 2>"$3" && grep -q "does not hash to" "$3"' _ "$CAIRN" "$TMP/flip.car" "$TMP/flip.err"
head -c $((size - 10)) "$car" > "$TMP/cut.car"
check "a CAR cut short is refused" \
  bash -c '! "$1" ipfs car "$2" 2>"$3" && grep -q "cut short" "$3"' _ "$CAIRN" "$TMP/cut.car" "$TMP/cut.err"
# the root is the first section after the 59-byte header
python3 - "$car" "$TMP/hole.car" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
h = 1 + b[0]
n, shift, i = 0, 0, h
while True:
    c = b[i]; n |= (c & 0x7f) << shift; i += 1; shift += 7
    if c < 0x80: break
open(sys.argv[2], 'wb').write(b[:h] + b[i + n:])
PY
check "a CAR that lacks a block of the file is read but not rebuilt" \
  bash -c '"$1" ipfs car "$2" >/dev/null && ! "$1" ipfs car --cat "$3" "$2" 2>/dev/null' _ "$CAIRN" "$TMP/hole.car" "$TMP/hole.out"
check "a file that cannot be rebuilt leaves nothing behind" \
  test -z "$(find "$TMP" -name 'hole.out*')"
finish
