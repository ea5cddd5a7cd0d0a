#!/usr/bin/env bash
# cairn publish against nginx serving the same items statically (the
# `nix copy --to file://` directory of the same store paths), in one run:
#   (a) narinfo requests/s: wrk -t2 -c64 -d10s on one narinfo
#   (b) MB/s for a large nar (one 256 MiB item, random so incompressible):
#       cairn uncompressed (the nar made from the store files as it goes),
#       cairn zstd uncached (compressed on the fly, fresh cache each run),
#       cairn zstd cached (the baked file), against nginx's .nar and .nar.zst
#   (c) time to first byte of that nar, uncached (curl %{time_starttransfer})
#   (d) RSS with 1,000 keep-alive connections open, each having fetched a
#       narinfo (cairn: its process; nginx: master + workers), and with 50
#       clients in the middle of the large nar (4 MB/s each); and private
#       memory (RssAnon), since RSS also counts mapped file pages: cairn
#       sends large files from mappings it keeps (page cache, shared and
#       reclaimable, that nginx's sendfile uses unmapped)
# Medians of RUNS runs, alternating cairn and nginx; prints a Markdown
# table with the ratios cairn/nginx (above 1 means cairn is faster for
# (a)/(b)).  Without a working `cairn publish`, measures nginx alone and
# says so.
#
# usage: bench/publish.sh [-n RUNS] [-w WORK] [-c CAIRN] [-s MIB] [-r]
#   RUNS   repetitions (default 3)
#   WORK   scratch directory (default /dev/shm/cairn-bench-publish; needs
#          about 4x MIB of space), replaced on each run
#   CAIRN  the cairn binary (default build/src/cairn)
#   MIB    size of the large item in MiB (default 256)
#   -r     the large item is real machine code (this machine's shared
#          libraries, concatenated), which compresses, instead of random
#          bytes
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3 work=/dev/shm/cairn-bench-publish cairn=build/src/cairn mib=256 real=false
while getopts n:w:c:s:rh o; do
  case $o in
    r) real=true ;;
    n) runs=$OPTARG ;;
    w) work=$OPTARG ;;
    c) cairn=$OPTARG ;;
    s) mib=$OPTARG ;;
    *) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
for t in wrk nginx curl python3 nix nix-build; do
  command -v "$t" > /dev/null || { echo "bench/publish.sh: $t is required" >&2; exit 1; }
done
CAIRN=$(realpath "$cairn")
SRCDIR=$PWD
export CAIRN SRCDIR
ulimit -n 8192

# lib.sh's helpers (free_port, nginx_start, publish_start...) want TMP and
# a cleanup trap; its TMP is only for their small files.
# shellcheck source=../tests/integration/lib.sh
. tests/integration/lib.sh
# shellcheck source=../tests/integration/nix-lib.sh
. tests/integration/nix-lib.sh
# shellcheck source=../tests/integration/publish-lib.sh
. tests/integration/publish-lib.sh
set +e +o pipefail
nix_lib_init

have_cairn=true
"$CAIRN" publish -h > /dev/null 2>&1 || have_cairn=false

rm -rf "$work"
mkdir -p "$work"
cleanup_hooks+=("chmod -R u+w '$work' 2>/dev/null")
echo "== building the items (20 small paths, one of $mib MiB)" >&2
pstore_init "$work/src"
SRC=$(pstore_uri "$work/src")
small=$(pstore_build "$work/src" 20 pub 2000 2> /dev/null) || exit 1
source=/dev/urandom
if $real; then
  source=$work/real.bin
  find /usr/lib/x86_64-linux-gnu /usr/lib /usr/bin -type f -size +64k -print0 2> /dev/null |
    sort -z | xargs -0 cat 2> /dev/null | head -c $((mib * 1048576)) > "$source"
  [ "$(stat -c %s "$source")" = $((mib * 1048576)) ] || { echo "not enough machine code for -r" >&2; exit 1; }
fi
big=$(pstore_build "$work/src" 1 pubbig $((mib * 1048576)) 1 "$source" 2> /dev/null) || exit 1
nix copy --quiet --from "$SRC" --to "file://$work/bc?compression=none" "$small" "$big" || exit 1
nix copy --quiet --from "$SRC" --to "file://$work/bcz?compression=zstd" "$big" || exit 1
"$CAIRN" key generate --format nix --secret "$work/k.sec" --public "$work/k.pub" bench-1 2> /dev/null
hs=$(basename "$small" | cut -c1-32)
hb=$(basename "$big" | cut -c1-32)
nar_none=$(sed -n 's/^URL: //p' "$work/bc/$hb.narinfo")
nar_zst=$(sed -n 's/^URL: //p' "$work/bcz/$hb.narinfo")
narsize=$(sed -n 's/^NarSize: //p' "$work/bc/$hb.narinfo")

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f\n", a / b}'; }
declare -A R # "measure/server" -> one value per line

add() { [ -z "$2" ] || [ "$2" = n/a ] || R[$1]+="$2"$'\n'; }
rps() { wrk -t2 -c64 -d10s "$1" 2> /dev/null | awk '/^Requests\/sec:/ {print $2}'; }
# fetch URL: "TTFB_ms MB/s bytes" of one download; "n/a n/a 0" unless a
# complete 200 of at least 1 MiB (a failed read must not leave the previous
# run's figures in the variables)
fetch() {
  curl -s -o /dev/null --max-time 300 -w '%{http_code} %{time_starttransfer} %{speed_download} %{size_download}\n' "$1" |
    awk '$1 == 200 && $4 > 1048576 {printf "%.1f %.1f %d\n", $2 * 1000, $3 / 1e6, $4; next} {print "n/a n/a 0"}'
}
rss_kib() { local p s=0; for p in "$@"; do s=$((s + $(ps -o rss= -p "$p" 2> /dev/null || echo 0))); done; echo "$s"; }
# private memory (RssAnon): RSS without mapped file pages, which are page cache
anon_kib() { local p s=0; for p in "$@"; do s=$((s + $(awk '/^RssAnon:/{print $2}' /proc/"$p"/status 2> /dev/null || echo 0))); done; echo "$s"; }
nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID"); }
# hold N keep-alive connections, each after one request, until stdin closes
hold_conns() {
  python3 -c '
import socket, sys
port, path, n = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
conns = []
for i in range(n):
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: b\r\n\r\n")
    conns.append(c)
for c in conns:
    got = b""
    while b"\r\n\r\n" not in got:
        got += c.recv(65536)
print("ready", flush=True)
sys.stdin.read()
' "$@"
}
# rss_at_1000 PORT PID...: "RSS RssAnon" (KiB) of PIDs with 1000 connections held
rss_at_1000() {
  local port=$1 v
  shift
  coproc HOLD { hold_conns "$port" "/$hs.narinfo" 1000; }
  read -r -t 60 _ <&"${HOLD[0]}"
  sleep 0.5
  v="$(rss_kib "$@") $(anon_kib "$@")"
  eval "exec ${HOLD[1]}>&-"
  wait "$HOLD_PID" 2> /dev/null
  echo "$v"
}

# rss_streaming URL PID...: "RSS RssAnon" (KiB) of PIDs while 50 clients
# are in the middle of downloading URL at 4 MB/s each
rss_streaming() {
  local url=$1 pids=() v i
  shift
  for ((i = 0; i < 50; i++)); do
    curl -s -o /dev/null --max-time 20 --limit-rate 4M "$url" &
    pids+=($!)
  done
  sleep 3
  v="$(rss_kib "$@") $(anon_kib "$@")"
  kill "${pids[@]}" 2> /dev/null
  wait "${pids[@]}" 2> /dev/null
  echo "$v"
}

cairn_start() { publish_start "${PSTORE_ARGS[@]}" --key "$work/k.sec" "$@" 2>&1 >&2; }
if $have_cairn; then
  cairn_start --compression none || have_cairn=false
  publish_stop > /dev/null 2>&1
fi
$have_cairn || echo "== cairn publish is not available: nginx alone" >&2

nginx_start bc "$work/bc" "" "access_log off;" 2 || exit 1
NG_NONE=$NGINX_URL NG_NONE_PORT=$NGINX_PORT
ng_pids_none=$(nginx_pids)
nginx_start bcz "$work/bcz" "" "access_log off;" 2 || exit 1
NG_ZST=$NGINX_URL

for ((run = 1; run <= runs; run++)); do
  echo "== run $run of $runs" >&2
  # (a) narinfo requests/s
  curl -s -o /dev/null "$NG_NONE/$hs.narinfo"
  add a/nginx "$(rps "$NG_NONE/$hs.narinfo")"
  if $have_cairn; then
    cairn_start --compression none
    curl -s -o /dev/null "$PUBLISH_URL/$hs.narinfo"
    add a/cairn "$(rps "$PUBLISH_URL/$hs.narinfo")"
    # (b, c) the large nar, uncompressed, made from the store files
    read -r t s n < <(fetch "$PUBLISH_URL/$(sed -n 's/^URL: //p' < <(curl -s "$PUBLISH_URL/$hb.narinfo"))")
    [ "$n" = "$narsize" ] || { echo "warning: cairn nar is $n bytes, not $narsize" >&2; s=n/a t=n/a; }
    add b/cairn-none-first "$s"
    add c/cairn-none "$t"
    # again, once the check that follows an item's first stream is done
    # (steady state: it runs once per item)
    for ((i = 0; i < 100; i++)); do
      curl -s "$PUBLISH_URL/metrics" | grep -q '^cairn_publish_verified_total [1-9]' && break
      sleep 0.1
    done
    read -r t s n < <(fetch "$PUBLISH_URL/$(sed -n 's/^URL: //p' < <(curl -s "$PUBLISH_URL/$hb.narinfo"))")
    [ "$n" = "$narsize" ] || { echo "warning: cairn nar is $n bytes, not $narsize" >&2; s=n/a; }
    add b/cairn-none "$s"
    add r/cairn-after "$(rss_kib "$PUBLISH_PID")"
    # (d) memory at 1000 connections
    add d/cairn-base "$(rss_kib "$PUBLISH_PID")"
    add g/cairn-base "$(anon_kib "$PUBLISH_PID")"
    read -r v a < <(rss_at_1000 "$PUBLISH_PORT" "$PUBLISH_PID")
    add d/cairn "$v"
    add g/cairn "$a"
    read -r v a < <(rss_streaming "$PUBLISH_URL/$(curl -s "$PUBLISH_URL/$hb.narinfo" | sed -n 's/^URL: //p')" "$PUBLISH_PID")
    add e/cairn-none "$v"
    add f/cairn-none "$a"
    publish_stop > /dev/null 2>&1
    # --verify strict: the first stream hashes as it goes
    cairn_start --compression none --verify strict
    read -r t s n < <(fetch "$PUBLISH_URL/$(sed -n 's/^URL: //p' < <(curl -s "$PUBLISH_URL/$hb.narinfo"))")
    [ "$n" = "$narsize" ] || { echo "warning: cairn nar is $n bytes, not $narsize" >&2; s=n/a; }
    add b/cairn-none-strict "$s"
    publish_stop > /dev/null 2>&1
    # zstd, a fresh cache: on the fly, then baked
    rm -rf "$work/cache"
    cairn_start --compression zstd --cache "$work/cache"
    url=$(curl -s "$PUBLISH_URL/$hb.narinfo" | sed -n 's/^URL: //p')
    read -r t s n < <(fetch "$PUBLISH_URL/$url")
    add b/cairn-zstd-uncached "$s"
    read -r v a < <(rss_streaming "$PUBLISH_URL/$url" "$PUBLISH_PID")
    add e/cairn-zstd-uncached "$v"
    add f/cairn-zstd-uncached "$a"
    add c/cairn-zstd-uncached "$t"
    # Random data does not compress: once its bake has measured that, the
    # narinfo offers it uncompressed; the zstd URL of the first narinfo
    # (kept in $url) then serves the baked file, as to a client holding it.
    for ((i = 0; i < 600; i++)); do
      curl -s "$PUBLISH_URL/$hb.narinfo" | grep -Eq '^(FileSize:|Compression: none$)' && break
      sleep 0.2
    done
    curl -s "$PUBLISH_URL/$hb.narinfo" | grep -qx 'Compression: none' ||
      url=$(curl -s "$PUBLISH_URL/$hb.narinfo" | sed -n 's/^URL: //p')
    fetch "$PUBLISH_URL/$url" > /dev/null
    read -r t s n < <(fetch "$PUBLISH_URL/$url")
    add b/cairn-zstd-cached "$s"
    add c/cairn-zstd-cached "$t"
    publish_stop > /dev/null 2>&1
  fi
  read -r t s n < <(fetch "$NG_NONE/$nar_none")
  add b/nginx-none "$s"
  add c/nginx-none "$t"
  read -r t s n < <(fetch "$NG_ZST/$nar_zst")
  add b/nginx-zstd "$s"
  add c/nginx-zstd "$t"
  add d/nginx-base "$(rss_kib $ng_pids_none)"
  add g/nginx-base "$(anon_kib $ng_pids_none)"
  read -r v a < <(rss_at_1000 "$NG_NONE_PORT" $ng_pids_none)
  add d/nginx "$v"
  add g/nginx "$a"
  read -r v a < <(rss_streaming "$NG_NONE/$nar_none" $ng_pids_none)
  add e/nginx "$v"
  add f/nginx "$a"
done

m() { printf '%s' "${R[$1]:-}" | median; }
cat << EOF

Command: \`bench/publish.sh -n $runs -s $mib\`; $(nproc) CPUs, $(uptime | sed 's/.*load/load/'); $(date -u +%F).
Items: 20 small store paths (narinfo ~ $(stat -c %s "$work/bc/$hs.narinfo") bytes), one of $mib MiB of $($real && echo "machine code (-r; zstd file $(stat -c %s "$work/bcz/$nar_zst") bytes)" || echo "random data")
(NAR $narsize bytes).  nginx $(nginx -v 2>&1 | sed 's|.*/||'), 2 workers, sendfile, serving \`nix copy --to file://\` directories.
cairn publish: $($have_cairn && echo "$("$CAIRN" --version 2>/dev/null | head -n 1)" || echo "not available").
Medians of $runs runs.

| measure | cairn | nginx | cairn/nginx |
|---|---:|---:|---:|
| (a) narinfo requests/s (wrk -t2 -c64 -d10s) | $(m a/cairn) | $(m a/nginx) | $(ratio "$(m a/cairn)" "$(m a/nginx)") |
| (b) large nar MB/s, uncompressed (cairn: from the store, an item's first stream; NarHash checked after it, the default) | $(m b/cairn-none-first) | $(m b/nginx-none) | $(ratio "$(m b/cairn-none-first)" "$(m b/nginx-none)") |
| (b) large nar MB/s, uncompressed (cairn: first stream with --verify strict, hashed as it goes) | $(m b/cairn-none-strict) | $(m b/nginx-none) | $(ratio "$(m b/cairn-none-strict)" "$(m b/nginx-none)") |
| (b) large nar MB/s, uncompressed (cairn: from the store, later streams) | $(m b/cairn-none) | $(m b/nginx-none) | $(ratio "$(m b/cairn-none)" "$(m b/nginx-none)") |
| (b) large nar MB/s, zstd, uncached (on the fly) | $(m b/cairn-zstd-uncached) | $(m b/nginx-zstd) | $(ratio "$(m b/cairn-zstd-uncached)" "$(m b/nginx-zstd)") |
| (b) large nar MB/s, zstd, cached | $(m b/cairn-zstd-cached) | $(m b/nginx-zstd) | $(ratio "$(m b/cairn-zstd-cached)" "$(m b/nginx-zstd)") |
| (c) time to first byte, ms, uncompressed, uncached | $(m c/cairn-none) | $(m c/nginx-none) | $(ratio "$(m c/cairn-none)" "$(m c/nginx-none)") |
| (c) time to first byte, ms, zstd, uncached | $(m c/cairn-zstd-uncached) | $(m c/nginx-zstd) | $(ratio "$(m c/cairn-zstd-uncached)" "$(m c/nginx-zstd)") |
| (c) time to first byte, ms, zstd, cached | $(m c/cairn-zstd-cached) | $(m c/nginx-zstd) | $(ratio "$(m c/cairn-zstd-cached)" "$(m c/nginx-zstd)") |
| (d) RSS KiB, idle | $(m d/cairn-base) | $(m d/nginx-base) | $(ratio "$(m d/cairn-base)" "$(m d/nginx-base)") |
| (d) RSS KiB, 1,000 keep-alive connections | $(m d/cairn) | $(m d/nginx) | $(ratio "$(m d/cairn)" "$(m d/nginx)") |
| (d) private memory (RssAnon) KiB, idle | $(m g/cairn-base) | $(m g/nginx-base) | $(ratio "$(m g/cairn-base)" "$(m g/nginx-base)") |
| (d) private memory (RssAnon) KiB, 1,000 keep-alive connections | $(m g/cairn) | $(m g/nginx) | $(ratio "$(m g/cairn)" "$(m g/nginx)") |
| (d) RSS KiB, 50 clients in the middle of the $mib MiB nar, uncompressed | $(m e/cairn-none) | $(m e/nginx) | $(ratio "$(m e/cairn-none)" "$(m e/nginx)") |
| (d) RSS KiB, 50 clients in the middle of the $mib MiB nar, zstd on the fly | $(m e/cairn-zstd-uncached) | | |
| (d) private memory (RssAnon) KiB, 50 clients in the middle of the $mib MiB nar, uncompressed | $(m f/cairn-none) | $(m f/nginx) | $(ratio "$(m f/cairn-none)" "$(m f/nginx)") |
| (d) private memory (RssAnon) KiB, 50 clients in the middle of the $mib MiB nar, zstd on the fly | $(m f/cairn-zstd-uncached) | | |
| RSS KiB after serving the $mib MiB nar | $(m r/cairn-after) | | |

Raw values (one per run):
$(for k in $(printf '%s\n' "${!R[@]}" | sort); do printf -- '- %s: %s\n' "$k" "$(printf '%s' "${R[$k]}" | tr '\n' ' ')"; done)
EOF
nginx_stop
