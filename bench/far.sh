#!/usr/bin/env bash
# bench/far.sh - substitution over slow, far links (issue 17): the closure
# of bench/fetch.sh, plus one item of random bytes on the links that can
# carry it, served by one cairn publish behind the link emulator
# (tests/integration/linkem --shared 1: a link's rate is shared by all the
# connections a client opens), fetched cold by `nix copy --from` and by
# `cairn fetch`, side by side, RUNS rounds; each figure a median.
#
#   bench/far.sh CAIRN BUILDDIR [N_PATHS [KIB_PER_PATH [RUNS [LINKS...]]]]
#   FAR_BIG_MB=200 (the item's size, decimal MB)
#
# LINKS are "NAME:ONE_WAY_DELAY_MS:RATE_BITS:K[:BIG[:SOURCES]]": bench-K's
# closure (K paths), plus the big item when BIG is 1, through SOURCES
# (1 or 2) links of that kind, each its own linkem in front of the same
# publish (two mirrors of one cache, as far as a client can tell).  Default:
#   a:50:20000000:N:1:1    100 ms RTT, 20 Mbit/s, the closure and the item
#   b:150:2000000:N/5:0:1  300 ms RTT, 2 Mbit/s, a fifth of the closure, no
#                          item (200 MB would take 800 s at 2 Mbit/s)
#   c:50:10000000:N:1:2    two mirrors at 10 Mbit/s each, 100 ms RTT
# One source: nix copy; cairn fetch; cairn fetch without the batch endpoint
# (the same publish behind an nginx whose nix-cache-info does not advertise
# it); and the narinfo phase alone, cold: nix path-info -r against cairn
# weather --closure, with and without the batch.  Two sources: nix copy
# from the first; cairn fetch from each alone and from both at once; both
# against the better single one (issue 17's goal: >= 1.8x its throughput).
# Narinfo requests (single `.narinfo` and batch `/narinfos?`, each a round
# trip at least) counted in cairn publish's access log.  Needs root (Nix
# without a daemon), nix-bin, nginx, curl, bc.  Prints Markdown tables; the
# raw runs on stderr.
set -euo pipefail
. "$(dirname "$0")/closure-lib.sh"
. "$(dirname "$0")/far-lib.sh"
CAIRN=$(realpath "${1:?usage: bench/far.sh CAIRN BUILDDIR [N [KIB [RUNS [LINKS...]]]]}")
BUILD=$(realpath "${2:?build directory}")
N=${3:-300}
KIB=${4:-64}
RUNS=${5:-3}
BIG_MB=${FAR_BIG_MB:-200}
shift $(($# < 5 ? $# : 5))
LINKS=("$@")
[ ${#LINKS[@]} -gt 0 ] ||
  LINKS=("a:50:20000000:$N:1:1" "b:150:2000000:$((N / 5)):0:1" "c:50:10000000:$N:1:2")
LINKEM=$BUILD/tests/integration/linkem
[ -x "$LINKEM" ] || { echo "no $LINKEM: build first" >&2; exit 1; }

TMP=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cairn-far.XXXXXX")}
mkdir -p "$TMP"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  chmod -R u+w "$TMP" 2>/dev/null || true
  if [ -n "${BENCH_DIR:-}" ]; then rm -rf "$TMP"/dst-* "$TMP"/xdg; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# Nix's narinfo cache keeps its default TTLs (0 makes it ask again and
# again); it starts empty for every command (XDG_CACHE_HOME below)
far_nix_env "$TMP"

TOP=$(bench_closure "$TMP" "$N" "$KIB")
S="local?root=$TMP/src"
# top_at K: the path bench-K (its closure is K paths)
top_at() { nix path-info --store "$S" -r "$TOP" | grep -- "-bench-$1\$"; }
BIG=
for spec in "${LINKS[@]}"; do
  IFS=: read -r _ _ _ _ big _ <<<"$spec"
  [ "${big:-0}" = 1 ] && [ -z "$BIG" ] && BIG=$(far_big_item "$TMP" "$BIG_MB")
done

[ -s "$TMP/k.sec" ] || "$CAIRN" key generate --format nix --secret "$TMP/k.sec" \
  --public "$TMP/k.pub" far-1 >/dev/null
rm -f "$TMP/p.port"
"$CAIRN" publish --listen 127.0.0.1:0 --port-file "$TMP/p.port" --store "$TMP/src/nix/store" \
  --key "$TMP/k.sec" --compression zstd --cache "$TMP/pcache" --access-log "$TMP/access.log" \
  2>"$TMP/publish.err" &
pids+=($!)
for _ in $(seq 200); do [ -s "$TMP/p.port" ] && break; sleep 0.05; done
pport=$(cat "$TMP/p.port")
# warm: every narinfo signed, every nar compressed once, before any timing
"$CAIRN" fetch --no-cache -q --from "http://127.0.0.1:$pport" --trusted-key "$TMP/k.pub" \
  --nar-dir "$TMP/dst-warm" --closure "$TOP" $BIG >/dev/null
rm -rf "$TMP/dst-warm"

# The same publish without the batch endpoint: its nix-cache-info minus the
# line that advertises it, everything else passed through (so the access
# log counts these requests too)
curl -fsS "http://127.0.0.1:$pport/nix-cache-info" | grep -v '^CairnNarinfos:' >"$TMP/nobatch-info"
far_nginx "$TMP" "
  location = /nix-cache-info { default_type text/x-nix-cache-info; alias $TMP/nobatch-info; }
  location /narinfos { return 404; }
  location / { proxy_pass http://127.0.0.1:$pport; proxy_buffering off; }"
nbport=$far_port

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
lines() { wc -l <"$TMP/access.log"; }
# narinfo requests (single and batch) in the access log after line $1
ni_requests() { tail -n +"$(($1 + 1))" "$TMP/access.log" | grep -cE '"GET /([a-z0-9]{32}\.narinfo|narinfos\?)' || true; }
# run LABEL CMD...: times CMD cold (its own Nix cache), appends
# "LABEL SECONDS REQUESTS" to $TMP/times
run() {
  local label=$1 from
  shift
  export XDG_CACHE_HOME=$TMP/xdg/$label-$r
  from=$(lines)
  /usr/bin/time -f %e -o "$TMP/time" "$@" >/dev/null 2>"$TMP/err" ||
    { echo "failed: $*" >&2; cat "$TMP/err" >&2; exit 1; }
  sleep 1 # the access log is written after the response
  echo "$label $(cat "$TMP/time") $(ni_requests "$from")" | tee -a "$TMP/times" >&2
}
cfetch() { # LABEL DEST URL...: cairn fetch of the items from the URLs, checked
  local label=$1 dst=$TMP/dst-$2 u from=()
  shift 2
  for u in "$@"; do from+=(--from "$u"); done
  run "$label" "$CAIRN" fetch --no-cache -q "${from[@]}" --trusted-key "$TMP/k.pub" \
    --store "$dst" --closure "${items[@]}"
  got=$(find "$dst/nix/store" -mindepth 1 -maxdepth 1 | wc -l)
  [ "$got" = "$want" ] || { echo "$label fetched $got of $want paths" >&2; exit 1; }
  rm -rf "$dst"
}
ncopy() { # LABEL URL
  run "$1" nix copy --from "$2" --to "local?root=$TMP/dst-nix" \
    --option trusted-public-keys "$(cat "$TMP/k.pub")" "${items[@]}"
  rm -rf "$TMP/dst-nix"
}
# row LABEL CLIENT [BASE]: a table row from $TMP/times, with the ratio of
# the medians to BASE's
med() { awk -v l="$1" '$1 == l {print $2}' "$TMP/times" | median; }
row() {
  local m runs req ratio=
  m=$(med "$1")
  runs=$(awk -v l="$1" '$1 == l {printf "%s ", $2}' "$TMP/times")
  req=$(awk -v l="$1" '$1 == l {print $3}' "$TMP/times" | median)
  [ -n "${3:-}" ] && ratio=$(printf '%.2f' "$(echo "$m / $(med "$3")" | bc -l)")
  printf '| %s | %s | %s | %s | %s |\n' "$2" "$m" "${runs% }" "$req" "$ratio"
}

for spec in "${LINKS[@]}"; do
  IFS=: read -r name delay rate k big sources <<<"$spec"
  big=${big:-0} sources=${sources:-1}
  items=("$(top_at "$k")")
  [ "$big" = 1 ] && items+=("$BIG")
  want=$((k + big))
  : >"$TMP/times"
  if [ "$sources" = 1 ]; then
    far_link "$name" "$pport" --delay-ms "$delay" --rate "$rate" --shared 1
    url=http://127.0.0.1:$far_port
    far_link "$name-nobatch" "$nbport" --delay-ms "$delay" --rate "$rate" --shared 1
    nburl=http://127.0.0.1:$far_port
    for r in $(seq "$RUNS"); do
      run ni-nix nix path-info --store "$url" -r "${items[@]}"
      run ni-cairn "$CAIRN" weather --from "$url" --closure "${items[@]}"
      run ni-cairn-nb "$CAIRN" weather --from "$nburl" --closure "${items[@]}"
      ncopy nix "$url"
      cfetch cairn "$name" "$url"
      cfetch cairn-nb "$name" "$nburl"
    done
  else
    far_link "$name-A" "$pport" --delay-ms "$delay" --rate "$rate" --shared 1
    A=http://127.0.0.1:$far_port
    far_link "$name-B" "$pport" --delay-ms "$delay" --rate "$rate" --shared 1
    B=http://127.0.0.1:$far_port
    for r in $(seq "$RUNS"); do
      ncopy nix "$A"
      cfetch cairn-A "$name" "$A"
      cfetch cairn-B "$name" "$B"
      cfetch cairn-AB "$name" "$A" "$B"
    done
  fi
  what="bench-$k's closure ($k paths)"
  [ "$big" = 1 ] && what="$what + the $BIG_MB MB item"
  echo
  echo "link $name: $sources x ($((2 * delay)) ms RTT, $rate bit/s); $what; medians of $RUNS; load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| client | median wall s | runs | narinfo requests | / nix |"
  echo "|---|---:|---|---:|---:|"
  if [ "$sources" = 1 ]; then
    row nix "nix copy --from"
    row cairn "cairn fetch" nix
    row cairn-nb "cairn fetch, no batch endpoint" nix
    row ni-nix "narinfo phase: nix path-info -r"
    row ni-cairn "narinfo phase: cairn weather --closure" ni-nix
    row ni-cairn-nb "narinfo phase: cairn weather --closure, no batch" ni-nix
  else
    row nix "nix copy --from A"
    row cairn-A "cairn fetch --from A" nix
    row cairn-B "cairn fetch --from B" nix
    row cairn-AB "cairn fetch --from A --from B" nix
    best=$(med cairn-A)
    [ "$(echo "$(med cairn-B) < $best" | bc)" = 1 ] && best=$(med cairn-B)
    echo
    echo "both at once: $(printf '%.2f' "$(echo "$best / $(med cairn-AB)" | bc -l)") x the throughput of the better single mirror"
  fi
done
echo
echo "$N paths of $KIB KiB x 3/4 base64 each (the closure of bench-K is K paths); the item $BIG_MB MB of random bytes; served by cairn publish (zstd, baked; the item uncompressed) behind linkem --shared 1; $(nproc) cores"
