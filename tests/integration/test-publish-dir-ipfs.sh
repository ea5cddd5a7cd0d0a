#!/usr/bin/env bash
# cairn publish --binary-cache DIR --ipfs (issue 15: a trustless gateway in
# publish, blocks cut from the nar files that already exist): a directory
# as `nix copy` writes it (Nix-signed narinfos, xz and zstd nars, no IPFS
# field), served as it is plus:
#   - each narinfo gains `IPFS: <root>` (fastcdc, the root `cairn ipfs add`
#     gives for the item's NAR), single or in a batch, the first time
#     indexed off the event loop; the Nix signature still holds;
#   - /ipfs/ answers raw blocks and CARs decompressed from the nar files;
#     `cairn fetch --ipfs-gateway` takes a closure's bytes from it alone;
#   - a narinfo Guix signed whole, or naming a root of its own, is served
#     byte for byte (the gateway serves the root it names);
#   - with --cache, a restarted server reads its indexes (no NAR cut again);
#   - a nar that is a named pipe, or whose bytes are not its NarHash's: its
#     narinfo is answered, without a field;
#   - --cache without --ipfs is still a usage error.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 xz zstd
publish_require

IPFS_CH=size-1024
. "$SRCDIR/tests/integration/ipfs-lib.sh"

D=$TMP/dir CARS=$TMP/cars
mkdir -p "$D" "$CARS"
printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n' > "$D/nix-cache-info"
ipfs_tree "$TMP/t-lib" 300 1
ipfs_tree "$TMP/t-app" 1500 2
ipfs_tree "$TMP/t-tool" 600 3
LIB=$(ipfs_item "$D" "$CARS" lib-1.0 "$TMP/t-lib")
APP=$(ipfs_item "$D" "$CARS" app-1.0 "$TMP/t-app" "$(basename "$LIB")")
TOOL=$(ipfs_item "$D" "$CARS" tool-1.0 "$TMP/t-tool")
hp() { basename "$1" | cut -c1-32; }
LH=$(hp "$LIB") AH=$(hp "$APP") TH=$(hp "$TOOL")
# as nix copy writes them: no IPFS field, compressed nars (URL and
# Compression are outside Nix's signed fingerprint)
pack() { # HASH METHOD EXT
  "$2" -q -c "$D/nar/$1.nar" > "$D/nar/$1.nar.$3" && rm "$D/nar/$1.nar"
  sed -i -e '/^IPFS: /d' -e "s|^URL: .*|URL: nar/$1.nar.$3|" -e "s|^Compression: .*|Compression: $2|" \
    "$D/$1.narinfo"
}
pack "$LH" xz xz
pack "$AH" zstd zst
# the tool's narinfo names the root size-262144 gives (kubo's CIDs)
sed -i '/^IPFS: /d' "$D/$TH.narinfo"
TOOL_KUBO=$("$CAIRN" ipfs add --chunker size-262144 "$TMP/tool-1.0.nar")
echo "IPFS: $TOOL_KUBO" >> "$D/$TH.narinfo"
cp "$D/$TH.narinfo" "$TMP/tool.narinfo"
# a narinfo Guix signed whole (the field would break it): served as it is
GH=$(ipfs_hashpart guixish)
sed -e "s|^StorePath: .*|StorePath: /nix/store/$GH-guixish|" -e '/^Sig: /d' "$D/$LH.narinfo" > "$D/$GH.narinfo"
echo 'Signature: 1;host;KHNpZ25hdHVyZSk=' >> "$D/$GH.narinfo"
# a nar that is a named pipe
PH=$(ipfs_hashpart piped)
sed -e "s|^StorePath: .*|StorePath: /nix/store/$PH-piped|" -e "s|^URL: .*|URL: nar/$PH.nar|" \
  -e 's|^Compression: .*|Compression: none|' "$D/$LH.narinfo" > "$D/$PH.narinfo"
mkfifo "$D/nar/$PH.nar"
# a nar file whose bytes are not its narinfo's NarHash (one byte changed,
# the size the same): no root is named for it
BH=$(ipfs_hashpart tampered)
python3 - "$TMP/tool-1.0.nar" "$D/nar/$BH.nar" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 1
open(sys.argv[2], "wb").write(bytes(b))
PY
sed -e "s|^StorePath: .*|StorePath: /nix/store/$BH-tampered|" -e "s|^URL: .*|URL: nar/$BH.nar|" \
  -e '/^IPFS: /d' "$TMP/tool.narinfo" > "$D/$BH.narinfo"

LIB_ROOT=$("$CAIRN" ipfs add "$TMP/lib-1.0.nar")
APP_ROOT=$("$CAIRN" ipfs add "$TMP/app-1.0.nar")

rc=0; "$CAIRN" publish --binary-cache "$D" --cache "$TMP/idx" > /dev/null 2>&1 || rc=$?
check "--binary-cache with --cache but no --ipfs: a usage error (2)" test "$rc" = 2

mkdir -p "$TMP/idx"
publish_start --binary-cache "$D" --ipfs --cache "$TMP/idx"
U=$PUBLISH_URL
metric() { curl -s "$U/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

curl -s "$U/$AH.narinfo" > "$TMP/app.narinfo"
check "a narinfo gains the IPFS field: the fastcdc root of its NAR ($APP_ROOT)" \
  grep -qx "IPFS: $APP_ROOT" "$TMP/app.narinfo"
check "  ... and the rest is the file's bytes" \
  bash -c 'diff <(grep -v "^IPFS: " "$1") "$2"' _ "$TMP/app.narinfo" "$D/$AH.narinfo"
check "  ... its Nix signature still holds" \
  bash -c '"$1" narinfo verify --trusted-key "$2" < "$3" > /dev/null' _ "$CAIRN" "$PUB" "$TMP/app.narinfo"
curl -s "$U/narinfos?hashes=$LH" > "$TMP/batch"
check "the batch route: an item not indexed yet gets its field too ($LIB_ROOT)" \
  grep -qx "IPFS: $LIB_ROOT" "$TMP/batch"
check "  ... each item indexed once (2 builds)" test "$(metric cairn_publish_ipfs_index_builds_total)" = 2

curl -s -o "$TMP/app.car" "$U/ipfs/$APP_ROOT?format=car"
check "a CAR of the zstd nar's DAG gives back the NAR" \
  bash -c '"$1" ipfs car --cat "$2" "$3" > /dev/null && cmp -s "$2" "$4"' _ \
  "$CAIRN" "$TMP/app.cat" "$TMP/app.car" "$TMP/app-1.0.nar"
curl -s -o "$TMP/lib.root" "$U/ipfs/$LIB_ROOT?format=raw"
check "a raw block of the xz nar's DAG: the bytes its CID's digest names" python3 -c '
import base64, hashlib, sys
cid = sys.argv[1][1:].upper()
raw = base64.b32decode(cid + "=" * (-len(cid) % 8))
sys.exit(0 if raw[-32:] == hashlib.sha256(open(sys.argv[2], "rb").read()).digest() else 1)' \
  "$LIB_ROOT" "$TMP/lib.root"

# the closure's bytes from publish's gateway alone (narinfos from it too)
rc=0; "$CAIRN" fetch -q --no-cache --json --from "$U" --trusted-key "$PUB" --store "$TMP/s1" \
  --block-cache "$TMP/b1" --closure --ipfs-gateway "$U" "$APP" > "$TMP/j1" 2> "$TMP/e1" || rc=$?
cat "$TMP/e1"
check "fetch: the closure of 2 from the directory's gateway" \
  test "$rc" = 0 -a "$(json "$TMP/j1" "d['fetched']")" = 2 \
  -a "$(json "$TMP/j1" "sorted(i['compression'] for i in d['items'])")" = "['ipfs', 'ipfs']"
check "  ... its files are the trees'" diff -r "$TMP/t-app" "$TMP/s1$APP"
check "  ... no nar file was asked for" bash -c '! grep -q "GET /nar/" "$1"' _ "$PUBLISH_LOG"

curl -s "$U/$TH.narinfo" > "$TMP/tool.got"
check "a narinfo naming a root of its own: served byte for byte" cmp -s "$TMP/tool.got" "$TMP/tool.narinfo"
check "  ... and the gateway serves the root it names (size-262144)" \
  test "$(curl -s -o "$TMP/tool.car" -w '%{http_code}' "$U/ipfs/$TOOL_KUBO?format=car")" = 200
check "  ... whose CAR gives back the NAR" \
  bash -c '"$1" ipfs car --cat "$2" "$3" > /dev/null && cmp -s "$2" "$4"' _ \
  "$CAIRN" "$TMP/tool.cat" "$TMP/tool.car" "$TMP/tool-1.0.nar"
curl -s "$U/$GH.narinfo" > "$TMP/guix.got"
check "a narinfo Guix signed whole: served byte for byte" cmp -s "$TMP/guix.got" "$D/$GH.narinfo"
code=$(curl -s -m 20 -o "$TMP/piped.got" -w '%{http_code}' "$U/$PH.narinfo")
check "a nar that is a named pipe: its narinfo answered ($code), no field" \
  bash -c 'test "$1" = 200 && ! grep -q "^IPFS: " "$2"' _ "$code" "$TMP/piped.got"
check "  ... and the server still answers" \
  test "$(curl -s -m 20 -o /dev/null -w '%{http_code}' "$U/health")" = 200

curl -s "$U/$BH.narinfo" > "$TMP/tampered.got"
check "a nar file that is not its NarHash's: the narinfo served as it is, no root named" \
  cmp -s "$TMP/tampered.got" "$D/$BH.narinfo"
check "  ... and the log says why" grep -q "does not match its NarHash" "$PUBLISH_LOG"

# a restart with the same --cache: the indexes are read, no NAR cut again
check "the first server stops cleanly, no memory error" publish_stop
publish_start --binary-cache "$D" --ipfs --cache "$TMP/idx"
U=$PUBLISH_URL
curl -s "$U/narinfos?hashes=$AH,$LH" > "$TMP/batch2"
check "restarted: the fields are back" \
  bash -c 'grep -qx "IPFS: $2" "$1" && grep -qx "IPFS: $3" "$1"' _ "$TMP/batch2" "$APP_ROOT" "$LIB_ROOT"
check "  ... from the kept indexes (0 builds)" test "$(metric cairn_publish_ipfs_index_builds_total)" = 0
check "the restarted server stops cleanly, no memory error" publish_stop

finish
