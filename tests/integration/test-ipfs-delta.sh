#!/usr/bin/env bash
# Delta downloads through the DAG a server serves (issue 15, case b): a
# store built by the real Nix holds v1 and v2 of an item (v2: 100 bytes
# inserted in one file, 4 KiB overwritten in another, a file added);
# `cairn publish --ipfs` serves both; `cairn fetch --ipfs-gateway` of v2
# into a store that holds v1 seeds its block cache from v1 and asks the
# gateway only for the chunks that changed:
#   - with the default chunker (fastcdc) the gateway's bytes are at most a
#     quarter of v2's zstd NAR, and v2's files are right;
#   - with --ipfs-chunker size-262144 (kubo's CIDs) the insertion moves
#     every later cut, so most of v2 is asked for: why fastcdc is served;
#   - `--seed PATH` (v1's tree, or its .nar) does the same for a store that
#     does not hold v1.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless python3 zstd
publish_require
nix_lib_init

pstore_init "$TMP/src"
# 4 files of 2 MiB (random: zstd does not shrink them, so the NAR's zstd
# size is about its size).  Pseudo-random from a fixed seed: where FastCDC
# cuts depends on the bytes, and the bytes a change costs with them (a
# changed chunk is 64 KiB to 1 MiB); fresh random bytes on every run made
# the quarter below a draw that CI lost once (2,470,632 > 2,100,094).
# DELTA_SEED picks other bytes by hand: seeds 1 to 10 cost 1,369,853 to
# 1,882,694 bytes (0.16 to 0.22 of the zstd NAR); seed 1, 1,381,006.
python3 - "$TMP" "${DELTA_SEED:-1}" << 'PY'
import os, random, sys
t, r = sys.argv[1], random.Random(int(sys.argv[2]))
os.makedirs(os.path.join(t, "v1"))
for i in range(4):
    open(os.path.join(t, "v1", "data-%d" % i), "wb").write(r.randbytes(2 << 20))
open(os.path.join(t, "v1", "README"), "w").write("version 1\n")
os.system("cp -r '%s/v1' '%s/v2'" % (t, t))
v2 = os.path.join(t, "v2")
p = os.path.join(v2, "data-1"); b = open(p, "rb").read()
open(p, "wb").write(b[:len(b) // 2] + r.randbytes(100) + b[len(b) // 2:])
p = os.path.join(v2, "data-2"); b = bytearray(open(p, "rb").read())
b[len(b) // 3:len(b) // 3 + 4096] = r.randbytes(4096)
open(p, "wb").write(bytes(b))
open(os.path.join(v2, "NEWS"), "wb").write(r.randbytes(10240))
open(os.path.join(v2, "README"), "w").write("version 2\n")
PY

# build NAME SRC: an item NAME whose files are SRC's (the build reads the
# host directory: no sandbox in these tests); prints its store path
build() {
  cat > "$TMP/$1.nix" << EOF
derivation {
  name = "delta-app-1.0";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  src = "$2";
  args = [ "-c" "mkdir \$out && cp -r \$src/. \$out/" ];
}
EOF
  nix-build --store "$(pstore_uri "$TMP/src")" --no-out-link --quiet "$TMP/$1.nix"
}
if ! V1=$(build v1 "$TMP/v1") || ! V2=$(build v2 "$TMP/v2"); then
  not_ok "nix-build builds v1 and v2"
  finish
  exit 1
fi
nix-store --dump "$V2" > "$TMP/v2.nar"
zs=$(zstd -3 -T1 -q -c "$TMP/v2.nar" | wc -c)

"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" delta-test-1
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

# delta TAG [publish options...]: v1 into a fresh store (its nar), then v2
# through the gateway; sets BYTES (the gateway's body bytes for v2)
delta() {
  local tag=$1; shift
  publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs "$@" ||
    { finish; exit 1; }
  local f=("$CAIRN" fetch -q --no-cache --json --from "$PUBLISH_URL" --trusted-key "$TMP/k.pub"
    --store "$TMP/t-$tag" --store-dir "$NIX_STORE_DIR" --db "$TMP/t-$tag.db")
  "${f[@]}" "$V1" > /dev/null
  rc=0
  "${f[@]}" --ipfs-gateway "$PUBLISH_URL" --block-cache "$TMP/b-$tag" "$V2" > "$TMP/j-$tag" \
    2> "$TMP/e-$tag" || rc=$?
  cat "$TMP/e-$tag"
  publish_stop
  BYTES=$(json "$TMP/j-$tag" "d['ipfs']['bytes']")
  check "$tag: v2 fetched through the gateway, v1 in the store" \
    test "$rc" = 0 -a "$(json "$TMP/j-$tag" "d['items'][0]['compression']")" = ipfs
  check "$tag: ... the block cache seeded from v1 ($(json "$TMP/j-$tag" "d['ipfs']['seeded']") leaves)" \
    test "$(json "$TMP/j-$tag" "d['ipfs']['seeded']")" -gt 0
  check "$tag: ... v2's files are right" diff -r "$TMP/v2" "$TMP/t-$tag$V2"
}

delta fastcdc
check "fastcdc (the default): $BYTES bytes from the gateway, at most a quarter of v2's zstd NAR ($zs)" \
  test "$BYTES" -le $((zs / 4))
delta size-262144 --ipfs-chunker size-262144
check "size-262144: $BYTES bytes, more than a quarter ($zs): the insertion moved every later cut" \
  test "$BYTES" -gt $((zs / 4))

# --seed PATH: v2 into an empty store, v1 given as a tree, then as a .nar
# file, each with an empty block cache; without it, everything is asked
nix-store --dump "$V1" > "$TMP/v1.nar"
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs || { finish; exit 1; }
n=0
for seed in "$TMP/v1" "$TMP/v1.nar" ""; do
  n=$((n + 1))
  rc=0
  "$CAIRN" fetch -q --no-cache --json --from "$PUBLISH_URL" --trusted-key "$TMP/k.pub" \
    --store "$TMP/sd-$n" --store-dir "$NIX_STORE_DIR" --db "$TMP/sd-$n.db" \
    --ipfs-gateway "$PUBLISH_URL" --block-cache "$TMP/bs-$n" ${seed:+--seed "$seed"} "$V2" \
    > "$TMP/js-$n" 2> "$TMP/es-$n" || rc=$?
  cat "$TMP/es-$n"
  b=$(json "$TMP/js-$n" "d['ipfs']['bytes']")
  if [ -n "$seed" ]; then
    check "--seed $(basename "$seed"): v2 into an empty store in $b bytes from the gateway, at most a quarter of its zstd NAR ($zs)" \
      test "$rc" = 0 -a "$(json "$TMP/js-$n" "d['ipfs']['seeded']")" -gt 0 -a "$b" -le $((zs / 4))
  else
    check "no --seed: v2 into an empty store costs $b bytes, more than a quarter ($zs)" \
      test "$rc" = 0 -a "$b" -gt $((zs / 4))
  fi
  check "  ... v2's files are right" diff -r "$TMP/v2" "$TMP/sd-$n$V2"
done
publish_stop

# Text (it compresses): fetch asks for CARs with Accept-Encoding, so the
# gateway's bytes on the wire are compressed; a leaf missing alone comes as
# a one-block CAR (dag-scope=block), compressed too, not as a raw block
# (sent as it is hashed).  Fixed 64 KiB blocks, so that the 10 bytes
# changed in place make exactly one leaf missing.
mkdir -p "$TMP/c1"
for i in 0 1 2 3; do words_text "$TMP/c1/doc-$i.txt" 1048576 $((7 + i)); done
cp -r "$TMP/c1" "$TMP/c2"
python3 - "$TMP/c2/doc-2.txt" << 'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
b[300000:300010] = b"0123456789"
open(p, "wb").write(bytes(b))
PY
if ! C1=$(build c1 "$TMP/c1") || ! C2=$(build c2 "$TMP/c2"); then
  not_ok "nix-build builds the text items"
  finish
  exit 1
fi
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs \
  --ipfs-chunker size-65536 --access-log "$TMP/acc-text" || { finish; exit 1; }
f=("$CAIRN" fetch -q --no-cache --json --from "$PUBLISH_URL" --trusted-key "$TMP/k.pub"
  --store "$TMP/t-text" --store-dir "$NIX_STORE_DIR" --db "$TMP/t-text.db"
  --ipfs-gateway "$PUBLISH_URL" --block-cache "$TMP/b-text")
rc1=0; "${f[@]}" "$C1" > "$TMP/j-text1" || rc1=$?
: > "$TMP/acc-text"
rc2=0; "${f[@]}" "$C2" > "$TMP/j-text2" || rc2=$?
root2=$(curl -sf "$PUBLISH_URL/$(basename "$C2" | cut -c1-32).narinfo" | sed -n 's/^IPFS: //p')
publish_stop
n1=$(json "$TMP/j-text1" "d['items'][0]['narSize']")
b1=$(json "$TMP/j-text1" "d['ipfs']['bytes']")
z1=$(nix-store --dump "$C1" | zstd -3 -T1 -q -c | wc -c)
check "text: fetched through the gateway in $b1 bytes on the wire, about its zstd NAR ($z1), not its NAR ($n1): compressed CARs" \
  test "$rc1" = 0 -a "$(json "$TMP/j-text1" "d['items'][0]['compression']")" = ipfs \
  -a "$b1" -lt $((z1 * 5 / 4))
check "  ... its files are right" diff -r "$TMP/c1" "$TMP/t-text$C1"
check "text v2 over v1: fetched through the gateway, files right" \
  bash -c 'test "$0" = 0 && diff -r "$1" "$2"' "$rc2" "$TMP/c2" "$TMP/t-text$C2"
check "  ... the one leaf that changed came as a one-block CAR ($(json "$TMP/j-text2" "d['ipfs']['bytes']") bytes), no block raw but the root" \
  bash -c 'grep -q "format=car&dag-scope=block" "$0" &&
    ! grep "format=raw" "$0" | grep -v "/ipfs/$1?" | grep -q .' "$TMP/acc-text" "$root2"
finish
