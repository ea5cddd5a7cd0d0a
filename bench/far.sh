#!/usr/bin/env bash
# bench/far.sh - substitution over slow, far links (issue 17): the closure
# of bench/fetch.sh served by cairn publish behind the link emulator
# (tests/integration/linkem), fetched by `cairn fetch` and by `nix copy
# --from`, cold, side by side, RUNS times each; and the narinfo phase:
# requests each client made for narinfos (each a round trip at least), from
# cairn publish's access log.
#
#   bench/far.sh CAIRN BUILDDIR [N_PATHS [KIB_PER_PATH [RUNS [LINKS...]]]]
#
# LINKS are "NAME:ONE_WAY_DELAY_MS:RATE_BITS:N_PATHS" (default
# "a:50:20000000:N" and "b:150:2000000:N/5": 100 ms RTT at 20 Mbit/s, and
# 300 ms RTT at 2 Mbit/s with a fifth of the closure, the top's closure
# being cut at that depth).  Needs root (Nix without a daemon), nix-bin.
# Prints a Markdown table (medians) and the raw runs on stderr.
# Part (c) of the issue (two mirrors at 10 Mbit/s each) needs multi-source
# downloads: not here yet.
set -euo pipefail
. "$(dirname "$0")/closure-lib.sh"
CAIRN=$(realpath "${1:?usage: bench/far.sh CAIRN BUILDDIR [N [KIB [RUNS [LINKS...]]]]}")
BUILD=$(realpath "${2:?build directory}")
N=${3:-300}
KIB=${4:-64}
RUNS=${5:-3}
shift $(($# < 5 ? $# : 5))
LINKS=("$@")
[ ${#LINKS[@]} -gt 0 ] || LINKS=("a:50:20000000:$N" "b:150:2000000:$((N / 5))")
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
# again); it starts empty every run (XDG_CACHE_HOME below)
export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
experimental-features = nix-command
sandbox-paths = /bin /usr /lib /lib64
"

# the closure of bench/fetch.sh: bench-i refers to bench-(i-1) and bench-(i-2)
TOP=$(bench_closure "$TMP" "$N" "$KIB")
S="local?root=$TMP/src"
# top_at K: the path bench-K (its closure is K paths)
top_at() { nix path-info --store "$S" -r "$TOP" | grep -- "-bench-$1\$"; }

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
  --nar-dir "$TMP/dst-warm" --closure "$TOP" >/dev/null
rm -rf "$TMP/dst-warm"

link() { # NAME DELAY RATE: sets lport
  rm -f "$TMP/l-$1.port"
  "$LINKEM" --to "127.0.0.1:$pport" --port-file "$TMP/l-$1.port" --delay-ms "$2" --rate "$3" \
    >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do [ -s "$TMP/l-$1.port" ] && break; sleep 0.05; done
  lport=$(cat "$TMP/l-$1.port")
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
lines() { wc -l <"$TMP/access.log"; }
# narinfo requests (single and batch) in the access log after line $1
ni_requests() { tail -n +"$(($1 + 1))" "$TMP/access.log" | grep -cE '"GET /([a-z0-9]{32}\.narinfo|narinfos\?)' || true; }
wall() { /usr/bin/time -f %e -o "$TMP/time" "$@" >/dev/null 2>"$TMP/err" ||
  { echo "failed: $*" >&2; cat "$TMP/err" >&2; return 1; }; cat "$TMP/time"; }

echo "| link | paths | client | median wall s | runs | narinfo requests | cairn/nix |"
echo "|---|---:|---|---:|---|---:|---:|"
for spec in "${LINKS[@]}"; do
  IFS=: read -r name delay rate k <<<"$spec"
  link "$name" "$delay" "$rate"
  url=http://127.0.0.1:$lport
  top=$(top_at "$k")
  nt=() ct=()
  for r in $(seq "$RUNS"); do
    export XDG_CACHE_HOME=$TMP/xdg/$name-$r
    from=$(lines)
    nt+=("$(wall nix copy --from "$url" --to "local?root=$TMP/dst-nix-$name-$r" \
      --option trusted-public-keys "$(cat "$TMP/k.pub")" "$top")")
    sleep 1 # the access log is written after the response
    nreq=$(ni_requests "$from")
    from=$(lines)
    ct+=("$(wall "$CAIRN" fetch --no-cache -q --from "$url" --trusted-key "$TMP/k.pub" \
      --store "$TMP/dst-cairn-$name-$r" --closure "$top")")
    sleep 1
    creq=$(ni_requests "$from")
    got=$(find "$TMP/dst-cairn-$name-$r/nix/store" -mindepth 1 -maxdepth 1 | wc -l)
    [ "$got" = "$k" ] || { echo "cairn fetched $got of $k paths" >&2; exit 1; }
    echo "run $r $name: nix ${nt[-1]} s ($nreq narinfo requests), cairn ${ct[-1]} s ($creq)" >&2
    rm -rf "$TMP/dst-nix-$name-$r" "$TMP/dst-cairn-$name-$r"
  done
  nm=$(printf '%s\n' "${nt[@]}" | median)
  cm=$(printf '%s\n' "${ct[@]}" | median)
  printf '| %s ms RTT, %s bit/s | %s | nix copy | %s | %s | %s | |\n' $((2 * delay)) "$rate" \
    "$k" "$nm" "${nt[*]}" "$nreq"
  printf '| | | cairn fetch | %s | %s | %s | %.2f |\n' "$cm" "${ct[*]}" "$creq" \
    "$(echo "$cm / $nm" | bc -l)"
done
echo
echo "$N paths of $KIB KiB x 3/4 base64 each (the closure of bench-K is K paths), served by cairn publish (zstd, baked) behind linkem; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
