#!/usr/bin/env bash
# cairn fetch --ipfs-gateway (issue 15): narinfos from nginx (signed, with
# an unsigned `IPFS:` field naming the NAR's root CID), the NAR's bytes
# block by block from a trustless gateway (ipfs-gateway.py over the CARs
# `cairn ipfs add --car` wrote), each block checked against its CID and the
# whole NAR against the signed NarHash:
#   - a closure whose nar files are absent comes from the gateway alone;
#   - a gateway that sends a wrong block, a truncated CAR, a CAR with extra
#     blocks, or 404s is skipped (the next gateway, or the servers' nar
#     files), and nothing unverified is written;
#   - an `IPFS:` field naming a valid DAG of another NAR of the same size:
#     it is refused against the signed NarHash, the nar file used instead;
#   - delta: version 2 of an item with version 1 in the store asks only
#     the blocks that changed (counted in the gateway's log);
#   - --seed PATH: the same into an empty store, the seed cut with the
#     chunker the DAG says (not the one given for seeds);
#   - delta across a rebuild: v2 refers to a new version of its dependency
#     (its store path written every 2 KiB); v1's references are rewritten
#     before seeding, so v2's blocks are all found;
#   - another IPFS implementation: blocks imported by ipfs-unixfs-importer
#     into Helia's blockstore (blockstore-core), served raw by a small
#     trustless-gateway front (tests/npm/blockstore-gateway.mjs, no CARs):
#     a closure is fetched from it alone (skipped without node).
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/serve-lib.sh"
skip_unless nginx python3

IPFS_CH=size-1024 # small blocks: the test's items have many
. "$SRCDIR/tests/integration/ipfs-lib.sh"
CH=$IPFS_CH

# mkitem CACHE CARS NAME TREE [REFS]: ipfs_item, its NAR kept in all-nars too
mkitem() {
  local sp
  sp=$(ipfs_item "$@") || return
  mkdir -p "$TMP/all-nars"
  cp "$TMP/$3.nar" "$TMP/all-nars/$(basename "$sp" | cut -c1-32).nar"
  echo "$sp"
}
tree() { ipfs_tree "$@"; }

C=$TMP/cache CARS=$TMP/cars
mkdir -p "$C" "$CARS"
printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n' > "$C/nix-cache-info"
tree "$TMP/t-lib" 40 1
tree "$TMP/t-app" 60 2
LIB=$(mkitem "$C" "$CARS" lib-1.0 "$TMP/t-lib")
APP=$(mkitem "$C" "$CARS" app-1.0 "$TMP/t-app" "$(basename "$LIB")")
serve_nginx "$C"
NI=http://127.0.0.1:$SERVE_PORT

gateway() { ipfs_gateway "$@"; }

fetch() { # STORE BLOCKS [options...]
  local store=$1 blocks=$2; shift 2
  "$CAIRN" fetch -q --no-cache --json --from "$NI" --trusted-key "$PUB" --store "$store" \
    --block-cache "$blocks" --closure "$@" # the chunker: auto, from each DAG
}

gateway ok; OK_URL=$GW_URL OK_LOG=$GW_LOG

# 1. the nar files are gone: the bytes can only come from the gateway
mkdir -p "$TMP/hidden"; mv "$C/nar" "$TMP/hidden/nar"
rc=0; fetch "$TMP/s1" "$TMP/b1" --ipfs-gateway "$OK_URL" "$APP" > "$TMP/j1" 2> "$TMP/e1" || rc=$?
cat "$TMP/e1"
check "gateway only: the closure of 2 is fetched" \
  test "$rc" = 0 -a "$(json "$TMP/j1" "d['fetched']")" = 2
check "  ... its files are the trees'" diff -r "$TMP/t-app" "$TMP/s1$APP"
check "  ... and compression says ipfs, server the gateway" \
  test "$(json "$TMP/j1" "[i['compression'] for i in d['items']]")" = "['ipfs', 'ipfs']" \
  -a "$(json "$TMP/j1" "d['items'][0]['server']")" = "$OK_URL"
check "  ... runs of blocks came as CARs (entity-bytes), nodes as raw blocks" \
  bash -c 'grep -q "format=car&dag-scope=entity&entity-bytes=0:" "$0" && grep -q "format=raw" "$0"' "$OK_LOG"
check "  ... no nar file was asked for" bash -c '! grep -q "/nar/" "$0"' "$TMP/serve-1.access"
reqs1=$(json "$TMP/j1" "d['ipfs']['requests']")

# 2. a second store with the blocks cached: no request at all
: > "$OK_LOG"
fetch "$TMP/s2" "$TMP/b1" --ipfs-gateway "$OK_URL" "$APP" > "$TMP/j2"
check "cached blocks: fetched again without asking the gateway ($reqs1 requests before)" \
  test "$(json "$TMP/j2" "d['fetched']")" = 2 -a ! -s "$OK_LOG"

# 3. liars: each is skipped for the honest gateway after it
for mode in wrong-block truncated-car extra-blocks 404; do
  gateway "$mode"
  rc=0; fetch "$TMP/l-$mode" "$TMP/bl-$mode" --ipfs-gateway "$GW_URL" --ipfs-gateway "$OK_URL" \
    "$APP" > "$TMP/jl" 2> "$TMP/el" || rc=$?
  check "$mode: skipped, the next gateway serves ($(json "$TMP/jl" "d['ipfs']['gatewaysFailed']") dropped)" \
    test "$rc" = 0 -a "$(json "$TMP/jl" "d['ipfs']['gatewaysFailed']")" -ge 1 \
    -a "$(json "$TMP/jl" "d['items'][0]['server']")" = "$OK_URL"
  check "  ... and the files are right" diff -r "$TMP/t-app" "$TMP/l-$mode$APP"
  # alone, with no nar files: the item fails and nothing is left behind
  rc=0; fetch "$TMP/la-$mode" "$TMP/bla-$mode" --ipfs-gateway "$GW_URL" "$APP" \
    > "$TMP/jla" 2> "$TMP/ela" || rc=$?
  check "$mode alone, no nar files: fails, nothing written in the store" \
    bash -c '[ "$0" != 0 ] && [ -z "$(ls -A "$1/nix/store" 2> /dev/null)" ]' "$rc" "$TMP/la-$mode"
  check "  ... and every block in the cache is the one its name (CID) says" cache_true "$TMP/bla-$mode"
done
grep -h "ipfs:" "$TMP/ela" | head -3 || true

# 4. the gateway lies but the nar files are back: the servers serve
mv "$TMP/hidden/nar" "$C/nar"
rc=0; fetch "$TMP/s4" "$TMP/b4" --ipfs-gateway "$GW_URL" "$APP" > "$TMP/j4" 2> /dev/null || rc=$?
check "a lying gateway, nar files there: fetched from the server" \
  test "$rc" = 0 -a "$(json "$TMP/j4" "d['items'][0]['compression']")" = none

# 4b. the IPFS field is a hint: lib's narinfo names the DAG of a NAR of
# lib's size with one byte changed in a file, which an honest gateway
# serves whole and every block of which checks against its CID; the NAR
# is not the one the signed NarHash names, so the bytes are refused and lib
# comes from its nar file
python3 - "$TMP/lib-1.0.nar" "$TMP/lib-evil.nar" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0xff   # inside bin/prog's 40 KiB of contents
open(sys.argv[2], "wb").write(bytes(b))
PY
mkdir -p "$TMP/evil-cars"
evil_lib=$("$CAIRN" ipfs add --chunker "$IPFS_CH" --car "$TMP/evil-cars/lib.car" "$TMP/lib-evil.nar")
python3 "$GW" --port-file "$TMP/gw-evil.port" --log "$TMP/gw-evil.log" --mode ok "$TMP/evil-cars/lib.car" &
cleanup_hooks+=("kill $! 2> /dev/null")
EV_URL=http://127.0.0.1:$(port_from_file "$TMP/gw-evil.port" "$!")
C3=$TMP/cache3; mkdir -p "$C3"; cp -r "$C/nar" "$C/nix-cache-info" "$C"/*.narinfo "$C3/"
lh=$(basename "$LIB" | cut -c1-32)
sed -i "s/^IPFS: .*/IPFS: $evil_lib/" "$C3/$lh.narinfo"
rc=0; "$CAIRN" fetch -q --no-cache --json --from "file://$C3" --trusted-key "$PUB" --store "$TMP/s4b" \
  --block-cache "$TMP/b4b" --ipfs-gateway "$EV_URL" "$LIB" > "$TMP/j4b" 2> "$TMP/e4b" || rc=$?
cat "$TMP/e4b"
check "an IPFS field naming the DAG of another NAR of the same size: all of it was sent ($(awk '{s += $2} END {print s+0}' "$TMP/gw-evil.log") bytes)" \
  test "$(awk '{s += $2} END {print s+0}' "$TMP/gw-evil.log")" -ge "$(stat -c %s "$TMP/lib-evil.nar")"
check "  ... refused against the signed NarHash; lib fetched from its nar file" \
  test "$rc" = 0 -a "$(json "$TMP/j4b" "d['items'][0]['compression']")" = none \
  -a "$(json "$TMP/j4b" "d['ipfs']['blocksFetched']")" -gt 0
check "  ... its files are lib's" diff -r "$TMP/t-lib" "$TMP/s4b$LIB"

# 5. delta: app-2.0 changes a few KiB of app-1.0's 60; app-1.0 is in the store
cp -r "$TMP/t-app" "$TMP/t-app2"
python3 - "$TMP/t-app2/bin/prog" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
b[30000:30010] = b"new bytes!"   # a few bytes in place: one 1 KiB block
open(p, "wb").write(bytes(b))
PY
# same length: with fixed-size blocks a shift would move every later cut
# (bench/delta.sh measures FastCDC, which does not care)
echo "HELLO 2" > "$TMP/t-app2/README"
APP2=$(mkitem "$C" "$CARS" app-1.0 "$TMP/t-app2" "$(basename "$LIB")")
rm "$C/nar/$(basename "$APP2" | cut -c1-32).nar" # from the gateway only
gateway ok; D_URL=$GW_URL D_LOG=$GW_LOG
rc=0; fetch "$TMP/s1" "$TMP/b5" --ipfs-gateway "$D_URL" "$APP2" > "$TMP/j5" 2> "$TMP/e5" || rc=$?
cat "$TMP/e5"
leaves=$(awk '$3 ~ /format=raw/ && $2 <= 1024 {n++} END {print n+0}' "$D_LOG")
bytes=$(awk '{s += $2} END {print s+0}' "$D_LOG")
nar2=$(json "$TMP/j5" "d['items'][0]['narSize']")
check "delta: v2 fetched with v1 in the store" \
  test "$rc" = 0 -a "$(json "$TMP/j5" "d['fetched']")" = 1
check "  ... the block cache was seeded from v1 ($(json "$TMP/j5" "d['ipfs']['seeded']") leaves)" \
  test "$(json "$TMP/j5" "d['ipfs']['seeded']")" -gt 50
check "  ... only the changed blocks were asked: $bytes bytes of $nar2 ($(wc -l < "$D_LOG") requests)" \
  test "$bytes" -lt $((nar2 / 8))
check "  ... its files are v2's" diff -r "$TMP/t-app2" "$TMP/s1$APP2"

# 5b. --seed: v2 into an empty store, v1's tree given as a seed.  The DAG is
# size-1024 and --ipfs-chunker auto (the default) cuts seeds with fastcdc
# first: the seed is cut again with the DAG's chunker once it is known
fetch "$TMP/s5b" "$TMP/b5b" --ipfs-gateway "$D_URL" "$LIB" > /dev/null # its dependency
: > "$D_LOG"
rc=0; fetch "$TMP/s5b" "$TMP/b5b" --ipfs-gateway "$D_URL" --seed "$TMP/t-app" "$APP2" \
  > "$TMP/j5b" 2> "$TMP/e5b" || rc=$?
cat "$TMP/e5b"
bytes=$(awk '{s += $2} END {print s+0}' "$D_LOG")
check "--seed (auto, a size-1024 DAG): v2 into an empty store, $bytes bytes asked of $nar2" \
  test "$rc" = 0 -a "$(json "$TMP/j5b" "d['fetched']")" = 1 -a "$bytes" -lt $((nar2 / 8))
check "  ... its files are v2's" diff -r "$TMP/t-app2" "$TMP/s5b$APP2"

# 6. a rebuild against a changed dependency: every reference rewritten
embed() { # TREE REF: TREE/bin/prog with REF written every 2 KiB
  python3 - "$1/bin/prog" "$2" <<'PY'
import sys
p, ref = sys.argv[1], sys.argv[2].encode()
b = bytearray(open(p, "rb").read())
for o in range(100, len(b) - len(ref), 2048):
    b[o:o + len(ref)] = ref
open(p, "wb").write(bytes(b))
PY
}
cp -r "$TMP/t-lib" "$TMP/t-lib2"; echo "HELLO 9" > "$TMP/t-lib2/README"
LIB2=$(mkitem "$C" "$CARS" lib-1.0 "$TMP/t-lib2")
tree "$TMP/t-r1" 80 3; cp -r "$TMP/t-r1" "$TMP/t-r2"
embed "$TMP/t-r1" "$LIB"; embed "$TMP/t-r2" "$LIB2"
R1=$(mkitem "$C" "$CARS" tool-1.0 "$TMP/t-r1" "$(basename "$LIB")")
R2=$(mkitem "$C" "$CARS" tool-1.0 "$TMP/t-r2" "$(basename "$LIB2")")
rm -f "$C"/nar/*.nar
gateway ok; R_URL=$GW_URL R_LOG=$GW_LOG
fetch "$TMP/s6" "$TMP/b6" --ipfs-gateway "$R_URL" "$R1" > /dev/null
: > "$R_LOG"
rc=0; fetch "$TMP/s6" "$TMP/b6" --ipfs-gateway "$R_URL" "$R2" > "$TMP/j6" 2> "$TMP/e6" || rc=$?
cat "$TMP/e6"
bytes=$(awk '{s += $2} END {print s+0}' "$R_LOG")
check "rebuild: v2 and its new dependency fetched" \
  test "$rc" = 0 -a "$(json "$TMP/j6" "d['fetched']")" = 2
check "  ... v1's references rewritten: $bytes bytes asked for 2 items of $(json "$TMP/j6" "sum(i['narSize'] for i in d['items'])")" \
  test "$bytes" -lt 20000
check "  ... its files are v2's" diff -r "$TMP/t-r2" "$TMP/s6$R2"

# 6b. a hostile DAG: a root over 1000 links to the empty block (no bytes
# each) and the real root.  Refused at the root, never walked: the item
# comes from the server's nar file and the gateway is asked once.
C2=$TMP/cache2; mkdir -p "$C2/nar"; cp "$C/nix-cache-info" "$C2/"
ah=$(basename "$APP" | cut -c1-32)
cp "$TMP/all-nars/$ah.nar" "$C2/nar/"
for f in "$C"/*.narinfo; do cp "$f" "$C2/"; done
real=$(sed -n 's/^IPFS: //p' "$C2/$ah.narinfo")
narsize=$(sed -n 's/^NarSize: //p' "$C2/$ah.narinfo")
evil=$(python3 - "$real" "$narsize" "$CARS/evil.car" <<'PY'
import base64, hashlib, sys
def uv(v):
    o = bytearray()
    while True:
        b = v & 0x7F; v >>= 7
        if v: o.append(b | 0x80)
        else: o.append(b); return bytes(o)
def ld(f, b): return bytes([f << 3 | 2]) + uv(len(b)) + b
s = sys.argv[1][1:].upper()
real = base64.b32decode(s + "=" * (-len(s) % 8))
empty = bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(b"").digest()
links = [(empty, 0)] * 1000 + [(real, int(sys.argv[2]))]
node = b"".join(ld(2, ld(1, c) + b"\x12\x00\x18" + uv(n)) for c, n in links)
ufs = b"\x08\x02\x18" + uv(sum(n for _, n in links)) + b"".join(b"\x20" + uv(n) for _, n in links)
node += ld(1, ufs)
cid = bytes([1, 0x70, 0x12, 0x20]) + hashlib.sha256(node).digest()
head = b"\xa2\x65roots\x81\xd8\x2a\x58\x25\x00" + cid + b"\x67version\x01"
open(sys.argv[3], "wb").write(uv(len(head)) + head + uv(len(cid) + len(node)) + cid + node)
print("b" + base64.b32encode(cid).decode().lower().rstrip("="))
PY
)
sed -i "s/^IPFS: .*/IPFS: $evil/" "$C2/$ah.narinfo"
gateway ok; E_URL=$GW_URL E_LOG=$GW_LOG
rc=0; "$CAIRN" fetch -q --no-cache --json --from "file://$C2" --trusted-key "$PUB" --store "$TMP/s8" \
  --block-cache "$TMP/b8" --ipfs-chunker $CH --closure --ipfs-gateway "$E_URL" "$APP" > "$TMP/j8" 2> "$TMP/e8" || rc=$?
check "a DAG of links to no bytes: refused at its root, the server's nar file used" \
  test "$rc" = 0 -a "$(json "$TMP/j8" "[i['compression'] for i in d['items'] if i['path'] == '$APP'][0]")" = none
check "  ... the root asked once, the empty block never" \
  test "$(grep -c "$evil" "$E_LOG")" = 1 -a "$(grep -c bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku "$E_LOG")" = 0

# 7. blocks from another IPFS implementation (Helia's blockstore)
npmdir=$SRCDIR/tests/npm
# node and the locked packages are required in CI (npm_modules fails there
# on a mismatch); locally, without node, this section says it did not run
if { [ "${CI:-}" = true ] || command -v node > /dev/null; } && npm_modules; then
  pf=$TMP/helia.port; HLOG=$TMP/helia.log; : > "$HLOG"
  node "$npmdir/blockstore-gateway.mjs" "$pf" "$HLOG" 1024 "$TMP/helia.roots" "$TMP"/all-nars/*.nar &
  hpid=$!
  cleanup_hooks+=("kill $hpid 2> /dev/null")
  H_URL=http://127.0.0.1:$(port_from_file "$pf" "$hpid" 60)
  # the importer's roots are the narinfos' IPFS fields (cairn's size-1024)
  check "the importer's root CIDs are the narinfos' IPFS fields" bash -c '
    while read -r f cid; do h=$(basename "$f" .nar)
      grep -qx "IPFS: $cid" "$0/$h.narinfo" || exit 1; done < "$1"' "$C" "$TMP/helia.roots"
  rc=0; fetch "$TMP/s7" "$TMP/b7" --ipfs-gateway "$H_URL" "$APP" > "$TMP/j7" 2> "$TMP/e7" || rc=$?
  cat "$TMP/e7"
  check "Helia's blockstore: the closure of 2 is fetched from it alone (CARs refused: raw blocks)" \
    test "$rc" = 0 -a "$(json "$TMP/j7" "d['fetched']")" = 2 \
    -a "$(json "$TMP/j7" "[i['server'] for i in d['items']]")" = "['$H_URL', '$H_URL']"
  check "  ... its files are the trees'" diff -r "$TMP/t-app" "$TMP/s7$APP"
  check "  ... and it was asked for raw blocks ($(grep -c '^200' "$HLOG"))" grep -q "^200 .*format=raw" "$HLOG"
elif [ "${CI:-}" = true ]; then
  not_ok "node and tests/npm's packages are required in CI (Helia's blockstore)"
else
  echo "# skip: no node or no tests/npm packages: Helia's blockstore not tried"
fi

finish
