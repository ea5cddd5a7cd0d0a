#!/usr/bin/env bash
# cairn monitor's first full pass: three local binary caches (static
# directories of generated narinfos) x PATHS items, the path list given
# with --paths; the time from start until the pass is recorded (every
# answer in the database, every verdict settled), as narinfo lookups per
# second; then the overview page's and an items page's time to first byte
# with that database; the CPU the monitor uses over IDLE seconds after the
# pass, when nothing changes (from /proc/PID/stat); its peak memory
# (VmHWM).  The caches are served two ways, each pass with a database of
# its own: by `cairn publish --binary-cache` (the batch route: 100
# narinfos a request) and by nginx (one request a narinfo; access log
# off); next to them, `curl --parallel` fetching every narinfo from the
# nginx ones, what one request a lookup costs on this machine without a
# monitor.  Then, with -m BIG, the last pass's database is grown directly
# (sqlite3) to BIG items, each on the three servers, a monitor started on
# it, and the overview's, the summary's and the disagreements' time to
# first byte measured (the median of 5, while that monitor's first pass
# over the BIG items runs, the worst case).
#
# usage: bench/monitor.sh [-n PATHS] [-m BIG] [-i IDLE] [-s SERVERS] [-c CAIRN]
#   PATHS    store paths (default 20000); 3 x PATHS lookups
#   BIG      items for the page timings (default 0: none)
#   IDLE     seconds of steady state measured (default 10)
#   SERVERS  publish, nginx or both (default both)
#   CAIRN    the cairn binary (default build/src/cairn)
# The narinfos are unsigned (every verdict is "unsigned", but for the
# third cache's missing every 10th: "only-one"); no NAR is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
n=20000 cairn=build/src/cairn big=0 idle=10 kinds=both
while getopts n:m:i:s:c:h o; do
  case $o in
    n) n=$OPTARG ;;
    m) big=$OPTARG ;;
    i) idle=$OPTARG ;;
    s) kinds=$OPTARG ;;
    c) cairn=$OPTARG ;;
    *) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
[ "$kinds" != both ] || kinds="publish nginx"
export CAIRN SRCDIR
CAIRN=$(realpath "$cairn")
SRCDIR=$PWD
. tests/integration/lib.sh
skip_unless nginx python3 curl sqlite3

for i in 1 2 3; do
  extra=()
  [ "$i" != 3 ] || extra=(--missing-every 10)
  python3 bench/gen-narinfos.py "$TMP/c$i" "$n" --paths "$TMP/paths" "${extra[@]}" >/dev/null
done
from_nginx=() from_publish=()
for i in 1 2 3; do
  case " $kinds " in *" nginx "*)
    nginx_start "nginx-$i" "$TMP/c$i" "" "access_log off;" 1
    from_nginx+=(--from "http://127.0.0.1:$NGINX_PORT") ;;
  esac
  case " $kinds " in *" publish "*)
    "$CAIRN" publish --binary-cache "$TMP/c$i" --listen 127.0.0.1:0 \
      --port-file "$TMP/pub$i.port" >"$TMP/pub$i.log" 2>&1 &
    cleanup_hooks+=("kill $!")
    from_publish+=(--from "http://127.0.0.1:$(port_from_file "$TMP/pub$i.port" $! 15)") ;;
  esac
done
now() { date +%s.%N; }
lookups=$((n * 3))
ttfb() { curl -s -o /dev/null -w '%{time_starttransfer}' "$url$1"; }
# CPU ticks (user + system) of PID, from /proc/PID/stat (fields 14, 15,
# counted after the command's closing parenthesis)
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
passes() { curl -sf "$url/metrics" | awk '$1 == "cairn_monitor_passes_total" {print $2}'; }

echo "paths: $n, servers: 3, lookups per pass: $lookups; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '| servers | items | lookups | first pass (s) | lookups/s | overview TTFB (ms) | items page TTFB (ms) | idle CPU (%%) | max RSS (MiB) |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
# pass KIND FROM...: a monitor's first pass from an empty database
pass() {
  local kind=$1; shift
  rm -f "$TMP"/m.sqlite*
  t0=$(now)
  "$CAIRN" monitor "$@" --db "$TMP/m.sqlite" --paths "$TMP/paths" --listen 127.0.0.1:0 \
    --port-file "$TMP/m-$kind.port" --interval 86400 --poll 100ms >"$TMP/m-$kind.log" 2>&1 &
  pid=$!
  cleanup_hooks+=("kill $pid 2>/dev/null")
  url=http://127.0.0.1:$(port_from_file "$TMP/m-$kind.port" "$pid" 15)
  wait_for 600 eval '[ "$(passes)" = 1 ]'
  t1=$(now)
  items=$(curl -sf "$url/api/v1/summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"])')
  c0=$(ticks "$pid"); s0=$(now)
  sleep "$idle"
  c1=$(ticks "$pid"); s1=$(now)
  hwm=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$pid/status")
  python3 - "$kind" "$items" "$lookups" "$t0" "$t1" "$(ttfb /)" "$(ttfb '/items?verdict=unsigned')" \
    "$c0" "$c1" "$s0" "$s1" "$(getconf CLK_TCK)" "$hwm" <<'PY'
import sys
kind, items, lookups, t0, t1, o, l, c0, c1, s0, s1, hz, hwm = sys.argv[1:]
s = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(hz) / (float(s1) - float(s0)) * 100
print(f"| {kind} | {items} | {lookups} | {s:.2f} | {int(lookups) / s:.0f} | {float(o) * 1000:.1f} |"
      f" {float(l) * 1000:.1f} | {cpu:.2f} | {int(hwm) / 1024:.0f} |")
PY
  kill "$pid"
  wait_gone "$pid" 30
}
for kind in $kinds; do
  if [ "$kind" = publish ]; then pass publish "${from_publish[@]}"; else pass nginx "${from_nginx[@]}"; fi
done
if [ ${#from_nginx[@]} -gt 0 ]; then
  for ((k = 1; k < ${#from_nginx[@]}; k += 2)); do
    sed -e 's|^/nix/store/\([^-]*\)-.*|url = "'"${from_nginx[$k]}"'/\1.narinfo"\noutput = "/dev/null"|' "$TMP/paths"
  done >"$TMP/curl.cfg"
  t0=$(now)
  curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max 64 -K "$TMP/curl.cfg" 2>/dev/null || true
  t1=$(now)
  printf '\ncurl --parallel --parallel-max 64, every narinfo from the nginx servers: %s lookups/s\n' \
    "$(python3 -c "print(round($lookups / ($t1 - $t0)))")"
fi
from=("${from_publish[@]}" "${from_nginx[@]}")
from=("${from[@]:0:6}")
[ "$big" -gt "$n" ] || exit 0

# ---- the pages with BIG items: grown in SQL, one row per item and server
# (1 in 100 differs, 1 in 10 on one server, the rest unsigned), the
# counters kept by the schema's triggers as the monitor would
more=$((big - n))
tb0=$(now)
sqlite3 "$TMP/m.sqlite" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $more)
INSERT INTO items(hash, path, verdict, verdict_since, first_seen, last_seen)
SELECT printf('%032d', i), '/nix/store/' || printf('%032d', i) || '-synthetic-' || i,
  CASE WHEN i % 100 = 0 THEN 1 WHEN i % 10 = 0 THEN 3 ELSE 4 END,
  1700000000 + i, 1700000000 + i, 1700000000 + i FROM c;
INSERT INTO obs(item, server, state, sig, nar_hash, nar_size, refs, first_seen, last_seen)
SELECT it.id, s.id, 1, 1,
  'sha256:' || CASE WHEN it.verdict = 1 THEN s.id ELSE 0 END || it.hash, 1000, '',
  it.first_seen, it.first_seen
FROM items it JOIN servers s WHERE it.path LIKE '%-synthetic-%'
  AND (it.verdict <> 3 OR s.id = 1);
COMMIT;
SQL
tb1=$(now)
"$CAIRN" monitor "${from[@]}" --db "$TMP/m.sqlite" --listen 127.0.0.1:0 \
  --port-file "$TMP/m2.port" --interval 86400 --poll 100ms >"$TMP/m2.log" 2>&1 &
pid=$!
cleanup_hooks+=("kill $pid 2>/dev/null")
url=http://127.0.0.1:$(port_from_file "$TMP/m2.port" "$pid" 60)
wait_for 60 curl -sf -o /dev/null "$url/api/v1/summary"
median() { # URL: the median of 5 times to first byte, in ms
  for _ in 1 2 3 4 5; do ttfb "$1"; echo; done | sort -n | sed -n 3p |
    awk '{printf "%.1f", $1 * 1000}'
}
total=$(curl -sf "$url/api/v1/summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"])')
o=$(median /); a=$(median /api/v1/summary); d=$(median '/items?verdict=differs')
printf '\n(database grown by %d items in %.0f s)\n\n' "$more" "$(echo "$tb1 - $tb0" | bc -l)"
printf '| items in the database | overview TTFB (ms) | summary TTFB (ms) | disagreements TTFB (ms) |\n'
printf '|---|---|---|---|\n'
printf '| %s | %s | %s | %s |\n' "$total" "$o" "$a" "$d"
kill "$pid"
