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
#       wrk -t2 -c8 -d10s; cairn serialises the item up to the chunk for
#       each (the store has no offsets), nginx sends a 256 KiB file
# Medians of RUNS runs.  Prints a Markdown table.
#
# usage: bench/ipfs-gateway.sh [-n RUNS] [-w WORK] [-c CAIRN] [-s MIB]
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3 work=/dev/shm/cairn-bench-ipfs-gw cairn=build/src/cairn mib=128
while getopts n:w:c:s:h o; do
  case $o in
    n) runs=$OPTARG ;;
    w) work=$OPTARG ;;
    c) cairn=$OPTARG ;;
    s) mib=$OPTARG ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
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
python3 - "$work/www/item.car" "$work/www/ipfs" "$work/leaves" << 'PY'
import base64, sys
b = open(sys.argv[1], 'rb').read()
def varint(i):
    n = s = 0
    while True:
        c = b[i]; i += 1; n |= (c & 0x7f) << s; s += 7
        if c < 0x80: return n, i
hl, i = varint(0); i += hl
leaves = open(sys.argv[3], 'w')
while i < len(b):
    sl, j = varint(i)
    cid = 'b' + base64.b32encode(b[j:j + 36]).decode().lower().rstrip('=')
    open(f"{sys.argv[2]}/{cid}", 'wb').write(b[j + 36:i + sl + (j - i)])
    if b[j + 1] == 0x55: leaves.write(cid + '\n')
    i = j + sl
PY
mirror_start m --upstream "$PUBLISH_URL" --cache "$work/mc" --trusted-key "$work/k.pub" --ipfs || exit 1
M=http://127.0.0.1:$MIRROR_PORT
# the narinfo first: a nar the mirror has no signed claim on is passed
# through, not cached
curl -sf -o /dev/null "$M/$h.narinfo"
curl -sf -o /dev/null "$M/$(narinfo_field "$ni" URL)"
wait_for 120 bash -c 'test "$(curl -s -o /dev/null -w "%{http_code}" "$1")" = 200' _ "$M/ipfs/$root?format=raw" ||
  { echo "the mirror did not index the item" >&2; exit 1; }
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
mklua() { { echo "PREFIX = '$1'"; echo "SUFFIX = '$2'"; cat "$work/rand.lua.in"; } > "$work/rand-$3.lua"; }
mklua /ipfs/ '?format=raw' cairn
mklua /ipfs/ '' nginx

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
car_mbs() { curl -sf -o /dev/null -w '%{speed_download}\n' "$1" | awk '{printf "%.0f\n", $1 / 1e6}'; }
raw_rps() { wrk -t2 -c8 -d10s -s "$work/rand-$2.lua" "$1" 2> /dev/null | awk '/^Requests\/sec:/ {print $2}'; }

declare -A R
for ((k = 0; k < runs; k++)); do
  echo "== run $((k + 1))/$runs" >&2
  R[car_pub]+="$(car_mbs "$PUBLISH_URL/ipfs/$root?format=car") "
  R[car_mir]+="$(car_mbs "$M/ipfs/$root?format=car") "
  R[car_ngx]+="$(car_mbs "$NGINX_URL/item.car") "
  R[raw_pub]+="$(raw_rps "$PUBLISH_URL" cairn) "
  R[raw_mir]+="$(raw_rps "$M" cairn) "
  R[raw_ngx]+="$(raw_rps "$NGINX_URL" nginx) "
done
med() { tr ' ' '\n' <<< "${R[$1]}" | grep . | median; }
mbs() { awk -v r="$1" 'BEGIN {printf "%.0f", r * 262144 / 1e6}'; }
echo
echo "| what ($mib MiB item, $(wc -l < "$work/leaves") chunks) | cairn publish | cairn mirror | nginx (files) |"
echo "|---|---:|---:|---:|"
echo "| (a) whole CAR, MB/s | $(med car_pub) | $(med car_mir) | $(med car_ngx) |"
echo "| (b) random raw chunks, req/s | $(med raw_pub) | $(med raw_mir) | $(med raw_ngx) |"
echo "| (b) same, MB/s | $(mbs "$(med raw_pub)") | $(mbs "$(med raw_mir)") | $(mbs "$(med raw_ngx)") |"
mirror_stop
publish_stop
