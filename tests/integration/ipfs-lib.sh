# Helpers for the tests of IPFS byte sources (issue 15): signed narinfos
# naming their NAR's root CID, and tests/integration/ipfs-gateway.py over
# the CARs.  Needs lib.sh first; sets GW, V, SEC, PUB.
GW=$SRCDIR/tests/integration/ipfs-gateway.py
IPFS_CH=${IPFS_CH:-size-1024} # small blocks: the tests' items have many
V=$VECTORS_DIR/nix
SEC=$V/keys/cache.example.org-1.sec
PUB=$V/keys/cache.example.org-1.pub

# ipfs_hashpart NAME: a nix32 hash part (any 32 letters of the alphabet do)
ipfs_hashpart() { python3 -c "import hashlib,sys
a='0123456789abcdfghijklmnpqrsvwxyz'; d=hashlib.sha256(sys.argv[1].encode()).digest()
print(''.join(a[b % 32] for b in d[:32]))" "$1"; }

# ipfs_item CACHE CARS NAME TREE [REFS]: a signed narinfo for TREE as
# /nix/store/<hash>-NAME, its NAR in CACHE/nar (Compression: none), its
# CAR in CARS, its `IPFS:` field (unsigned) naming the root CID; prints
# the store path
ipfs_item() {
  local cache=$1 cars=$2 name=$3 tree=$4 refs=${5:-} nar h sp cid nh ns
  nar=$TMP/$name.nar
  "$CAIRN" nar dump "$tree" > "$nar"
  nh=$("$CAIRN" hash file "$nar")
  ns=$(stat -c %s "$nar")
  h=$(ipfs_hashpart "$name-$nh")
  sp=/nix/store/$h-$name
  cid=$("$CAIRN" ipfs add --chunker "$IPFS_CH" --car "$cars/$h.car" "$nar")
  mkdir -p "$cache/nar"
  cp "$nar" "$cache/nar/$h.nar"
  printf 'StorePath: %s\nURL: nar/%s.nar\nCompression: none\nNarHash: %s\nNarSize: %s\nReferences: %s\n' \
    "$sp" "$h" "$nh" "$ns" "$refs" | "$CAIRN" narinfo sign --key "$SEC" > "$cache/$h.narinfo"
  echo "IPFS: $cid" >> "$cache/$h.narinfo"
  echo "$sp"
}

# ipfs_tree DIR KIB SEED: a directory of files with KIB KiB of pseudo-random bytes
ipfs_tree() {
  mkdir -p "$1/bin"
  python3 -c "import random,sys; random.seed($3); sys.stdout.buffer.write(random.randbytes($2*1024))" > "$1/bin/prog"
  echo "hello $3" > "$1/README"
}

# ipfs_gateway MODE [options...]: start ipfs-gateway.py over CARS/*.car;
# sets GW_URL and GW_LOG
ipfs_gw_n=0
ipfs_gateway() {
  ipfs_gw_n=$((ipfs_gw_n + 1))
  local mode=$1 pf=$TMP/gw-$ipfs_gw_n.port pid
  shift
  GW_LOG=$TMP/gw-$ipfs_gw_n.log
  : > "$GW_LOG"
  python3 "$GW" --port-file "$pf" --log "$GW_LOG" --mode "$mode" "$@" "$CARS"/*.car &
  pid=$!
  cleanup_hooks+=("kill $pid 2> /dev/null")
  GW_URL=http://127.0.0.1:$(port_from_file "$pf" "$pid")
}

# ipfs_cid CACHE STOREPATH: the IPFS field of its narinfo
ipfs_cid() { sed -n 's/^IPFS: //p' "$1/$(basename "$2" | cut -c1-32).narinfo"; }

json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

# cache_true DIR: each file of the block cache (named by CID, raw or dag-pb,
# sha2-256) holds the bytes its CID's digest names; no temporary file left
cache_true() {
  python3 - "$1" << 'PY'
import base64, hashlib, os, sys
bad = 0
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.startswith(".tmp-"):
            print("block cache: %s left behind" % f); bad += 1
        if not f.startswith("baf"):
            continue
        b32 = f[1:].upper()
        raw = base64.b32decode(b32 + "=" * (-len(b32) % 8))
        if raw[-32:] != hashlib.sha256(open(os.path.join(root, f), "rb").read()).digest():
            print("block cache: %s does not hash to its name" % f); bad += 1
sys.exit(1 if bad else 0)
PY
}
