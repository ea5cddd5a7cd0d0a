#!/usr/bin/env bash
# cairn monitor's first full pass: three local binary caches (static
# directories of generated narinfos, each behind its own nginx) x PATHS
# items, the path list given with --paths; the time from start until the
# pass is recorded (every answer in the database, every verdict settled),
# as narinfo lookups per second; then the overview page's and an items
# page's time to first byte with that database.
#
# usage: bench/monitor.sh [-n PATHS] [-c CAIRN]
#   PATHS  store paths (default 20000); 3 x PATHS lookups
#   CAIRN  the cairn binary (default build/src/cairn)
# The narinfos are unsigned (every verdict is "unsigned", but for the
# third cache's missing every 10th: "only-one"); no NAR is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
n=20000 cairn=build/src/cairn
while getopts n:c:h o; do
  case $o in
    n) n=$OPTARG ;;
    c) cairn=$OPTARG ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
export CAIRN SRCDIR
CAIRN=$(realpath "$cairn")
SRCDIR=$PWD
. tests/integration/lib.sh
. tests/integration/serve-lib.sh
skip_unless nginx python3 curl

for i in 1 2 3; do
  extra=()
  [ "$i" != 3 ] || extra=(--missing-every 10)
  python3 bench/gen-narinfos.py "$TMP/c$i" "$n" --paths "$TMP/paths" "${extra[@]}" >/dev/null
done
from=()
for i in 1 2 3; do
  serve_nginx "$TMP/c$i"
  from+=(--from "http://127.0.0.1:$SERVE_PORT")
done
now() { date +%s.%N; }
t0=$(now)
"$CAIRN" monitor "${from[@]}" --db "$TMP/m.sqlite" --paths "$TMP/paths" --listen 127.0.0.1:0 \
  --port-file "$TMP/m.port" --interval 86400 --poll 100ms >"$TMP/m.log" 2>&1 &
pid=$!
cleanup_hooks+=("kill $pid 2>/dev/null")
url=http://127.0.0.1:$(port_from_file "$TMP/m.port" "$pid" 15)
passes() { curl -sf "$url/metrics" | awk '$1 == "cairn_monitor_passes_total" {print $2}'; }
wait_for 600 eval '[ "$(passes)" = 1 ]'
t1=$(now)
items=$(curl -sf "$url/api/v1/summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"])')
lookups=$((n * 3))
ttfb() { curl -s -o /dev/null -w '%{time_starttransfer}' "$url$1"; }
printf '| items | servers | lookups | first pass (s) | lookups/s | overview TTFB (ms) | items page TTFB (ms) |\n'
printf '|---|---|---|---|---|---|---|\n'
python3 - "$items" "$lookups" "$t0" "$t1" "$(ttfb /)" "$(ttfb '/items?verdict=unsigned')" <<'PY'
import sys
items, lookups, t0, t1, o, l = sys.argv[1:]
s = float(t1) - float(t0)
print(f"| {items} | 3 | {lookups} | {s:.2f} | {int(lookups) / s:.0f} | {float(o) * 1000:.1f} | {float(l) * 1000:.1f} |")
PY
kill "$pid"
