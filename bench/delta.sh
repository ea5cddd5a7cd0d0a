#!/usr/bin/env bash
# bench/delta.sh - delta downloads (issue 15): bytes on the wire to
# substitute version 2 of an item with `cairn fetch --ipfs-gateway` when
# version 1 is in the target (same name, another hash: fetch seeds its
# block cache from it), against downloading v2's NAR as zstd -3 (what
# publish bakes) or xz -6 (Nix's default), for several chunkers.
#
#   bench/delta.sh CAIRN [CHUNKER...]     (default: size-262144 fastcdc
#                                          size-65536 size-16384)
#   env: REFS, DEBS (below), ONLY=REGEX (the cases to run), in /dev/shm
#
# Cases:
#   a-refsN  a rebuild against a dependency whose store path changed: a
#            real tree (BASE, default the first 16 MiB of ELF files in
#            /usr/bin) with a 32-character store hash written at random
#            offsets, one per N bytes on average (REFS, default "16384
#            4096"), the same offsets in v1 and v2, another hash in v2 (Nix
#            rewrites references in place, so lengths do not change);
#   b-files  a few files changed: 100 bytes inserted in one file, 4 KiB
#            overwritten in another, a 10 KiB file added;
#   c-DEB    two versions of a Debian package found in
#            /var/cache/apt/archives (DEBS, default "libzstd-dev rsync
#            nginx"), each `dpkg-deb -x` into a tree.
# Every v2 is really fetched: narinfos from a file:// cache (signed, with
# an IPFS field, no nar file), blocks from tests/integration/ipfs-gateway.py
# over v2's CAR; "wire" is the sum of the gateway's response bodies (its
# log), "reqs" its requests; "wire, bodies zstd -3" the same bodies each
# compressed with zstd -3, what a gateway sending CARs with
# Content-Encoding: zstd would put on the wire.  Case (a) runs twice: seed
# "plain" (v1 as it is) and "rewritten" (the dependency's old and new
# versions are known by name, so fetch rewrites v1's references to the new
# hash before seeding, as Nix rewrites them).  Prints a Markdown table.
set -euo pipefail
CAIRN=$(realpath "${1:?usage: bench/delta.sh CAIRN [CHUNKER...]}")
shift
CHUNKERS=${*:-size-262144 fastcdc size-65536 size-16384}
REFS=${REFS:-16384 4096}
DEBS=${DEBS-libzstd-dev rsync nginx}
ONLY=${ONLY:-.} # a regex: the cases to run
cd "$(dirname "$0")/.."
SRC=$PWD
W=$(mktemp -d /dev/shm/cairn-delta.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT
V=$SRC/tests/vectors/nix/keys
SEC=$V/cache.example.org-1.sec
PUB=$V/cache.example.org-1.pub

hashpart() { python3 -c "import hashlib,sys
a='0123456789abcdfghijklmnpqrsvwxyz'; d=hashlib.sha256(sys.argv[1].encode()).digest()
print(''.join(a[b % 32] for b in d[:32]))" "$1"; }

# the base tree of (a) and (b): real binaries
BASE=$W/base
mkdir -p "$BASE"
total=0
for f in /usr/bin/*; do
  [ -f "$f" ] && [ ! -L "$f" ] && head -c 4 "$f" | grep -q ELF || continue
  s=$(stat -c %s "$f")
  [ $((total + s)) -le $((16 << 20)) ] || continue
  cp "$f" "$BASE/"
  total=$((total + s))
done

# refs TREE HASH EVERY: write /nix/store/HASH-dep-1.0 at seeded random offsets
refs() {
  python3 - "$@" <<'PY'
import os, random, sys
tree, h, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
ref = ("/nix/store/%s-dep-1.0" % h).encode()
rnd = random.Random(42)
for name in sorted(os.listdir(tree)):
    p = os.path.join(tree, name)
    b = bytearray(open(p, "rb").read())
    n = max(1, len(b) // every)
    # apart from each other, as references in real files are: an overlap
    # would leave a partial hash no rewriting can find
    offs = sorted(rnd.randrange(0, max(1, len(b) - len(ref))) for _ in range(n))
    last = -len(ref)
    for o in offs:
        if o < last + len(ref) or o + len(ref) > len(b):
            continue
        b[o:o + len(ref)] = ref
        last = o
    open(p, "wb").write(bytes(b))
PY
}

cases=()
for every in $REFS; do
  c=a-refs$every
  cp -r "$BASE" "$W/$c-1"; refs "$W/$c-1" "$(hashpart dep1)" "$every"
  cp -r "$BASE" "$W/$c-2"; refs "$W/$c-2" "$(hashpart dep2)" "$every"
  cases+=("$c")
done
c=b-files
cp -r "$BASE" "$W/$c-1"
cp -r "$BASE" "$W/$c-2"
python3 - "$W/$c-2" <<'PY'
import os, random, sys
t = sys.argv[1]
names = sorted(os.listdir(t))
rnd = random.Random(7)
p = os.path.join(t, names[len(names) // 3])
b = open(p, "rb").read()
open(p, "wb").write(b[:len(b) // 2] + bytes(rnd.randrange(256) for _ in range(100)) + b[len(b) // 2:])
p = os.path.join(t, names[2 * len(names) // 3])
b = bytearray(open(p, "rb").read())
o = len(b) // 3
b[o:o + 4096] = bytes(rnd.randrange(256) for _ in range(4096))
open(p, "wb").write(bytes(b))
open(os.path.join(t, "NEWS"), "wb").write(bytes(rnd.randrange(256) for _ in range(10240)))
PY
cases+=("$c")
for deb in $DEBS; do
  mapfile -t files < <(ls /var/cache/apt/archives/"${deb}"_*.deb 2>/dev/null | sort -V)
  [ "${#files[@]}" -ge 2 ] || { echo "no two versions of $deb: skipped" >&2; continue; }
  c=c-$deb
  dpkg-deb -x "${files[0]}" "$W/$c-1"
  dpkg-deb -x "${files[-1]}" "$W/$c-2"
  echo "$c: $(basename "${files[0]}") -> $(basename "${files[-1]}")" >&2
  cases+=("$c")
done

# gateway over one CAR: sets GW (its URL) and GWPID; the log is $W/gw.log
gateway() {
  : > "$W/gw.log"
  rm -rf "$W/gw.port" "$W/dump"
  mkdir "$W/dump"
  python3 "$SRC/tests/integration/ipfs-gateway.py" --port-file "$W/gw.port" --log "$W/gw.log" \
    --dump "$W/dump" "$1" > /dev/null 2>&1 &
  GWPID=$!
  pids+=("$GWPID")
  for _ in $(seq 600); do [ -s "$W/gw.port" ] && break; sleep 0.05; done
  GW=http://127.0.0.1:$(cat "$W/gw.port")
}

mapfile -t cases < <(printf '%s\n' "${cases[@]}" | grep -E "$ONLY")
echo "| case | NAR v2 | zstd -3 | xz -6 | chunker | seed | blocks v2 | wire | wire, bodies zstd -3 | reqs | wire / zstd NAR | zstd wire / zstd NAR |"
echo "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"
for c in "${cases[@]}"; do
  "$CAIRN" nar dump "$W/$c-1" > "$W/$c-1.nar"
  "$CAIRN" nar dump "$W/$c-2" > "$W/$c-2.nar"
  nar=$(stat -c %s "$W/$c-2.nar")
  zs=$(zstd -3 -T1 -q -c "$W/$c-2.nar" | wc -c)
  xs=$(xz -6 -T1 -c "$W/$c-2.nar" | wc -c)
  nh=$("$CAIRN" hash file "$W/$c-2.nar")
  h1=$(hashpart "$c-v1") h2=$(hashpart "$c-v2")
  seeds=plain
  case $c in a-*) seeds="plain rewritten" ;; esac
  for ch in $CHUNKERS; do
    for seed in $seeds; do
      r=$W/run-$c-$ch-$seed
      mkdir -p "$r/cache" "$r/nars"
      printf 'StoreDir: /nix/store\n' > "$r/cache/nix-cache-info"
      cid=$("$CAIRN" ipfs add --chunker "$ch" --car "$r/v2.car" "$W/$c-2.nar")
      blocks=$("$CAIRN" ipfs car "$r/v2.car" | sed -n 's/^blocks //p')
      refs=
      if [ "$seed" = rewritten ]; then
        # the dependency's old and new versions, by name: what fetch maps
        refs="$(hashpart dep2)-dep-1.0"
        : > "$r/nars/$(hashpart dep1)-dep-1.0.nar"
      fi
      printf 'StorePath: /nix/store/%s-%s\nURL: nar/%s.nar\nCompression: none\nNarHash: %s\nNarSize: %s\nReferences: %s\n' \
        "$h2" "$c" "$h2" "$nh" "$nar" "$refs" | "$CAIRN" narinfo sign --key "$SEC" > "$r/cache/$h2.narinfo"
      echo "IPFS: $cid" >> "$r/cache/$h2.narinfo"
      cp "$W/$c-1.nar" "$r/nars/$h1-$c.nar" # v1, same name
      gateway "$r/v2.car"
      "$CAIRN" fetch -q --no-cache --json --from "file://$r/cache" --trusted-key "$PUB" \
        --nar-dir "$r/nars" --block-cache "$r/blocks" --ipfs-chunker "$ch" \
        --ipfs-gateway "$GW" "/nix/store/$h2-$c" > "$r/j"
      kill "$GWPID"; wait "$GWPID" 2>/dev/null || true
      cmp -s "$r/nars/$h2-$c.nar" "$W/$c-2.nar" || { echo "error: $c $ch: wrong NAR" >&2; exit 1; }
      python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["items"][0]["compression"]=="ipfs", d' "$r/j"
      wire=$(awk '{s += $2} END {print s+0}' "$W/gw.log")
      zwire=0
      for b in "$W"/dump/*; do
        [ -e "$b" ] && zwire=$((zwire + $(zstd -3 -T1 -q -c "$b" | wc -c)))
      done
      reqs=$(wc -l < "$W/gw.log")
      echo "| $c | $nar | $zs | $xs | $ch | $seed | $blocks | $wire | $zwire | $reqs | $(python3 -c "print('%.3f' % ($wire / $zs))") | $(python3 -c "print('%.3f' % ($zwire / $zs))") |"
      rm -rf "$r"
    done
  done
done
