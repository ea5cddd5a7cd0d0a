#!/usr/bin/env bash
# The trustless IPFS gateway of `cairn publish --ipfs` (issue 15, "Serving"),
# on a store built by the real Nix, checked by IPFS code that is not cairn's
# (@ipld/car, ipfs-unixfs-exporter from tests/npm) and by car-check.py:
#   - with --ipfs-chunker size-262144 the narinfo names the root CID
#     `cairn ipfs add --chunker size-262144` gives the item's NAR (that is
#     ipfs-unixfs-importer's: test-ipfs-interop); without --ipfs the
#     narinfo has no IPFS field; in the Guix dialect it is under the
#     signature (libgcrypt, as Guix checks);
#   - ?format=raw and Accept: application/vnd.ipld.raw: one block whose bytes
#     hash to its CID (a node, a chunk); HEAD gives its length;
#   - ?format=car: the whole DAG, parents before children, each block once,
#     read back to the NAR byte for byte; zstd and gzip when accepted;
#     dag-scope=block the root alone; entity-bytes ranges read back by the
#     exporter; a sub-DAG's CID gives that part;
#   - unknown CIDs 404, bafkqaaa answered, immutable caching headers, 406
#     without a format, 400 for a bad CID;
#   - Helia's @helia/verified-fetch gets ipfs://<root> from publish and from
#     the mirror as its trustless gateway: bytes whose SHA-256 is NarHash;
#   - a chunk changed on disk after indexing is never sent; an item changed
#     before it is indexed gets no root (checked against NarHash) and is
#     withdrawn;
#   - `cairn mirror --ipfs` in front (its own chunker fastcdc, the
#     upstream's size-262144): narinfos unchanged, blocks of an item once
#     its (zstd) nar is cached, the same DAG and bytes as publish's;
#   - the default chunker, fastcdc: the field is the NAR's fastcdc root,
#     chunks of varying sizes served from their offsets (CAR, ranges,
#     verified-fetch); mirrors with fastcdc or size-65536 serve that DAG;
#   - an upstream chunker a mirror has not (size-65536): the mirror's Nix
#     narinfo names the root the mirror serves; a Guix-signed one is left
#     as signed (and the operator told).
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
skip_unless curl python3 node npm zstd gzip
CARBLOCKS=$SRCDIR/tests/integration/car-blocks.py
publish_require
nix_lib_init

npmdir=$SRCDIR/tests/npm
npm_modules || exit 1
carcheck=$SRCDIR/tests/integration/car-check.py

pstore_init "$TMP/src"
# big: 46 MiB of random bytes, 185 chunks: a two-level DAG; mid: a few
# chunks; one: a NAR of one chunk, whose root is that raw block
if ! big=$(pstore_build "$TMP/src" 1 big $((46 << 20))) ||
  ! mid=$(pstore_build "$TMP/src" 1 mid 900000) ||
  ! one=$(pstore_build "$TMP/src" 1 one 1000) ||
  ! cdc=$(pstore_build "$TMP/src" 1 cdc $((6 << 20))); then
  not_ok "nix-build builds the items"
  finish
  exit 1
fi

publish_start "${PSTORE_ARGS[@]}" --compression zstd || { finish; exit 1; }
plain=$(curl -sf "$PUBLISH_URL/$(basename "$mid" | cut -c1-32).narinfo")
check "without --ipfs the narinfo has no IPFS field" test -n "$plain" -a -z "$(narinfo_field "$plain" IPFS)"
check "without --ipfs there is no /ipfs/ route" \
  test "$(curl -s -o /dev/null -w '%{http_code}' "$PUBLISH_URL/ipfs/bafkqaaa?format=raw")" = 404
publish_stop

"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" gw-test-1
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs --ipfs-chunker size-262144 ||
  { finish; exit 1; }
U=$PUBLISH_URL

# root_of PATH: the IPFS field of PATH's narinfo; checked against cairn ipfs add
declare -A ROOT
for name in big mid one; do
  path=${!name}
  nix-store --dump "$path" > "$TMP/$name.nar"
  ni=$(curl -sf -D "$TMP/$name.h1" "$U/$(basename "$path" | cut -c1-32).narinfo")
  ROOT[$name]=$(narinfo_field "$ni" IPFS)
  want=$("$CAIRN" ipfs add --chunker size-262144 "$TMP/$name.nar")
  check "$name: the narinfo's IPFS field is the root of its NAR ($want)" test "${ROOT[$name]}" = "$want"
done
check "a one-chunk NAR's root is a raw block" test "${ROOT[one]:0:4}" = bafk
check "with --ipfs the narinfo is otherwise the same" \
  test "$(grep -v '^\(IPFS\|Sig\): ' <<< "$(curl -sf "$U/$(basename "$mid" | cut -c1-32).narinfo")")" = "$plain"

# cid_digest CID: the hex SHA-256 digest a sha2-256 CIDv1 names
cid_digest() {
  python3 -c 'import base64,sys; s=sys.argv[1][1:].upper(); b=base64.b32decode(s+"="*(-len(s)%8)); print(b[4:].hex())' "$1"
}
blockcheck() { # NAME FILE CID: FILE hashes to CID
  check "$1" test "$(sha256sum < "$2" | cut -d' ' -f1)" = "$(cid_digest "$3")"
}

# raw blocks
r=${ROOT[big]}
curl -sf -D "$TMP/h1" -o "$TMP/root.blk" "$U/ipfs/$r?format=raw"
blockcheck "?format=raw: the root node hashes to its CID" "$TMP/root.blk" "$r"
check "raw: Content-Type application/vnd.ipld.raw" grep -qi '^content-type: application/vnd.ipld.raw' "$TMP/h1"
check "raw: immutable" grep -qi '^cache-control: public, max-age=29030400, immutable' "$TMP/h1"
check "raw: nosniff" grep -qi '^x-content-type-options: nosniff' "$TMP/h1"
check "raw: an Etag naming the CID" grep -qi "^etag: \"$r.raw\"" "$TMP/h1"
check "If-None-Match of that Etag: 304" \
  test "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: \"$r.raw\"" "$U/ipfs/$r?format=raw")" = 304
r1=${ROOT[one]}
curl -sf -H 'Accept: application/vnd.ipld.raw' -o "$TMP/one.blk" "$U/ipfs/$r1"
blockcheck "Accept: application/vnd.ipld.raw: a chunk hashes to its CID" "$TMP/one.blk" "$r1"
check "a one-chunk NAR's block is the NAR" cmp -s "$TMP/one.blk" "$TMP/one.nar"
check "HEAD of a chunk: its length, no body" \
  bash -c 'curl -sfI "$1" | tr -d "\r" | grep -qix "content-length: $2"' _ "$U/ipfs/$r1?format=raw" "$(stat -c %s "$TMP/one.nar")"

# a chunk inside the big DAG: the CAR names them; one from the middle
curl -sf -o "$TMP/big.car" "$U/ipfs/$r?format=car"
n=$(python3 "$carcheck" "$TMP/big.car" "$r" 2>&1)
chunks=$(( ($(stat -c %s "$TMP/big.nar") + 262143) / 262144 ))
check "the CAR of a two-level DAG: parents first, depth first, each block once, all verified ($n blocks)" \
  test "$n" = $((chunks + 2 + 1))
got=$(node "$npmdir/readcar.mjs" "$TMP/big.car" "$TMP/big.out" 2>&1) || true
check "@ipld/car + exporter read the CAR back to the NAR, byte for byte" \
  bash -c '[ "$1" = "$2" ] && cmp -s "$3" "$4"' _ "$got" "$r" "$TMP/big.out" "$TMP/big.nar"
leaf=$(python3 "$CARBLOCKS" "$TMP/big.car" | awk '$2 == "raw" && ++k == 100 {print $1}')
curl -sf -o "$TMP/leaf.blk" "$U/ipfs/$leaf?format=raw"
blockcheck "the 100th chunk of the big NAR, as a raw block, hashes to its CID" "$TMP/leaf.blk" "$leaf"
check "... and is bytes 99*256Ki.. of the NAR" \
  cmp -s "$TMP/leaf.blk" <(tail -c +$((99 * 262144 + 1)) "$TMP/big.nar" | head -c 262144)

curl -sf -D "$TMP/h2" -H 'Accept: application/vnd.ipld.car' -o "$TMP/mid.car" "$U/ipfs/${ROOT[mid]}"
check "Accept: application/vnd.ipld.car: a CAR, dfs, no dups" \
  grep -qi '^content-type: application/vnd.ipld.car; version=1; order=dfs; dups=n' "$TMP/h2"
check "car: Content-Disposition names the CID" grep -qi "^content-disposition: attachment; filename=\"${ROOT[mid]}.car\"" "$TMP/h2"
got=$(node "$npmdir/readcar.mjs" "$TMP/mid.car" "$TMP/mid.out" 2>&1) || true
check "the CAR of a few chunks reads back to the NAR" cmp -s "$TMP/mid.out" "$TMP/mid.nar"
curl -sf -H 'Accept-Encoding: zstd' -D "$TMP/h3" -o "$TMP/mid.car.zst" "$U/ipfs/${ROOT[mid]}?format=car"
check "Accept-Encoding: zstd gives Content-Encoding: zstd" grep -qi '^content-encoding: zstd' "$TMP/h3"
check "... and the same CAR once decompressed" cmp -s "$TMP/mid.car" <(zstd -dc "$TMP/mid.car.zst")
curl -sf -H 'Accept-Encoding: gzip;q=1, zstd;q=0' -D "$TMP/h4" -o "$TMP/mid.car.gz" "$U/ipfs/${ROOT[mid]}?format=car"
check "gzip when zstd is refused (q=0)" grep -qi '^content-encoding: gzip' "$TMP/h4"
check "... the same CAR" cmp -s "$TMP/mid.car" <(gzip -dc "$TMP/mid.car.gz")
curl -sf -o "$TMP/one.car" "$U/ipfs/${ROOT[one]}?format=car"
check "HEAD of a CAR: 200, its Content-Type, no body" \
  bash -c 'curl -sfI "$1" -o "$2" && grep -qi "^content-type: application/vnd.ipld.car" "$2" &&
    test "$(curl -s -I -w "%{size_download}" -o /dev/null "$1")" = 0' _ "$U/ipfs/${ROOT[mid]}?format=car" "$TMP/hcar"
check "HEAD of a node's raw block: its length" \
  bash -c 'curl -sfI "$1" | tr -d "\r" | grep -qix "content-length: $2"' _ "$U/ipfs/$r?format=raw" "$(stat -c %s "$TMP/root.blk")"
check "the CAR of a one-chunk NAR is that block" test "$(python3 "$carcheck" "$TMP/one.car" "${ROOT[one]}")" = 1

curl -sf -o "$TMP/block.car" "$U/ipfs/$r?format=car&dag-scope=block"
check "dag-scope=block: the root alone" test "$(python3 "$carcheck" "$TMP/block.car" "$r" --partial)" = 1
curl -sf -o "$TMP/entity.car" "$U/ipfs/$r?format=car&dag-scope=entity"
check "dag-scope=entity of a file: all of it" cmp -s "$TMP/entity.car" "$TMP/big.car"

# entity-bytes: the exporter reads the range from just the blocks sent
range() { # FROM TO [EXPECTED-BLOCKS]: entity-bytes=FROM:TO of the big NAR
  local f=$1 t=$2 url="${RBASE:-$U}/ipfs/$r?format=car&entity-bytes=$1:$2" lo hi nar=${RNAR:-$TMP/big.nar}
  curl -sf -o "$TMP/range.car" "$url"
  local nb
  nb=$(python3 "$carcheck" "$TMP/range.car" "$r" --partial 2>&1)
  size=$(stat -c %s "$nar")
  lo=$f; [ "$lo" -lt 0 ] && lo=$((size + lo))
  if [ "$t" = '*' ]; then hi=$((size - 1)); elif [ "$t" -lt 0 ]; then hi=$((size + t)); else hi=$t; fi
  node "$npmdir/readrange.mjs" "$TMP/range.car" "$lo" "$hi" "$TMP/range.out" > /dev/null 2>&1
  if cmp -s "$TMP/range.out" <(tail -c +$((lo + 1)) "$nar" | head -c $((hi - lo + 1))) &&
    { [ -z "${3:-}" ] || [ "$nb" = "$3" ]; }; then
    ok "${RBASE:+mirror: }entity-bytes=$f:$t: the exporter reads the range from $nb blocks"
  else
    not_ok "${RBASE:+mirror: }entity-bytes=$f:$t: blocks '$nb' (want ${3:-any}), range differs"
  fi
}
range 0 0 3                       # root, first subtree node, first chunk
range 262143 262144 4             # two chunks
range $((180 * 262144)) '*'       # across the second subtree
range -1 '*' 3                    # the last byte: root, second node, last chunk
range 1000000 -1000000

# a sub-DAG: the first interior node names chunks 0..173
sub=$(python3 "$CARBLOCKS" "$TMP/big.car" | awk '$2 == "dag-pb" && ++k == 2 {print $1}')
curl -sf -o "$TMP/sub.car" "$U/ipfs/$sub?format=car"
node "$npmdir/readcar.mjs" "$TMP/sub.car" "$TMP/sub.out" > /dev/null 2>&1
check "a sub-DAG's CAR reads back to its 174 chunks of the NAR" \
  cmp -s "$TMP/sub.out" <(head -c $((174 * 262144)) "$TMP/big.nar")

# Helia's @helia/verified-fetch (npm, not cairn) takes publish as its
# trustless gateway: the bytes it verified are the NarHash's
# helia_fetch NAME GATEWAY PATH: ipfs://<root of PATH> through GATEWAY
helia_fetch() {
  local what=$1 gw=$2 path=$3 ni cid want got
  ni=$(curl -sf "$gw/$(basename "$path" | cut -c1-32).narinfo")
  cid=$(narinfo_field "$ni" IPFS)
  rm -f "$TMP/helia.out"
  (cd "$npmdir" && timeout 180 node verifiedfetch.mjs "$gw" "$cid" "$TMP/helia.out") > "$TMP/helia.log" 2>&1 ||
    echo "(verified-fetch exited with $?)" >> "$TMP/helia.log"
  [ -f "$TMP/helia.out" ] || : > "$TMP/helia.out"
  want=$(narinfo_field "$ni" NarHash)
  got=sha256:$(nix-hash --type sha256 --to-base32 "$(sha256sum < "$TMP/helia.out" | cut -d' ' -f1)")
  if [ -s "$TMP/helia.out" ] && [ "$got" = "$want" ]; then
    ok "$what: verified-fetch of ipfs://$cid gives the bytes of NarHash $want"
  else
    not_ok "$what: verified-fetch of ipfs://$cid: $got, not NarHash $want"
    sed 's/^/  | /' "$TMP/helia.log" | head -20
  fi
}
helia_fetch "publish, a few chunks" "$U" "$mid"
helia_fetch "publish, two levels" "$U" "$big"
helia_fetch "publish, one chunk" "$U" "$one"

# what is not there, and the probe
nope=bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# metric URL NAME: its value on URL/metrics
metric() { curl -sf "$1/metrics" | awk -v n="$2" '$1 == n {print $2}'; }
check "an unknown CID: 404" test "$(code "$U/ipfs/$nope?format=raw")" = 404
check "an unknown CID, CAR: 404" test "$(code "$U/ipfs/$nope?format=car")" = 404
check "bafkqaaa (the probe): 200, empty" \
  bash -c 'test "$(curl -s -o "$2" -w "%{http_code}" "$1")" = 200 && test ! -s "$2"' _ "$U/ipfs/bafkqaaa?format=raw" "$TMP/probe"
check "HEAD bafkqaaa: 200" test "$(code -I "$U/ipfs/bafkqaaa?format=raw")" = 200
check "no format asked: 406" test "$(code "$U/ipfs/$r")" = 406
check "a bad CID: 400" test "$(code "$U/ipfs/bafyNOTACID?format=raw")" = 400
check "a path under a file: 404" test "$(code "$U/ipfs/$r/etc/passwd?format=raw")" = 404
check "a bad entity-bytes: 400" test "$(code "$U/ipfs/$r?format=car&entity-bytes=x:1")" = 400
# a narinfo not yet indexed is answered by a thread (the pass is too long
# for an event loop): a 404 as usual for what the store does not have
check "--ipfs: a narinfo the store lacks is 404, with the negative TTL" \
  bash -c 'curl -s -D - -o /dev/null "$1" | tr -d "\r" | grep -qx "cache-control: public, max-age=60" &&
    test "$(curl -s -o /dev/null -w "%{http_code}" "$1")" = 404' _ "$U/0000000000000000000000000000000a.narinfo"
check "--ipfs: the first narinfo (from the indexing thread) has the ETag and max-age of the next" \
  test "$(grep -i '^\(etag\|cache-control\)' "$TMP/big.h1" | tr -d '\r')" = \
  "$(curl -sI "$U/$(basename "$big" | cut -c1-32).narinfo" | grep -i '^\(etag\|cache-control\)' | tr -d '\r')"

# the Guix dialect signs the whole narinfo: the IPFS field is under the
# signature (checked with libgcrypt as Guix does), and moving it breaks it
publish_stop
"$CAIRN" key generate --format guix --secret "$TMP/g.sec" --public "$TMP/g.pub"
publish_start "${PSTORE_ARGS[@]}" --compression zstd,none --key "$TMP/g.sec" --dialect guix --ipfs \
  --ipfs-chunker size-262144 ||
  { finish; exit 1; }
curl -sf "$PUBLISH_URL/$(basename "$mid" | cut -c1-32).narinfo" > "$TMP/g.narinfo"
check "guix: the narinfo has the same IPFS field" \
  test "$(narinfo_field "$(cat "$TMP/g.narinfo")" IPFS)" = "${ROOT[mid]}"
check "guix: the IPFS field comes before the Signature" \
  test "$(grep -n '^IPFS: ' "$TMP/g.narinfo" | cut -d: -f1)" -lt "$(grep -n '^Signature: ' "$TMP/g.narinfo" | cut -d: -f1)"
check "guix: the signature verifies, with libgcrypt as Guix does" \
  python3 "$SRCDIR/tests/integration/guix-verify.py" "$TMP/g.narinfo" "$TMP/g.pub"
sed 's/^IPFS: .*/IPFS: bafkqaaa/' "$TMP/g.narinfo" > "$TMP/g-forged.narinfo"
check "guix: another IPFS value breaks the signature" \
  bash -c '! python3 "$1" "$2" "$3" > /dev/null 2>&1' _ "$SRCDIR/tests/integration/guix-verify.py" "$TMP/g-forged.narinfo" "$TMP/g.pub"
publish_stop
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs --ipfs-chunker size-262144 ||
  { finish; exit 1; }
U=$PUBLISH_URL

# the mirror: narinfos pass through unchanged; once it holds an item's nar
# (zstd here: decompressed to be cut), it serves that item's blocks
mirror_start m --upstream "$U" --cache "$TMP/mc" --trusted-key "$TMP/k.pub" --ipfs ||
  { finish; exit 1; }
M=http://127.0.0.1:$MIRROR_PORT
h=$(basename "$big" | cut -c1-32)
ni=$(curl -sf "$M/$h.narinfo")
check "mirror: the narinfo is the upstream's, IPFS field and all" test "$ni" = "$(curl -sf "$U/$h.narinfo")"
check "mirror: no block of an item it does not hold (404)" \
  test "$(code "$M/ipfs/$r?format=raw")" = 404
url=$(narinfo_field "$ni" URL)
curl -sf -o /dev/null "$M/$url"
check "mirror: once the nar is cached its root block is served" \
  wait_for 60 bash -c 'test "$(curl -s -o /dev/null -w "%{http_code}" "$1")" = 200' _ "$M/ipfs/$r?format=raw"
curl -sf -o "$TMP/m.car" "$M/ipfs/$r?format=car"
n=$(python3 "$carcheck" "$TMP/m.car" "$r" 2>&1)
check "mirror: its CAR is the DAG in DFS order, verified ($n blocks)" test "$n" = $((chunks + 2 + 1))
got=$(node "$npmdir/readcar.mjs" "$TMP/m.car" "$TMP/m.out" 2>&1) || true
check "mirror: its CAR reads back to the NAR" cmp -s "$TMP/m.out" "$TMP/big.nar"
check "mirror: the same bytes as publish's CAR" cmp -s "$TMP/m.car" "$TMP/big.car"
curl -sf -o "$TMP/m.leaf" "$M/ipfs/$leaf?format=raw"
check "mirror: a chunk's raw block is the publish's" cmp -s "$TMP/m.leaf" "$TMP/leaf.blk"

# every chunk in file order, one raw request each, as Helia and cairn fetch
# ask: the cached zstd nar is decompressed about once in all, not once per
# chunk from its start (NAR bytes read, counted by /metrics)
python3 "$CARBLOCKS" "$TMP/m.car" | awk '$2 == "raw" {print $1}' > "$TMP/leaves"
nleaves=$(wc -l < "$TMP/leaves")
narsz=$(stat -c %s "$TMP/big.nar")
mm=cairn_mirror_ipfs
read0=$(metric "$M" ${mm}_nar_read_bytes_total)
raw0=$(metric "$M" "${mm}_requests_total{kind=\"raw\"}")
blocks0=$(metric "$M" ${mm}_blocks_total)
bytes0=$(metric "$M" ${mm}_block_bytes_total)
bad=0
while read -r c; do
  curl -sf -o "$TMP/seq.blk" "$M/ipfs/$c?format=raw" &&
    test "$(sha256sum < "$TMP/seq.blk" | cut -d' ' -f1)" = "$(cid_digest "$c")" || bad=$((bad + 1))
done < "$TMP/leaves"
check "mirror: the $nleaves chunks asked for one by one, in order, each hashes to its CID" test "$bad" = 0
read1=$(metric "$M" ${mm}_nar_read_bytes_total)
check "mirror: ... cut from $((read1 - read0)) NAR bytes decompressed: about the NAR ($narsz) once, not once per chunk" \
  test "$((read1 - read0))" -ge "$narsz" -a "$((read1 - read0))" -le "$((2 * narsz))"
check "mirror /metrics: $nleaves more raw requests" \
  test "$(metric "$M" "${mm}_requests_total{kind=\"raw\"}")" = "$((raw0 + nleaves))"
check "mirror /metrics: $nleaves more blocks sent, the NAR's bytes" \
  test "$(metric "$M" ${mm}_blocks_total)" = "$((blocks0 + nleaves))" -a \
  "$(metric "$M" ${mm}_block_bytes_total)" = "$((bytes0 + narsz))"
nf0=$(metric "$M" ${mm}_not_found_total)
pr0=$(metric "$M" "${mm}_requests_total{kind=\"probe\"}")
car0=$(metric "$M" "${mm}_requests_total{kind=\"car\"}")
code "$M/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy?format=raw" > /dev/null
code "$M/ipfs/bafkqaaa?format=raw" > /dev/null
code "$M/ipfs/$r?format=car&dag-scope=block" > /dev/null
check "mirror /metrics: a 404, a probe and a CAR counted" \
  test "$(metric "$M" ${mm}_not_found_total)" = "$((nf0 + 1))" -a \
  "$(metric "$M" "${mm}_requests_total{kind=\"probe\"}")" = "$((pr0 + 1))" -a \
  "$(metric "$M" "${mm}_requests_total{kind=\"car\"}")" = "$((car0 + 1))"
# two cuts: the mirror's own chunker (fastcdc) first, then the upstream's
# (size-262144), which gives the root the narinfo names
check "mirror /metrics: the item was indexed from its nar (twice: its chunker, then the one named), nothing failed to cut" \
  test "$(metric "$M" ${mm}_index_builds_total)" = 2 -a "$(metric "$M" ${mm}_cut_failures_total)" = 0
helia_fetch "mirror, two levels" "$M" "$big"
RBASE=$M range 262143 262144 4
RBASE=$M range -1 '*' 3
mirror_stop
check "mirror: the item's index is kept beside the cache" test -s "$TMP/mc/ipfs/$h.idx"
check "mirror (fastcdc) over a size-262144 upstream: it serves the DAG named (cut again), nothing logged" \
  bash -c '! grep -q "chunkers do not give" "$0"' "$MIRROR_LOG"
# restarted on the same cache, it indexes what it holds again (from that file)
mirror_start m2 --upstream "$U" --cache "$TMP/mc" --trusted-key "$TMP/k.pub" --ipfs ||
  { finish; exit 1; }
M=http://127.0.0.1:$MIRROR_PORT
check "mirror restarted: the items it holds are indexed again" \
  wait_for 60 bash -c 'test "$(curl -s -o /dev/null -w "%{http_code}" "$1")" = 200' _ "$M/ipfs/$r?format=raw"
curl -sf -o "$TMP/m2.car" "$M/ipfs/$r?format=car"
check "mirror restarted: the same CAR" cmp -s "$TMP/m2.car" "$TMP/big.car"
check "mirror restarted /metrics: the index was read from its file, not built again" \
  test "$(metric "$M" cairn_mirror_ipfs_index_builds_total)" = 0
mirror_stop

# a store item changed on disk after it was indexed: the chunk that no
# longer hashes to its CID is not sent (the response is cut off), and the
# operator hears of it
data=$(find "$big" -name 'data-*' | head -n 1)
head -c 64 /dev/urandom | dd of="$data" bs=1 seek=$((99 * 262144 + 1000)) conv=notrunc status=none
check "a chunk changed on disk: its raw request fails, no block sent whole" \
  bash -c '! curl -sf -o "$2" "$1" && ! cmp -s "$2" "$3"' _ "$U/ipfs/$leaf?format=raw" "$TMP/bad.blk" "$TMP/leaf.blk"
check "... the CAR is cut off before that chunk" \
  bash -c '! curl -sf -o "$2" "$1"' _ "$U/ipfs/$r?format=car" "$TMP/bad.car"
check "... and publish says which item changed" grep -q "changed since it was indexed" "$PUBLISH_LOG"
check "... and counts it on /metrics" \
  test "$(metric "$U" cairn_publish_ipfs_cut_failures_total)" -ge 1
publish_stop
# the same item to a publish that has not indexed it: the NAR cut for the
# index is checked against the database's NarHash, so no root is named for
# other bytes, and the item is withdrawn as a bake or a stream would have it
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs || { finish; exit 1; }
hb=$(basename "$big" | cut -c1-32)
check "a store item changed before it was indexed: its narinfo is a 404 (withdrawn), no root named" \
  test "$(curl -s -o "$TMP/changed.ni" -w '%{http_code}' "$PUBLISH_URL/$hb.narinfo")" = 404
check "... publish says its NAR does not match its NarHash" grep -q "does not match its NarHash" "$PUBLISH_LOG"
check "... and no index was kept for it (0 builds)" \
  test "$(metric "$PUBLISH_URL" cairn_publish_ipfs_index_builds_total)" = 0
publish_stop

# The default chunker: fastcdc (docs/FORMATS.md, "The narinfo field")
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs || { finish; exit 1; }
U=$PUBLISH_URL
nix-store --dump "$cdc" > "$TMP/cdc.nar"
hc=$(basename "$cdc" | cut -c1-32)
r=$(narinfo_field "$(curl -sf "$U/$hc.narinfo")" IPFS)
check "default: the IPFS field is the root of the NAR under fastcdc ($r)" \
  test "$r" = "$("$CAIRN" ipfs add --chunker fastcdc "$TMP/cdc.nar")" -a \
  "$r" != "$("$CAIRN" ipfs add --chunker size-262144 "$TMP/cdc.nar")"
curl -sf -o "$TMP/cdc.car" "$U/ipfs/$r?format=car"
# chunks, and distinct sizes among them but the last
sizes=$(python3 "$CARBLOCKS" "$TMP/cdc.car" | awk '$2 == "raw" {s[++n] = $3}
  END {for (i = 1; i < n; i++) if (!(s[i] in d)) {d[s[i]] = 1; m++}; print n, m + 0}')
check "fastcdc: chunks of varying sizes ($sizes: chunks, distinct sizes but the last's)" \
  test "${sizes#* }" -gt 1
got=$(node "$npmdir/readcar.mjs" "$TMP/cdc.car" "$TMP/cdc.out" 2>&1) || true
check "fastcdc: @ipld/car + exporter read the CAR back to the NAR" \
  bash -c '[ "$1" = "$2" ] && cmp -s "$3" "$4"' _ "$got" "$r" "$TMP/cdc.out" "$TMP/cdc.nar"
RNAR=$TMP/cdc.nar range 1000000 2500000
RNAR=$TMP/cdc.nar range -1 '*' 2
helia_fetch "publish, fastcdc" "$U" "$cdc"

# mirror_serves NAME ROOT: the last mirror serves the DAG of the cdc item
# (its nar fetched through it first) with the publish's bytes
mirror_serves() {
  local M=http://127.0.0.1:$MIRROR_PORT
  curl -sf -o /dev/null "$M/$(narinfo_field "$(curl -sf "$M/$hc.narinfo")" URL)"
  check "$1: once the nar is cached, the root $2 is served" \
    wait_for 60 bash -c 'test "$(curl -s -o /dev/null -w "%{http_code}" "$1")" = 200' _ "$M/ipfs/$2?format=raw"
  curl -sf -o "$TMP/mcdc.car" "$M/ipfs/$2?format=car"
  check "$1: ... its CAR is the publish's" cmp -s "$TMP/mcdc.car" "$TMP/cdc.car"
}
mirror_start mf --upstream "$U" --cache "$TMP/mcf" --trusted-key "$TMP/k.pub" --ipfs || { finish; exit 1; }
check "mirror (fastcdc too): the narinfo is the upstream's" \
  test "$(curl -sf "http://127.0.0.1:$MIRROR_PORT/$hc.narinfo")" = "$(curl -sf "$U/$hc.narinfo")"
mirror_serves "mirror (fastcdc too)" "$r"
mirror_stop
mirror_start m65 --upstream "$U" --cache "$TMP/mc65" --trusted-key "$TMP/k.pub" --ipfs \
  --ipfs-chunker size-65536 || { finish; exit 1; }
mirror_serves "mirror --ipfs-chunker size-65536 (fastcdc named upstream)" "$r"
check "  ... and the narinfo is still the upstream's" \
  test "$(curl -sf "http://127.0.0.1:$MIRROR_PORT/$hc.narinfo")" = "$(curl -sf "$U/$hc.narinfo")"
mirror_stop
publish_stop

# an upstream on size-65536, a mirror on fastcdc (its second guess is
# size-262144): neither gives the root named.  Nix signs the fingerprint
# only: the mirror's narinfo names the root it serves; Guix signs it all:
# left as signed, and the operator is told
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs --ipfs-chunker size-65536 ||
  { finish; exit 1; }
U=$PUBLISH_URL
up=$(curl -sf "$U/$hc.narinfo")
mirror_start mx --upstream "$U" --cache "$TMP/mcx" --trusted-key "$TMP/k.pub" --ipfs || { finish; exit 1; }
M=http://127.0.0.1:$MIRROR_PORT
check "mirror, upstream on size-65536: before it holds the nar, the narinfo is the upstream's" \
  test "$(curl -sf "$M/$hc.narinfo")" = "$up"
mirror_serves "mirror, upstream on size-65536" "$r"
check "  ... the operator is told the upstream's root is not one it gives" \
  grep -q "names $(narinfo_field "$up" IPFS), which this server's chunkers do not give" "$MIRROR_LOG"
ni=$(curl -sf "$M/$hc.narinfo")
check "  ... its narinfo names the root it serves" test "$(narinfo_field "$ni" IPFS)" = "$r"
check "  ... and is otherwise the upstream's (Sig and all)" \
  test "$(grep -v '^IPFS: ' <<< "$ni")" = "$(grep -v '^IPFS: ' <<< "$up")"
mirror_stop
publish_stop
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/g.sec" --dialect guix --ipfs \
  --ipfs-chunker size-65536 || { finish; exit 1; }
U=$PUBLISH_URL
curl -sf "$U/$hc.narinfo" > "$TMP/gu.narinfo"
mirror_start mg --upstream "$U" --cache "$TMP/mcg" --trusted-key "$TMP/g.pub" --ipfs || { finish; exit 1; }
M=http://127.0.0.1:$MIRROR_PORT
mirror_serves "mirror of a Guix upstream on size-65536" "$r"
curl -sf "$M/$hc.narinfo" > "$TMP/gm.narinfo"
check "  ... the Guix-signed narinfo is left as signed" cmp -s "$TMP/gm.narinfo" "$TMP/gu.narinfo"
check "  ... and its signature verifies" \
  python3 "$SRCDIR/tests/integration/guix-verify.py" "$TMP/gm.narinfo" "$TMP/g.pub"
mirror_stop
publish_stop
# publish over a store with --cache: an item is indexed once, at its first
# narinfo; its index kept in CACHE/ipfs, so a restarted publish reads it
mkdir -p "$TMP/pc"
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs --cache "$TMP/pc" ||
  { finish; exit 1; }
mh=$(basename "$mid" | cut -c1-32)
r1=$(curl -sf "$PUBLISH_URL/$mh.narinfo" | sed -n 's/^IPFS: //p')
curl -sf "$PUBLISH_URL/narinfos?hashes=$mh" > /dev/null
curl -sf -o /dev/null "$PUBLISH_URL/ipfs/$r1?format=car"
check "publish --cache: indexed once for a narinfo, a batch and a CAR ($(metric "$PUBLISH_URL" cairn_publish_ipfs_index_builds_total))" \
  test -n "$r1" -a "$(metric "$PUBLISH_URL" cairn_publish_ipfs_index_builds_total)" = 1
check "  ... its index kept in the cache" test -s "$TMP/pc/ipfs/$mh.idx"
publish_stop
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs --cache "$TMP/pc" ||
  { finish; exit 1; }
r2=$(curl -sf "$PUBLISH_URL/$mh.narinfo" | sed -n 's/^IPFS: //p')
check "  ... restarted: the same root, read from the cache (0 builds)" \
  test "$r2" = "$r1" -a "$(metric "$PUBLISH_URL" cairn_publish_ipfs_index_builds_total)" = 0
publish_stop

# The real Nix client through publish --ipfs: the IPFS field is outside the
# fingerprint Nix signs and checks, and Nix skips fields it does not know
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs || { finish; exit 1; }
check "publish --ipfs: the narinfo Nix will read names a root" \
  bash -c 'curl -sf "$1/$2.narinfo" | grep -q "^IPFS: b"' _ "$PUBLISH_URL" "$(basename "$mid" | cut -c1-32)"
check "  ... nix copy substitutes the item from it, the signature checked" \
  nix copy --quiet --option trusted-public-keys "$(cat "$TMP/k.pub")" --from "$PUBLISH_URL" \
  --to "$(pstore_dst_uri "$TMP/nixc")" "$mid"
check "  ... and it is valid there, its contents its NarHash" \
  nix store verify --quiet --no-trust --store "$(pstore_dst_uri "$TMP/nixc")" "$mid"
publish_stop

# The batch route with --ipfs: an item not indexed yet costs a pass over its
# NAR (1 GiB here), which must not hold the event loop (one loop: --threads
# 1).  If /health came first (the batch not yet read), the check cannot fail
# wrongly; before the fix, /health waited for the whole batch.
if huge=$(pstore_build "$TMP/src" 1 huge $((1 << 30)) 1 /dev/zero); then
  publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$TMP/k.sec" --ipfs --threads 1 ||
    { finish; exit 1; }
  hh=$(basename "$huge" | cut -c1-32)
  curl -s -o "$TMP/huge.batch" "$PUBLISH_URL/narinfos?hashes=$hh" &
  bpid=$!
  sleep 0.3
  hcode=$(curl -s -m 120 -o /dev/null -w '%{http_code}' "$PUBLISH_URL/health")
  check "batch route, --ipfs, one event loop: /health answered ($hcode) while a NAR is indexed for the batch" \
    test "$hcode" = 200 -a ! -s "$TMP/huge.batch"
  wait "$bpid"
  check "  ... and the batch then names the item's root" grep -q '^IPFS: b' "$TMP/huge.batch"
  publish_stop
  rm -rf "$TMP/src/nix/store/$(basename "$huge")" 2> /dev/null || true
else
  not_ok "nix-build builds a 1 GiB item"
fi
finish
