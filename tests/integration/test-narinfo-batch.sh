#!/usr/bin/env bash
# Batch narinfos (issue 17.1, docs/PROTOCOL.md "Batch narinfos"): cairn
# publish, in both dialects, answers GET /narinfos?hashes=...[&closure=1]
# with the bytes of its single route, advertised in nix-cache-info; cairn
# fetch asks for a closure of N paths in one request (counted in the access
# log); a server that does not advertise it gets single requests; hostile
# batch responses are refused, saying why.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
skip_unless curl python3
publish_require
nix_lib_init

N=12
S=$TMP/s
TOP=$(nix_build_closure "$S" $N nb)
mapfile -t CL < <(nix_closure "$S" "$TOP")
BOTTOM=$(printf '%s\n' "${CL[@]}" | grep -- '-nb-1$')
hp() { basename "$1" | cut -c1-32; }
check "the closure has $N paths" test "${#CL[@]}" = "$N"
"$CAIRN" key generate --format nix --secret "$TMP/nix.sec" --public "$TMP/nix.pub" nb-1 >/dev/null
"$CAIRN" key generate --format guix --secret "$TMP/guix.sec" --public "$TMP/guix.pub" >/dev/null

# count LOG PATTERN [FROM-LINE]: request lines matching PATTERN after line FROM
count() { tail -n +"$((${3:-0} + 1))" "$1" 2>/dev/null | grep -c -- "$2" || true; }
lines() { wc -l < "$1" 2>/dev/null || echo 0; }

# verify-batch BODY URL HASH...: every entry is the single route's bytes,
# asked ones all there, End right; prints "present absent"
cat > "$TMP/verify.py" <<'PYEOF'
import sys, urllib.request, urllib.error
body = open(sys.argv[1], "rb").read(); url = sys.argv[2]; asked = sys.argv[3:]
assert body.startswith(b"CairnNarinfos: 1\n"), "magic"
pos = body.index(b"\n") + 1; seen = {}; npres = nabs = 0
while True:
    nl = body.index(b"\n", pos); line = body[pos:nl].decode(); pos = nl + 1
    if line.startswith("End: "):
        assert int(line[5:]) == len(seen) and pos == len(body), "End"
        break
    if line.startswith("Absent: "):
        h = line[8:]; seen[h] = None; nabs += 1
        try:
            urllib.request.urlopen(url + "/" + h + ".narinfo"); raise SystemExit("absent but served: " + h)
        except urllib.error.HTTPError as e:
            assert e.code == 404
        continue
    _, h, n = line.split(" "); text = body[pos:pos + int(n)]; pos += int(n)
    single = urllib.request.urlopen(url + "/" + h + ".narinfo").read()
    assert text == single, "bytes of " + h
    seen[h] = text; npres += 1
for h in asked:
    assert h in seen, "missing " + h
print(npres, nabs)
PYEOF

for dialect in guix nix; do
  ACC=$TMP/acc-$dialect.log
  publish_start --store "$S/nix/store" --key "$TMP/$dialect.sec" --dialect $dialect \
    --access-log "$ACC" || { not_ok "$dialect: publish starts"; continue; }
  U=$PUBLISH_URL
  check "$dialect: nix-cache-info advertises CairnNarinfos: 1" \
    bash -c "curl -sf '$U/nix-cache-info' | grep -qx 'CairnNarinfos: 1'"
  hashes=$(for p in "${CL[@]}"; do hp "$p"; done | paste -sd,)
  nothere=00000000000000000000000000000000
  curl -sf "$U/narinfos?hashes=$hashes,$nothere" > "$TMP/b1" || true
  check "$dialect: $N hashes + 1 unknown: $N narinfos, each the single route's bytes, 1 absent" \
    test "$(python3 "$TMP/verify.py" "$TMP/b1" "$U" $(echo "$hashes" | tr , ' ') $nothere 2>&1)" = "$N 1"
  curl -sf "$U/narinfos?hashes=$(hp "$TOP")&closure=1" > "$TMP/b2" || true
  check "$dialect: the closure of the top path: all $N narinfos in one response" \
    test "$(python3 "$TMP/verify.py" "$TMP/b2" "$U" $(echo "$hashes" | tr , ' ') 2>&1)" = "$N 0"
  many=$(for i in $(seq 1 101); do printf '%032d\n' "$i" | tr 0-9 0-9; done | paste -sd,)
  check "$dialect: 101 hashes: 400, saying the bound" \
    bash -c "curl -s -w '%{http_code}' '$U/narinfos?hashes=$many' | tr -d '\n' | grep -q 'more than 100 hash parts.*400$'"
  check "$dialect: a bad hash: 400, naming it" \
    bash -c "curl -s -w '%{http_code}' '$U/narinfos?hashes=xyz' | tr -d '\n' | grep -q \"'xyz' is not a store path hash part.*400\$\""

  # fetch: first contact (nothing known): nix-cache-info, the top path
  # alone, then its closure in one request
  F=("$CAIRN" fetch --trusted-key "$TMP/$dialect.pub" --from "$U" -q)
  from=$(lines "$ACC")
  rc=0; "${F[@]}" --no-cache --nar-dir "$TMP/n0-$dialect" --closure "$TOP" 2>"$TMP/err" || rc=$?
  wait_for 10 test "$(count "$ACC" 'GET /nar/' "$from")" -ge "$N" || true
  check "$dialect: fetch --closure, first contact: exit 0, $N nars" \
    test "$rc-$(ls "$TMP/n0-$dialect" | wc -l)" = "0-$N"
  check "$dialect:   ... 1 single narinfo request (the top), 1 batch request" \
    test "$(count "$ACC" '\.narinfo ' "$from")-$(count "$ACC" 'GET /narinfos?' "$from")" = "1-1"
  # with the server's nix-cache-info known (the narinfo cache, from a fetch
  # of the bottom path), the closure of N paths is one request
  DB=$TMP/nc-$dialect.sqlite
  "${F[@]}" --cache-db "$DB" --nar-dir "$TMP/n1-$dialect" "$BOTTOM" 2>/dev/null || true
  from=$(lines "$ACC")
  rc=0; "${F[@]}" --cache-db "$DB" --nar-dir "$TMP/n2-$dialect" --closure "$TOP" 2>"$TMP/err" || rc=$?
  wait_for 10 test "$(count "$ACC" 'GET /nar/' "$from")" -ge "$N" || true
  check "$dialect: fetch --closure, server known: exit 0, $N nars" \
    test "$rc-$(ls "$TMP/n2-$dialect" | wc -l)" = "0-$N"
  check "$dialect:   ... the closure of $N paths: 1 request ($(count "$ACC" 'GET /narinfos?' "$from") batch, $(count "$ACC" '\.narinfo ' "$from") single, $(count "$ACC" 'nix-cache-info' "$from") info)" \
    test "$(count "$ACC" 'GET /narinfos?' "$from")-$(count "$ACC" '\.narinfo ' "$from")-$(count "$ACC" 'nix-cache-info' "$from")" = "1-0-0"
  check "$dialect:   ... the answers went to the narinfo cache: a second run asks nothing" \
    bash -c "from=\$(wc -l < '$ACC'); '${F[0]}' fetch --trusted-key '$TMP/$dialect.pub' --from '$U' -q --cache-db '$DB' --nar-dir '$TMP/n3-$dialect' --closure '$TOP' 2>/dev/null && test \"\$(tail -n +\$((from + 1)) '$ACC' | grep -c narinfo)\" = 0"
  # weather (no closure): the first path alone, the rest once its
  # nix-cache-info said CairnNarinfos
  from=$(lines "$ACC")
  out=$("$CAIRN" weather --from "$U" "${CL[@]}" 2>&1) || true
  wait_for 10 test "$(count "$ACC" 'GET /narinfos?' "$from")" -ge 1 || true
  check "$dialect: weather of $N paths: 1 single request, 1 batch ($(count "$ACC" '\.narinfo ' "$from"), $(count "$ACC" 'GET /narinfos?' "$from"))" \
    test "$(count "$ACC" '\.narinfo ' "$from")-$(count "$ACC" 'GET /narinfos?' "$from")" = "1-1"
  check "$dialect:   ... and it counts all $N available" grep -q "100.0% available ($N of $N)" <<<"$out"
  # weather --closure: the top path alone, then its closure in one request
  # (not one batch per level of the closure)
  from=$(lines "$ACC")
  out=$("$CAIRN" weather --from "$U" --closure "$TOP" 2>&1) || true
  wait_for 10 test "$(count "$ACC" 'GET /narinfos?' "$from")" -ge 1 || true
  check "$dialect: weather --closure of the top: 1 single request, 1 batch ($(count "$ACC" '\.narinfo ' "$from"), $(count "$ACC" 'GET /narinfos?' "$from"))" \
    test "$(count "$ACC" '\.narinfo ' "$from")-$(count "$ACC" 'GET /narinfos?' "$from")" = "1-1"
  check "$dialect:   ... and it counts all $N available" grep -q "100.0% available ($N of $N)" <<<"$out"

  # the mirror in front of it: the same route, through its own narinfo path
  mirror_start "m-$dialect" --upstream "$U" --cache "$TMP/mc-$dialect" \
    --trusted-key "$TMP/$dialect.pub" || { not_ok "$dialect: mirror starts"; continue; }
  M=http://127.0.0.1:$MIRROR_PORT
  MACC=$TMP/m-$dialect.mirror-access
  check "$dialect mirror: nix-cache-info says CairnNarinfos: 1, once" \
    test "$(curl -sf "$M/nix-cache-info" | grep -c '^CairnNarinfos: 1$')" = 1
  curl -sf "$M/narinfos?hashes=$(hp "$TOP")&closure=1" > "$TMP/m1" || true
  check "$dialect mirror: the closure of the top path, nothing held yet: $N narinfos, the single route's bytes" \
    test "$(python3 "$TMP/verify.py" "$TMP/m1" "$M" $(echo "$hashes" | tr , ' ') 2>&1)" = "$N 0"
  curl -sf "$M/narinfos?hashes=$hashes,$nothere" > "$TMP/m2" || true
  check "$dialect mirror: $N hashes + 1 unknown: $N narinfos, 1 absent" \
    test "$(python3 "$TMP/verify.py" "$TMP/m2" "$M" $(echo "$hashes" | tr , ' ') $nothere 2>&1)" = "$N 1"
  check "$dialect mirror: a bad hash: 400, naming it" \
    bash -c "curl -s -w '%{http_code}' '$M/narinfos?hashes=xyz' | tr -d '\n' | grep -q \"'xyz' is not a store path hash part.*400\$\""
  from=$(lines "$MACC")
  rc=0; "${F[@]/$U/$M}" --no-cache --nar-dir "$TMP/nm-$dialect" --closure "$TOP" 2>"$TMP/err" || rc=$?
  wait_for 10 test "$(count "$MACC" 'GET /nar/' "$from")" -ge "$N" || true
  check "$dialect mirror: fetch --closure through it: exit 0, $N nars" \
    test "$rc-$(ls "$TMP/nm-$dialect" | wc -l)" = "0-$N"
  check "$dialect mirror:   ... 1 single narinfo request (the top), 1 batch request" \
    test "$(count "$MACC" '\.narinfo ' "$from")-$(count "$MACC" 'GET /narinfos?' "$from")" = "1-1"
  held=$(curl -sf -H 'Cache-Control: only-if-cached' "$M/narinfos?hashes=$hashes" | grep -c '^Narinfo: ')
  check "$dialect mirror: only-if-cached: all $N held now ($held)" test "$held" = "$N"
  mirror_stop
  [ $dialect = nix ] || publish_stop # the Nix one stays, for the proxies
done

# ---- servers in front of the Nix one (still running): proxies that change

# what is said about batches
proxy() {
  local mode=$1 pf=$TMP/proxy-$1.port pid
  PLOG=$TMP/proxy-$mode.log
  : > "$PLOG"
  python3 "$SRCDIR/tests/integration/narinfos-proxy.py" "$U" "$pf" "$PLOG" "$mode" \
    > "$TMP/proxy-$mode.out" 2>&1 &
  pid=$!
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  PURL=http://127.0.0.1:$(port_from_file "$pf" "$pid")
}
# show NAME: what the last fetch said, and the proxy, when a check failed
show() { sed 's/^/    # /' "$1" "$TMP/proxy-$2.out" | head -n 20; }
F=("$CAIRN" fetch --trusted-key "$TMP/nix.pub" --no-cache -q)

proxy plain
rc=0; "${F[@]}" --from "$PURL" --nar-dir "$TMP/np" --closure "$TOP" 2>"$TMP/err" || rc=$?
[ "$rc" = 0 ] || show "$TMP/err" plain
check "a server without CairnNarinfos: fetch --closure exits 0 with $N nars" \
  test "$rc-$(ls "$TMP/np" | wc -l)" = "0-$N"
check "  ... $N single narinfo requests, no batch" \
  test "$(count "$PLOG" '\.narinfo$')-$(count "$PLOG" '/narinfos?')" = "$N-0"

proxy lie
rc=0; "${F[@]}" --from "$PURL" --nar-dir "$TMP/nl" --closure "$TOP" 2>"$TMP/err" || rc=$?
check "a server that advertises batches but 404s them: fetch falls back, exit 0, $N nars" \
  test "$rc-$(ls "$TMP/nl" | wc -l)" = "0-$N"
check "  ... one batch tried, then single requests ($(count "$PLOG" '/narinfos?'), $(count "$PLOG" '\.narinfo$'))" \
  test "$(count "$PLOG" '/narinfos?')-$(count "$PLOG" '\.narinfo$')" = "1-$N"

hostile() {
  local mode=$1 want=$2
  proxy "$mode"
  rc=0; "${F[@]}" --from "$PURL" --nar-dir "$TMP/nh-$mode" --closure "$TOP" 2>"$TMP/err-$mode" || rc=$?
  check "hostile batch ($mode): fetch fails on what it was sent, saying '$want'" \
    bash -c "test $rc = 1 && grep -q -- 'batch response refused: .*$want' '$TMP/err-$mode'"
  check "  ... nothing of what it sent was kept ($(ls "$TMP/nh-$mode" 2>/dev/null | wc -l) nars: the top only)" \
    test "$(ls "$TMP/nh-$mode" 2>/dev/null | wc -l)" -le 1
}
hostile extra "not asked for nor referenced"
hostile oversize "is not a number up to 1048576"
hostile cut "no End line"
hostile missing "says nothing of"
publish_stop
# publish --binary-cache DIR (a Nix binary cache directory served as it
# is): the same batch route, over the directory's own narinfo files, and
# said in its nix-cache-info
nix_gen_key nb-bc "$TMP/bc"
nix_copy_to_file "$S" "$TOP" "$TMP/bcache" xz "$TMP/bc.sec"
BACC=$TMP/acc-bc.log
if publish_start --binary-cache "$TMP/bcache" --access-log "$BACC"; then
  U=$PUBLISH_URL
  check "binary cache: nix-cache-info is the directory's, CairnNarinfos: 1 added once" \
    bash -c "curl -sf '$U/nix-cache-info' > '$TMP/bci' && grep -q '^StoreDir: ' '$TMP/bci' &&
      test \$(grep -c '^CairnNarinfos: 1$' '$TMP/bci') = 1"
  hashes=$(for p in "${CL[@]}"; do hp "$p"; done | paste -sd,)
  curl -sf "$U/narinfos?hashes=$hashes,00000000000000000000000000000000" > "$TMP/bb1" || true
  check "binary cache: $N hashes + 1 unknown: $N narinfos, each the file's bytes, 1 absent" \
    test "$(python3 "$TMP/verify.py" "$TMP/bb1" "$U" $(echo "$hashes" | tr , ' ') \
      00000000000000000000000000000000 2>&1)" = "$N 1"
  curl -sf "$U/narinfos?hashes=$(hp "$TOP")&closure=1" > "$TMP/bb2" || true
  check "binary cache: the closure of the top path, followed through the files: all $N" \
    test "$(python3 "$TMP/verify.py" "$TMP/bb2" "$U" $(echo "$hashes" | tr , ' ') 2>&1)" = "$N 0"
  from=$(lines "$BACC")
  rc=0; "$CAIRN" fetch --trusted-key "$TMP/bc.pub" --from "$U" -q --no-cache \
    --nar-dir "$TMP/nbc" --closure "$TOP" 2>"$TMP/err" || rc=$?
  check "binary cache: fetch --closure: exit 0, $N nars, 1 single narinfo request and 1 batch ($(count "$BACC" '\.narinfo ' "$from"), $(count "$BACC" 'GET /narinfos?' "$from"))" \
    test "$rc-$(ls "$TMP/nbc" 2>/dev/null | wc -l)-$(count "$BACC" '\.narinfo ' "$from")-$(count "$BACC" 'GET /narinfos?' "$from")" = "0-$N-1-1"
  publish_stop
else
  not_ok "binary cache: publish --binary-cache starts"
fi
finish
