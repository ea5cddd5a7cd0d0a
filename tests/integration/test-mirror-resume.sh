#!/usr/bin/env bash
# cairn mirror's nar downloads run on the one download engine: a body cut
# short is resumed with Range from the same upstream, and bytes that fail
# the signed NarHash from one upstream are asked of the next (fail-over);
# either way the client's first request gets the whole, verified nar.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless curl python3

HS=$SRCDIR/tests/integration/hostile-server.py
# start_hostile ROOT NAME: a hostile server over ROOT; sets URL_<NAME>, LOG_<NAME>
start_hostile() {
  local root=$1 name=$2 pf=$TMP/$2.port
  python3 "$HS" --root "$root" --port-file "$pf" --log "$TMP/$2.hlog" --hold 30 --lifetime 300 &
  cleanup_hooks+=("kill $! 2>/dev/null")
  printf -v "URL_$name" 'http://127.0.0.1:%s' "$(port_from_file "$pf" $!)"
  printf -v "LOG_$name" '%s' "$TMP/$2.hlog"
}

store=$TMP/store
top=$(nix_build_closure "$store" 2 r 400000)
nix_gen_key resume-1 "$TMP/key"
nix_copy_to_file "$store" "$top" "$TMP/good" zstd "$TMP/key.sec"
cp -r "$TMP/good" "$TMP/bad"
mapfile -t hashes < <(cd "$TMP/good" && ls *.narinfo | sed 's/\.narinfo$//' | sort)
nar_of() { sed -n 's/^URL: //p' "$TMP/good/$1.narinfo"; }
n0=$(nar_of "${hashes[0]}"); n1=$(nar_of "${hashes[1]}")
# the bad upstream's copy of item 0's nar has a byte more, of item 1's
# one byte changed
printf x >> "$TMP/bad/$n0"
python3 - "$TMP/bad/$n1" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0xff
open(p, 'wb').write(b)
PY
start_hostile "$TMP/good" good
start_hostile "$TMP/bad" bad

# Resume: the upstream cuts the first answer for the nar at half (a clean
# close short of its Content-Length) and honours Range.
mirror_start r --upstream "$URL_good" --cache "$TMP/rc" --trusted-key "$TMP/key.pub"
url=http://127.0.0.1:$MIRROR_PORT
curl -fs "$url/${hashes[0]}.narinfo" -o /dev/null
check "a nar cut short upstream reaches the client whole" \
  cmp <(curl -fsS "$url/$n0?mode=truncate-1") "$TMP/good/$n0"
check "... resumed with a Range request" \
  grep -qE "^req .* path=/$n0\?mode=truncate-1 range=bytes=[1-9][0-9]*-" "$LOG_good"
check "... from one upstream download (two requests)" \
  [ "$(grep -c "^req .* path=/$n0" "$LOG_good")" -eq 2 ]
check "... and cached: served again without the upstream" \
  bash -c "cmp <(curl -fsS '$url/$n0') '$TMP/good/$n0' && [ \$(grep -c '^req .* path=/$n0' '$LOG_good') -eq 2 ]"
# The upstream cuts the first answer and answers the Range with the whole
# file (200): the download starts over from byte 0, its bytes compared with
# the ones the client already has, and the client goes on.
curl -fs "$url/${hashes[1]}.narinfo" -o /dev/null
check "a Range answered with the whole file: the client still gets it whole" \
  cmp <(curl -fsS "$url/$n1?mode=cut200") "$TMP/good/$n1"
check "... after the upstream's 200 to the Range" \
  grep -qE "^req .* path=/$n1\?mode=cut200 range=bytes=[1-9][0-9]*-" "$LOG_good"
mirror_stop

# Fail-over: the first upstream serves files that fail the checks, the
# second good ones.  A file of the wrong size is turned down at its
# headers: the client's first request gets the second upstream's bytes.
mirror_start f --upstream "$URL_bad" --upstream "$URL_good" --cache "$TMP/fc" \
  --trusted-key "$TMP/key.pub"
url=http://127.0.0.1:$MIRROR_PORT
for h in "${hashes[@]}"; do curl -fs "$url/$h.narinfo" -o /dev/null; done
check "a file of the wrong size from the first upstream: the client gets the second's" \
  cmp <(curl -fsS "$url/$n0") "$TMP/good/$n0"
check "... both were asked" \
  bash -c "grep -q '^req .* path=/$n0 ' '$LOG_bad' && grep -q '^req .* path=/$n0 ' '$LOG_good'"
# A changed byte shows only once the file is in: a client that got it
# fails (never a clean end on wrong bytes), and the same download goes on
# to the second upstream, whose bytes are verified and cached.
if curl -fsS "$url/$n1" -o "$TMP/got1" 2> /dev/null; then ok1=1; else ok1=0; fi
check "a changed byte from the first upstream: the client fails or gets good bytes ($ok1)" \
  bash -c "[ $ok1 = 0 ] || cmp '$TMP/got1' '$TMP/good/$n1'"
check "... the second upstream's bytes were verified and cached (one request each)" \
  bash -c "cmp <(curl -fsS '$url/$n1') '$TMP/good/$n1' &&
           [ \$(grep -c '^req .* path=/$n1 ' '$LOG_bad') -eq 1 ] &&
           [ \$(grep -c '^req .* path=/$n1 ' '$LOG_good') -eq 1 ]"
check "... both failures counted" [ "$(metric cairn_mirror_verify_failures_total)" -eq 2 ]
mirror_stop
finish
