#!/usr/bin/env bash
# The IPFS gateway of `cairn publish --ipfs` and `cairn mirror --ipfs`
# against nginx serving the same bytes as files (every block a file named
# by its CID, and the whole CAR as one file), on one item of MIB MiB of
# random bytes:
#   (a) the whole DAG as a CAR (?format=car): MB/s of one curl download;
#       cairn cuts it from the store item (publish) or the cached nar
#       (mirror, zstd: decompressed on the fly) and hashes every chunk;
#       nginx sends a file
#   (b) raw chunks (?format=raw) at random: requests/s and MB/s with
#       wrk -t2 -c8 -d10s; publish serialises the item up to the chunk
#       for each (the store has no offsets), the mirror decompresses its
#       zstd nar from the nearest point an earlier request stopped at
#       (lib/nar-cursor.c), nginx sends a 256 KiB file
#   (c) raw chunks in file order, as Helia and cairn fetch ask for them:
#       the same wrk, each of its 2 threads walking the chunks in order
#       over its 4 connections (so up to 8 consecutive chunks at once)
# Columns: publish over the store, publish over a binary-cache directory
# holding the item's zstd nar (decompressed on the fly, as the mirror
# does), the mirror, nginx.  Medians of RUNS runs.  Prints a Markdown table.  -B CAIRN2 also runs
# the mirror of another build (e.g. main's, for a before/after) in the
# same run: one more column.
#
# usage: bench/ipfs-gateway.sh [-n RUNS] [-w WORK] [-c CAIRN] [-B CAIRN2] [-s MIB]
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3 work=/dev/shm/cairn-bench-ipfs-gw cairn=build/src/cairn mib=128 base=
while getopts n:w:c:B:s:h o; do
  case $o in
    n) runs=$OPTARG ;;
    w) work=$OPTARG ;;
    c) cairn=$OPTARG ;;
    B) base=$(realpath "$OPTARG") ;;
    s) mib=$OPTARG ;;
    *) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
for t in wrk nginx curl python3 nix-build; do
  command -v "$t" > /dev/null || { echo "bench/ipfs-gateway.sh: $t is required" >&2; exit 1; }
done
CAIRN=$(realpath "$cairn")
SRCDIR=$PWD
export CAIRN SRCDIR
# shellcheck source=../tests/integration/lib.sh
. tests/integration/lib.sh
# shellcheck source=../tests/integration/nix-lib.sh
. tests/integration/nix-lib.sh
# shellcheck source=../tests/integration/publish-lib.sh
. tests/integration/publish-lib.sh
# shellcheck source=../tests/integration/mirror-lib.sh
. tests/integration/mirror-lib.sh
set +e +o pipefail
nix_lib_init

rm -rf "$work"
mkdir -p "$work/www/ipfs"
cleanup_hooks+=("chmod -R u+w '$work' 2>/dev/null; rm -rf '$work'")
echo "== building one item of $mib MiB" >&2
pstore_init "$work/src"
big=$(pstore_build "$work/src" 1 gwbig $((mib * 1048576)) 2> /dev/null) || exit 1
"$CAIRN" key generate --format nix --secret "$work/k.sec" --public "$work/k.pub" bench-1
publish_start "${PSTORE_ARGS[@]}" --compression zstd --key "$work/k.sec" --ipfs || exit 1
h=$(basename "$big" | cut -c1-32)
ni=$(curl -sf "$PUBLISH_URL/$h.narinfo")
root=$(narinfo_field "$ni" IPFS)
echo "== root $root" >&2
curl -sf -o "$work/www/item.car" "$PUBLISH_URL/ipfs/$root?format=car"
# every block a file named by its CID, and the chunks' CIDs for wrk
python3 "$SRCDIR/tests/integration/car-blocks.py" "$work/www/item.car" "$work/www/ipfs" |
  awk '$2 == "raw" {print $1}' > "$work/leaves"
# the same item in a binary-cache directory (zstd nar, as `nix copy` writes
# it with compression=zstd), served by publish --binary-cache --ipfs
nix copy --quiet --no-check-sigs --from "$(pstore_uri "$work/src")" \
  --to "file://$work/dir?compression=zstd" "$big" || exit 1
P_URL=$PUBLISH_URL P_PID=$PUBLISH_PID
publish_start --binary-cache "$work/dir" --ipfs || exit 1
D=$PUBLISH_URL D_PID=$PUBLISH_PID
PUBLISH_URL=$P_URL PUBLISH_PID=$P_PID
test "$(narinfo_field "$(curl -sf "$D/$h.narinfo")" IPFS)" = "$root" ||
  { echo "publish --binary-cache names another root" >&2; exit 1; }
mirror_start m --upstream "$PUBLISH_URL" --cache "$work/mc" --trusted-key "$work/k.pub" --ipfs || exit 1
M=http://127.0.0.1:$MIRROR_PORT
MB= M_PID=$MIRROR_PID
if [ -n "$base" ]; then
  # the other build's mirror, its own cache, in front of the same publish
  saved=$CAIRN
  CAIRN=$base
  mirror_start mb --upstream "$PUBLISH_URL" --cache "$work/mcb" --trusted-key "$work/k.pub" --ipfs || exit 1
  CAIRN=$saved
  MB=http://127.0.0.1:$MIRROR_PORT
fi
# the narinfo first: a nar the mirror has no signed claim on is passed
# through, not cached.  Both mirrors' narinfos before either's nar: the
# first nar request makes publish bake the item, and random bytes do not
# compress, so its narinfo says Compression: none afterwards; the bench is
# of zstd nars, which the mirror must decompress to cut chunks
declare -A MNI
for u in $M $MB; do MNI[$u]=$(curl -sf "$u/$h.narinfo"); done
for u in $M $MB; do
  echo "== $u caches the $(narinfo_field "${MNI[$u]}" Compression) nar" >&2
  curl -sf -o /dev/null "$u/$(narinfo_field "${MNI[$u]}" URL)"
  wait_for 120 bash -c 'test "$(curl -s -o /dev/null -w "%{http_code}" "$1")" = 200' _ "$u/ipfs/$root?format=raw" ||
    { echo "the mirror $u did not index the item" >&2; exit 1; }
done
nginx_start ngx "$work/www" || exit 1

# a wrk script that asks for random chunks
{
  echo 'local cids = {}'
  echo "for l in io.lines('$work/leaves') do cids[#cids + 1] = l end"
  echo 'math.randomseed(42)'
  echo 'request = function()'
  echo '  return wrk.format("GET", PREFIX .. cids[math.random(#cids)] .. SUFFIX)'
  echo 'end'
} > "$work/rand.lua.in"
# and one that walks them in order (each wrk thread its own walk)
{
  echo 'local cids = {}'
  echo "for l in io.lines('$work/leaves') do cids[#cids + 1] = l end"
  echo 'local i = 0'
  echo 'request = function()'
  echo '  i = i % #cids + 1'
  echo '  return wrk.format("GET", PREFIX .. cids[i] .. SUFFIX)'
  echo 'end'
} > "$work/seq.lua.in"
mklua() { { echo "PREFIX = '$1'"; echo "SUFFIX = '$2'"; cat "$work/$4.lua.in"; } > "$work/$4-$3.lua"; }
mklua /ipfs/ '?format=raw' cairn rand
mklua /ipfs/ '' nginx rand
mklua /ipfs/ '?format=raw' cairn seq
mklua /ipfs/ '' nginx seq

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
car_mbs() { curl -sf -o /dev/null -w '%{speed_download}\n' "$1" | awk '{printf "%.0f\n", $1 / 1e6}'; }
raw_rps() { wrk -t2 -c8 -d10s -s "$work/${3:-rand}-$2.lua" "$1" 2> /dev/null | awk '/^Requests\/sec:/ {print $2}'; }

declare -A R
for ((k = 0; k < runs; k++)); do
  echo "== run $((k + 1))/$runs" >&2
  R[car_pub]+="$(car_mbs "$PUBLISH_URL/ipfs/$root?format=car") "
  R[car_mir]+="$(car_mbs "$M/ipfs/$root?format=car") "
  R[car_dir]+="$(car_mbs "$D/ipfs/$root?format=car") "
  R[raw_dir]+="$(raw_rps "$D" cairn) "
  R[seq_dir]+="$(raw_rps "$D" cairn seq) "
  R[car_ngx]+="$(car_mbs "$NGINX_URL/item.car") "
  R[raw_pub]+="$(raw_rps "$PUBLISH_URL" cairn) "
  R[raw_mir]+="$(raw_rps "$M" cairn) "
  R[raw_ngx]+="$(raw_rps "$NGINX_URL" nginx) "
  R[seq_pub]+="$(raw_rps "$PUBLISH_URL" cairn seq) "
  R[seq_mir]+="$(raw_rps "$M" cairn seq) "
  R[seq_ngx]+="$(raw_rps "$NGINX_URL" nginx seq) "
  if [ -n "$MB" ]; then
    R[car_mb]+="$(car_mbs "$MB/ipfs/$root?format=car") "
    R[raw_mb]+="$(raw_rps "$MB" cairn) "
    R[seq_mb]+="$(raw_rps "$MB" cairn seq) "
  fi
done
med() { tr ' ' '\n' <<< "${R[$1]}" | grep . | median; }
mbs() { awk -v r="$1" 'BEGIN {printf "%.0f", r * 262144 / 1e6}'; }
echo
bh= bs= b_car= b_raw= b_seq= b_rawm= b_seqm=
if [ -n "$MB" ]; then
  bh=" mirror ($base) |" bs="---:|"
  b_car=" $(med car_mb) |" b_raw=" $(med raw_mb) |" b_seq=" $(med seq_mb) |"
  b_rawm=" $(mbs "$(med raw_mb)") |" b_seqm=" $(mbs "$(med seq_mb)") |"
fi
echo "| what ($mib MiB item, $(wc -l < "$work/leaves") chunks) | cairn publish | cairn publish --binary-cache (zstd nar) | cairn mirror |$bh nginx (files) |"
echo "|---|---:|---:|---:|$bs---:|"
echo "| (a) whole CAR, MB/s | $(med car_pub) | $(med car_dir) | $(med car_mir) |$b_car $(med car_ngx) |"
echo "| (b) random raw chunks, req/s | $(med raw_pub) | $(med raw_dir) | $(med raw_mir) |$b_raw $(med raw_ngx) |"
echo "| (b) same, MB/s | $(mbs "$(med raw_pub)") | $(mbs "$(med raw_dir)") | $(mbs "$(med raw_mir)") |$b_rawm $(mbs "$(med raw_ngx)") |"
echo "| (c) raw chunks in order, req/s | $(med seq_pub) | $(med seq_dir) | $(med seq_mir) |$b_seq $(med seq_ngx) |"
echo "| (c) same, MB/s | $(mbs "$(med seq_pub)") | $(mbs "$(med seq_dir)") | $(mbs "$(med seq_mir)") |$b_seqm $(mbs "$(med seq_ngx)") |"
curl -s "$M/metrics" | grep '^cairn_mirror_ipfs_nar_read_bytes_total' >&2
[ -z "$MB" ] || mirror_stop
MIRROR_PID=$M_PID
mirror_stop
publish_stop
PUBLISH_PID=$D_PID
publish_stop
