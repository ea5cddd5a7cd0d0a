#!/usr/bin/env bash
# bench/delta.sh - delta downloads (issue 15): bytes on the wire to
# substitute version 2 of an item with `cairn fetch --ipfs-gateway` when
# version 1 is in the target (same name, another hash: fetch seeds its
# block cache from it), against downloading v2's NAR as zstd -3 (what
# publish bakes) or xz -6 (Nix's default), for several chunkers.
#
#   bench/delta.sh CAIRN [CHUNKER...]     (default: fastcdc size-262144
#                                          size-65536 size-16384)
#   env: REFS, DEBS (below), ONLY=REGEX (the cases to run), in /dev/shm
#
# Cases:
#   a-refsN  a rebuild against a dependency whose store path changed: a
#            real tree (BASE, default the first 16 MiB of ELF files in
#            /usr/bin) with the dependency's store path written at random
#            offsets, one per N bytes on average (REFS, default "16384
#            4096"), the same offsets in v1 and v2, dep-1.0's first build
#            in v1 and its second in v2 (Nix rewrites references in place,
#            so lengths do not change);
#   b-files  a few files changed: 100 bytes inserted in one file, 4 KiB
#            overwritten in another, a 10 KiB file added;
#   c-DEB    two versions of a Debian package found in
#            /var/cache/apt/archives (DEBS, default "libzstd-dev rsync
#            nginx"), each `dpkg-deb -x` into a tree.
# Every item (v1 and v2 of each case, the two builds of dep-1.0) is built
# by nix-build into a private store (NIX_STORE_DIR under $W, no sandbox)
# that `cairn publish --ipfs --ipfs-chunker CHUNKER` serves: the DAG
# measured is the one publish serves and its narinfo's IPFS field names
# (checked against `cairn ipfs add`).  v2 is really fetched (`cairn fetch
# --nar-dir`, v1's NAR there under the same name), narinfo from publish,
# blocks from publish's own gateway; "wire" is the sum of publish's /ipfs/
# response bodies (its access log), "reqs" their number.  fetch asks for
# leaves as CARs with Accept-Encoding (publish sends them zstd -3), so
# "wire" is compressed; "wire, zstd" replays the same requests with
# Accept-Encoding: zstd (equal unless fetch asked for raw blocks).  Case (a) runs twice: seed "plain" (v1 as it
# is) and "rewritten" (the dependency's old build is in the target under
# its name and v2's References name the new one, so fetch rewrites v1's
# references before seeding, as Nix rewrites them).  Prints a Markdown
# table.
set -euo pipefail
CAIRN=$(realpath "${1:?usage: bench/delta.sh CAIRN [CHUNKER...]}")
shift
CHUNKERS=${*:-fastcdc size-262144 size-65536 size-16384}
REFS=${REFS:-16384 4096}
DEBS=${DEBS-libzstd-dev rsync nginx}
ONLY=${ONLY:-.} # a regex: the cases to run
cd "$(dirname "$0")/.."
SRC=$PWD
W=$(mktemp -d /dev/shm/cairn-delta.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; chmod -R u+w "$W"; rm -rf "$W"' EXIT
V=$SRC/tests/vectors/nix/keys
SEC=$V/cache.example.org-1.sec
PUB=$V/cache.example.org-1.pub

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

# a private store that nix-build builds into and publish serves
export NIX_STORE_DIR=$W/store
export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
experimental-features = nix-command
"
export XDG_CACHE_HOME=$W/xdg/cache XDG_CONFIG_HOME=$W/xdg/config XDG_DATA_HOME=$W/xdg/data \
  XDG_STATE_HOME=$W/xdg/state
SURI="local?store=$NIX_STORE_DIR&state=$W/var/nix&log=$W/var/log/nix"
PUBARGS=(--store "$NIX_STORE_DIR" --db "$W/var/nix/db/db.sqlite" --log-dir "$W/var/log/nix/drvs")
cat > "$W/dep.nix" << 'EOF'
{ v }: derivation {
  name = "dep-1.0";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  args = [ "-c" "mkdir $out && echo ${v} > $out/version" ];
}
EOF
# an item NAME holding the files of the host's SRC, built against the
# build DEPV of dep-1.0 (none when empty)
cat > "$W/item.nix" << 'EOF'
{ name, src, depv ? "" }: derivation {
  inherit name src;
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  dep = if depv == "" then "" else import ./dep.nix { v = depv; };
  args = [ "-c" "mkdir $out && cp -r $src/. $out/" ];
}
EOF
nixb() { nix-build --store "$SURI" --no-out-link --quiet "$@"; }
DEP1=$(nixb "$W/dep.nix" --argstr v 1)
DEP2=$(nixb "$W/dep.nix" --argstr v 2)

# refs TREE PATH EVERY: write PATH at seeded random offsets
refs() {
  python3 - "$@" <<'PY'
import os, random, sys
tree, path, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
ref = path.encode()
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
  cp -r "$BASE" "$W/$c-1"; refs "$W/$c-1" "$DEP1" "$every"
  cp -r "$BASE" "$W/$c-2"; refs "$W/$c-2" "$DEP2" "$every"
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

# the items: v1 and v2 of every case
mapfile -t cases < <(printf '%s\n' "${cases[@]}" | grep -E "$ONLY")
declare -A V1 V2
for c in "${cases[@]}"; do
  d1=() d2=()
  case $c in a-*) d1=(--argstr depv 1) d2=(--argstr depv 2) ;; esac
  V1[$c]=$(nixb "$W/item.nix" --argstr name "$c" --argstr src "$W/$c-1" "${d1[@]}")
  V2[$c]=$(nixb "$W/item.nix" --argstr name "$c" --argstr src "$W/$c-2" "${d2[@]}")
done

# publish CHUNKER: start publish --ipfs on the store; sets PU, PPID_, ALOG
publish() {
  ALOG=$W/access.log
  : > "$ALOG"
  rm -f "$W/pub.port"
  "$CAIRN" publish "${PUBARGS[@]}" --listen 127.0.0.1:0 --port-file "$W/pub.port" \
    --key "$SEC" --compression zstd --ipfs --ipfs-chunker "$1" --access-log "$ALOG" \
    > "$W/publish.log" 2>&1 &
  PPID_=$!
  pids+=("$PPID_")
  for _ in $(seq 600); do [ -s "$W/pub.port" ] && break; sleep 0.05; done
  PU=http://127.0.0.1:$(cat "$W/pub.port")
}

echo "| case | NAR v2 | zstd -3 | xz -6 | chunker | seed | blocks v2 | wire | wire, zstd | reqs | wire / zstd NAR | zstd wire / zstd NAR |"
echo "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"
for c in "${cases[@]}"; do
  v1=${V1[$c]} v2=${V2[$c]}
  nix-store --store "$SURI" --dump "$v1" > "$W/$c-1.nar"
  nix-store --store "$SURI" --dump "$v2" > "$W/$c-2.nar"
  nar=$(stat -c %s "$W/$c-2.nar")
  zs=$(zstd -3 -T1 -q -c "$W/$c-2.nar" | wc -c)
  xs=$(xz -6 -T1 -c "$W/$c-2.nar" | wc -c)
  seeds=plain
  case $c in a-*) seeds="plain rewritten" ;; esac
  for ch in $CHUNKERS; do
    publish "$ch"
    cid=$("$CAIRN" ipfs add --chunker "$ch" --car "$W/v2.car" "$W/$c-2.nar")
    blocks=$("$CAIRN" ipfs car "$W/v2.car" | sed -n 's/^blocks //p')
    named=$(curl -sf "$PU/$(basename "$v2" | cut -c1-32).narinfo" | sed -n 's/^IPFS: //p')
    [ "$named" = "$cid" ] || { echo "error: $c $ch: publish names '$named', not $cid" >&2; exit 1; }
    for seed in $seeds; do
      r=$W/run-$c-$ch-$seed
      mkdir -p "$r/nars"
      cp "$W/$c-1.nar" "$r/nars/$(basename "$v1").nar" # v1, same name
      # the dependency's old build, by name: fetch maps it to v2's reference
      if [ "$seed" = rewritten ]; then : > "$r/nars/$(basename "$DEP1").nar"; fi
      from=$(wc -l < "$ALOG")
      "$CAIRN" fetch -q --no-cache --json --from "$PU" --trusted-key "$PUB" \
        --store-dir "$NIX_STORE_DIR" --nar-dir "$r/nars" --block-cache "$r/blocks" \
        --ipfs-chunker "$ch" --ipfs-gateway "$PU" "$v2" > "$r/j"
      cmp -s "$r/nars/$(basename "$v2").nar" "$W/$c-2.nar" || { echo "error: $c $ch: wrong NAR" >&2; exit 1; }
      python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["items"][0]["compression"]=="ipfs", d' "$r/j"
      want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ipfs"]["requests"])' "$r/j")
      for _ in $(seq 100); do # the access log may lag the responses
        tail -n +$((from + 1)) "$ALOG" | grep ' "GET /ipfs/' > "$r/log" || true
        [ "$(wc -l < "$r/log")" -ge "$want" ] && break
        sleep 0.05
      done
      wire=$(awk '{s += $10} END {print s+0}' "$r/log")
      reqs=$(wc -l < "$r/log")
      zwire=0
      while read -r u; do
        zwire=$((zwire + $(curl -sf -H 'Accept-Encoding: zstd' -o /dev/null -w '%{size_download}' "$PU$u")))
      done < <(awk '{print $7}' "$r/log")
      echo "| $c | $nar | $zs | $xs | $ch | $seed | $blocks | $wire | $zwire | $reqs | $(python3 -c "print('%.3f' % ($wire / $zs))") | $(python3 -c "print('%.3f' % ($zwire / $zs))") |"
      rm -rf "$r"
    done
    kill "$PPID_"; wait "$PPID_" 2>/dev/null || true
  done
done
