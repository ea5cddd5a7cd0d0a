#!/usr/bin/env bash
# Narinfo lookups per second: `cairn weather` over N store paths against
# three local binary caches (static directories of generated narinfos, each
# behind its own nginx), next to `curl --parallel` fetching the same URLs.
# Prints a Markdown table for RESULTS-weather.md.
#
# usage: bench/weather.sh [-n PATHS] [-r RUNS] [-c CAIRN] [-j JOBS] [-k CONNS] [-P PUBLISHER]
#   PATHS        store paths (default 10000); 3 x PATHS lookups per run
#   RUNS         repetitions (default 5); the table shows the median
#   CAIRN        the cairn binary (default build/src/cairn)
#   JOBS, CONNS  cairn weather --jobs / --connections (default 256 / 8)
#   PUBLISHER    a cairn binary that has `publish`: also serve a fourth
#                generated cache with `PUBLISHER publish --binary-cache DIR`
#                (default: CAIRN when it has publish, else none)
# The narinfos are unsigned and name nars that do not exist (weather never
# downloads a nar); the third cache lacks every 10th one, so its 404 path is
# exercised too.  nginx runs with one worker per cache, access log off.
set -euo pipefail
cd "$(dirname "$0")/.."
n=10000 runs=5 cairn=build/src/cairn jobs=256 conns=8 publisher=
while getopts n:r:c:j:k:P:h o; do
  case $o in
    n) n=$OPTARG ;;
    r) runs=$OPTARG ;;
    c) cairn=$OPTARG ;;
    j) jobs=$OPTARG ;;
    k) conns=$OPTARG ;;
    P) publisher=$OPTARG ;;
    *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
export CAIRN SRCDIR
CAIRN=$(realpath "$cairn")
SRCDIR=$PWD
. tests/integration/lib.sh
. tests/integration/serve-lib.sh
skip_unless nginx python3 curl /usr/bin/time

for i in 1 2 3; do
  extra=()
  [ "$i" != 3 ] || extra=(--missing-every 10)
  python3 bench/gen-narinfos.py "$TMP/c$i" "$n" --paths "$TMP/paths" "${extra[@]}"
done
urls=()
for i in 1 2 3; do
  serve_nginx "$TMP/c$i"
  urls+=("http://127.0.0.1:$SERVE_PORT")
done
[ -n "$publisher" ] || { "$CAIRN" publish -h >/dev/null 2>&1 && publisher=$CAIRN; } || true
if [ -n "$publisher" ]; then
  python3 bench/gen-narinfos.py "$TMP/c4" "$n"
  "$publisher" publish --binary-cache "$TMP/c4" --listen 127.0.0.1:0 --port-file "$TMP/pub.port" \
    --threads 1 >"$TMP/publish.log" 2>&1 &
  cleanup_hooks+=("kill $!")
  for _ in $(seq 100); do [ -s "$TMP/pub.port" ] && break; sleep 0.05; done
  urls+=("http://127.0.0.1:$(cat "$TMP/pub.port")")
fi
from=()
for u in "${urls[@]}"; do from+=(--from "$u"); done

# curl's input: one url/output pair per lookup
for u in "${urls[@]}"; do
  sed -e 's|^/nix/store/\([^-]*\)-.*|url = "'"$u"'/\1.narinfo"\noutput = "/dev/null"|' "$TMP/paths"
done >"$TMP/curl.cfg"
lookups=$(( n * ${#urls[@]} ))

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
now() { date +%s.%N; }

cr=() cw=() kr=() cpu=()
for r in $(seq "$runs"); do
  t0=$(now)
  /usr/bin/time -o "$TMP/time" -f '%U %S' \
    "$CAIRN" weather --json --jobs "$jobs" --connections "$conns" "${from[@]}" - <"$TMP/paths" >"$TMP/w.json"
  t1=$(now)
  cpu+=("$(awk -v n="$lookups" '{printf "%.1f", ($1 + $2) * 1e6 / n}' "$TMP/time")")
  cr+=("$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["lookups_per_second"]))' "$TMP/w.json")")
  cw+=("$(python3 -c "print(round($lookups / ($t1 - $t0)))")")
  t0=$(now)
  curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max 64 -K "$TMP/curl.cfg" 2>/dev/null || true
  t1=$(now)
  kr+=("$(python3 -c "print(round($lookups / ($t1 - $t0)))")")
done
avail=$(python3 -c 'import json,sys; print(" / ".join("%d" % s["available"] for s in json.load(open(sys.argv[1]))["servers"]))' "$TMP/w.json")

echo "paths: $n, servers: ${#urls[@]} (nginx x3${publisher:+, cairn publish}), lookups per run: $lookups, runs: $runs; available per server: $avail; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| client | lookups/s (median) | runs |"
echo "|---|---:|---|"
echo "| cairn weather, survey only (--jobs $jobs --connections $conns) | $(printf '%s\n' "${cr[@]}" | median) | ${cr[*]} |"
echo "| cairn weather, whole process | $(printf '%s\n' "${cw[@]}" | median) | ${cw[*]} |"
echo "| cairn weather CPU (user + sys), µs per lookup | $(printf '%s\n' "${cpu[@]}" | median) | ${cpu[*]} |"
echo "| curl --parallel --parallel-max 64 | $(printf '%s\n' "${kr[@]}" | median) | ${kr[*]} |"
