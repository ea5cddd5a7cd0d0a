#!/usr/bin/env bash
# cairn mirror whose cache is on a full disk (a 2 MiB tmpfs): nars are
# passed through uncached, whole and still verified (a tampered one still
# fails), to one client and to several at once; the condition is logged
# once and shown in /metrics; caching starts again when space returns.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless nginx curl
if [ "$(id -u)" != 0 ]; then
  if [ "${CI:-}" = true ]; then echo "error: mounting a tmpfs needs root in CI" >&2; exit 1; fi
  echo "skip: mounting a tmpfs needs root"
  exit 77
fi

store=$TMP/store
# larger than the disk, and than what a download without a file keeps in
# memory (16 MiB)
big=$(nix_build_closure "$store" 1 dbig $((32 * 1024 * 1024)))
small=$(nix_build_closure "$store" 1 dsmall 300000)
bad=$(nix_build_closure "$store" 1 dbad 300000)
for p in "$big" "$small" "$bad"; do nix_copy_to_file "$store" "$p" "$TMP/cache" none; done
hash_of() { basename "$1" | cut -c1-32; }
nar_of() { sed -n 's/^URL: //p' "$TMP/cache/$(hash_of "$1").narinfo"; }
bignar=$(nar_of "$big"); smallnar=$(nar_of "$small"); badnar=$(nar_of "$bad")
# the upstream serves a copy of the bad item's nar with one byte changed
python3 - "$TMP/cache/$badnar" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0xff
open(p, 'wb').write(b)
PY

mkdir "$TMP/mc"
mount -t tmpfs -o size=2m tmpfs "$TMP/mc"
cleanup_hooks+=("umount -l '$TMP/mc'")
nginx_serve up "$TMP/cache" "" "limit_rate 16m;"
mirror_start m --upstream "http://127.0.0.1:$NGINX_PORT" --cache "$TMP/mc"
url=http://127.0.0.1:$MIRROR_PORT
for p in "$big" "$small" "$bad"; do curl -fs "$url/$(hash_of "$p").narinfo" -o /dev/null; done
failing_lines() { grep -c 'passed through uncached' "$MIRROR_LOG" || true; }

# a nar larger than the whole disk
check "a nar larger than the disk is served whole" \
  cmp <(curl -fsS "$url/$bignar") "$TMP/cache/$bignar"
check "... not cached" [ -z "$(ls "$TMP/mc/data")" ]
check "... the failing cache is in /metrics" [ "$(metric cairn_mirror_cache_write_failing)" = 1 ]
check "... and counted" [ "$(metric cairn_mirror_cache_write_errors_total)" -ge 1 ]
check "... and logged" [ "$(failing_lines)" -eq 1 ]

# five clients at once, joining one download that has no file
mkdir "$TMP/out"
cpids=()
for i in 1 2 3 4 5; do
  curl -fsS --max-time 60 "$url/$bignar" -o "$TMP/out/$i" 2> "$TMP/out/$i.err" &
  cpids+=($!)
done
wait "${cpids[@]}" || true
check "five clients at once get it whole" \
  bash -c "for i in 1 2 3 4 5; do cmp '$TMP/out/'\$i '$TMP/cache/$bignar' || exit 1; done"
check "... from one download" [ "$(count_requests up "/$bignar")" -eq 2 ]

# a client far slower than the upstream falls out of memory: it may fail,
# but never ends cleanly on wrong bytes; a fast one is not held up by it
curl -fsS --max-time 10 --limit-rate 500k "$url/$bignar" -o "$TMP/out/slow" 2> /dev/null &
spid=$!
wait_for 10 test -s "$TMP/out/slow" || true
check "a fast client beside a slow one gets it whole" \
  cmp <(curl -fsS --max-time 60 "$url/$bignar") "$TMP/cache/$bignar"
if wait "$spid"; then sok=1; else sok=0; fi
check "... the slow one got it whole or saw a failure ($sok)" \
  bash -c "[ $sok = 0 ] || cmp '$TMP/out/slow' '$TMP/cache/$bignar'"

# a full disk: a filler takes what is left
dd if=/dev/zero of="$TMP/mc/filler" bs=64k 2> /dev/null || true
check "full disk: a small nar is served whole" \
  cmp <(curl -fsS "$url/$smallnar") "$TMP/cache/$smallnar"
check "... not cached" [ -z "$(ls "$TMP/mc/data")" ]
check "full disk: a tampered nar still fails" bash -c "! curl -fs '$url/$badnar' -o /dev/null"
check "... counted as a verification failure" \
  [ "$(metric cairn_mirror_verify_failures_total)" -eq 1 ]
check "the condition was logged once ($(failing_lines) lines)" [ "$(failing_lines)" -eq 1 ]
check "... still in /metrics" [ "$(metric cairn_mirror_cache_write_failing)" = 1 ]

# space returns
rm "$TMP/mc/filler"
check "space back: the small nar is served" \
  cmp <(curl -fsS "$url/$smallnar") "$TMP/cache/$smallnar"
check "... and cached" [ "$(ls "$TMP/mc/data" | wc -l)" -eq 1 ]
check "... /metrics says the cache works" [ "$(metric cairn_mirror_cache_write_failing)" = 0 ]
check "... and the log says so" grep -q 'caching resumed' "$MIRROR_LOG"
check "a hit from the cache" cmp <(curl -fsS "$url/$smallnar") "$TMP/cache/$smallnar"
check "... not fetched again (two upstream requests in all)" [ "$(count_requests up "/$smallnar")" -eq 2 ]
mirror_stop
finish
