#!/usr/bin/env bash
# cairn challenge against real Nix binary caches served by nginx: two
# stores built from the same expressions where one derivation is not
# reproducible.  Exactly that item differs, --diff names its files, the
# local store sides with its own cache, a lying narinfo is caught by the
# NarHash check, and down or garbage servers make items inconclusive.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/serve-lib.sh"
nix_lib_init
skip_unless nginx python3

build_two_stores
nix_gen_key wt-1 "$TMP/k1"
nix_gen_key wt-2 "$TMP/k2"
nix_copy_to_file "$TMP/store1" "$TOP" "$TMP/c1" xz "$TMP/k1.sec"
nix_copy_to_file "$TMP/store2" "$TOP" "$TMP/c2" zstd "$TMP/k2.sec"
# c3: c1, unsigned, with wt-stamp's narinfo claiming c2's NarHash while
# still pointing at c1's nar: a lie the download must catch.
cp -r "$TMP/c1" "$TMP/c3"
h2=$(grep '^NarHash:' "$(narinfo_of "$TMP/c2" "$STAMP")")
sed -i -e "s|^NarHash:.*|$h2|" -e '/^Sig:/d' "$(narinfo_of "$TMP/c3" "$STAMP")"
serve_nginx "$TMP/c1"; u1=http://127.0.0.1:$SERVE_PORT
serve_nginx "$TMP/c2"; u2=http://127.0.0.1:$SERVE_PORT
serve_nginx "$TMP/c3"; u3=http://127.0.0.1:$SERVE_PORT
serve_junk; uj=http://127.0.0.1:$SERVE_PORT
uc=http://127.0.0.1:$(serve_closed_port)

jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
others=$(grep -v -- '-wt-stamp$' <<<"$CLOSURE")

# ---- two caches: exactly wt-stamp differs
rc=0; out=$("$CAIRN" challenge --from "$u1" --from "$u2" $CLOSURE) || rc=$?
echo "$out" | sed 's/^/  /'
check "differs: exit 2" test "$rc" = 2
check "summary: 4 items, 3 identical, 1 differs" \
  grep -qx '4 store items analysed: 3 (75.0%) identical, 1 (25.0%) differ, 0 (0.0%) inconclusive' <<<"$out"
check "wt-stamp is the one that differs" \
  test "$(grep -B4 '^  differs' <<<"$out" | grep '^/nix/store')" = "$STAMP"
check "the verdict names both sides" grep -qx "  differs: {$u1} vs {$u2}" <<<"$out"
check "signers shown as claimed" grep -q "signed by wt-2" <<<"$out"

# ---- --diff names the non-reproducible files
rc=0; out=$("$CAIRN" challenge --diff --from "$u1" --from "$u2" $CLOSURE) || rc=$?
echo "$out" | sed -n '/diff /,/^[^ ]/p' | sed 's/^/  /'
check "--diff: exit 2" test "$rc" = 2
check "--diff: stamp, share/random and share/x\\377y changed, nothing else" \
  test "$(awk '$1 == "content" {print $2}' <<<"$out" | LC_ALL=C sort | tr '\n' ' ')" = "\"/share/x\\xffy\" /share/random /stamp "
check "--diff: 3 changes" grep -q "^  diff $u1 -> $u2: 3 changes$" <<<"$out"
rc=0; "$CAIRN" challenge --json --diff --from "$u1" --from "$u2" $CLOSURE >"$TMP/c.json" || rc=$?
check "--json: exit 2" test "$rc" = 2
check "--json: verdicts" test "$(jget "$TMP/c.json" 'sorted((i["path"], i["verdict"]) for i in d["items"] if i["verdict"] != "identical")')" = "[('$STAMP', 'differs')]"
check "--json: summary" test "$(jget "$TMP/c.json" 'd["summary"]')" = "{'items': 4, 'identical': 3, 'differ': 1, 'inconclusive': 0}"
check "--json: file list (a name that is not UTF-8 as U+FFFD)" test "$(jget "$TMP/c.json" 'ascii([(f["path"], f["change"]) for i in d["items"] for x in i.get("diffs", []) for f in x["files"]])')" = "[('share/random', 'content'), ('share/x\ufffdy', 'content'), ('stamp', 'content')]"
check "--json: stamp contents hash as on disk" \
  test "$(jget "$TMP/c.json" '[f["b"]["sha256"] for i in d["items"] for x in i.get("diffs", []) for f in x["files"] if f["path"] == "stamp"][0]')" = \
       "$(sha256sum <"$TMP/store2$STAMP/stamp" | cut -d' ' -f1)"

# ---- the local store: with its database, and as an unpacked tree
rc=0; out=$("$CAIRN" challenge --store "$TMP/store1" --from "$u1" --from "$u2" $CLOSURE) || rc=$?
check "--store (db): exit 2" test "$rc" = 2
check "--store (db): local sides with cache 1" grep -qx "  differs: {$u1, local} vs {$u2}" <<<"$out"
check "--store (db): the local hash is shown" test "$(grep -c '^  local ' <<<"$out")" = 4
mkdir -p "$TMP/tree/nix"
cp -a "$TMP/store2/nix/store" "$TMP/tree/nix/"
rc=0; out=$("$CAIRN" challenge --diff --store "$TMP/tree" --from "$u1" $CLOSURE) || rc=$?
check "--store (tree): local sides with store 2" grep -qx "  differs: {$u1} vs {local}" <<<"$out"
check "--store (tree): --diff against the local tree" \
  test "$(awk '$1 == "content" {print $2}' <<<"$out" | LC_ALL=C sort | tr '\n' ' ')" = "\"/share/x\\xffy\" /share/random /stamp "
rc=0; out=$("$CAIRN" challenge --store "$TMP/tree" $others) || rc=$?
check "only the local store: inconclusive, exit 1" test "$rc" = 1

# ---- a narinfo whose NarHash does not match its nar
rc=0; out=$("$CAIRN" challenge --diff --from "$u1" --from "$u3" "$STAMP") || rc=$?
echo "$out" | sed 's/^/  /'
check "lying narinfo: differs" test "$rc" = 2
check "lying narinfo: the download does not match the announced NarHash" \
  grep -q "cannot compare: $u3: hash mismatch: the NAR hashes to .*, not the NarHash" <<<"$out"

# the lying server first: its group ({c3, c2}) falls back to c2's nar, the
# diff is made from verified nars only, and the lie is still reported
rc=0; out=$("$CAIRN" challenge --diff --json --from "$u3" --from "$u1" --from "$u2" "$STAMP") || rc=$?
echo "$out" >"$TMP/lie.json"
check "lying narinfo first: differs" test "$rc" = 2
check "lying narinfo first: groups {c3, c2} vs {c1}" \
  test "$(jget "$TMP/lie.json" '[s["group"] for s in d["items"][0]["sources"]]')" = "[0, 1, 0]"
check "lying narinfo first: diffed from c2's nar instead" \
  test "$(jget "$TMP/lie.json" '(d["items"][0]["diffs"][0]["a"], d["items"][0]["diffs"][0]["b"], len(d["items"][0]["diffs"][0]["files"]))')" = "('$u2', '$u1', 3)"
check "lying narinfo first: the mismatch is a note" \
  grep -q "$u3: hash mismatch: the NAR hashes to" <<<"$(jget "$TMP/lie.json" 'd["items"][0]["diffs"][0]["notes"]')"
rc=0; out=$("$CAIRN" challenge --diff --from "$u3" --from "$u1" --from "$u2" "$STAMP") || rc=$?
check "lying narinfo first: note printed before the diff" \
  grep -q "^  note: $u3: hash mismatch: the NAR hashes to .*, not the NarHash" <<<"$out"

# ---- --diff downloads through the shared engine (issue 13.1): a cut body
# is resumed with Range, a FileHash that does not match fails the source
# over to the next server of the group
PYSRV=$SRCDIR/tests/integration/fetch-test-server.py
python3 "$PYSRV" "$TMP/c2" "$TMP/cut.port" cut "$TMP/cut.log" 2>/dev/null &
cleanup_hooks+=("kill $! 2>/dev/null")
ucut=http://127.0.0.1:$(port_from_file "$TMP/cut.port" $!)
rc=0; out=$("$CAIRN" challenge --diff --from "$u1" --from "$ucut" "$STAMP") || rc=$?
check "--diff from a server that cuts the body: resumed, 3 changes" \
  grep -q "^  diff $u1 -> $ucut: 3 changes$" <<<"$out"
check "  ... with a Range request" grep -q "^GET /nar/.* bytes=[1-9]" "$TMP/cut.log"
cp -r "$TMP/c2" "$TMP/c5"
n5=$(narinfo_of "$TMP/c5" "$STAMP")
sed -i "s|^FileHash: sha256:.*|FileHash: sha256:0000000000000000000000000000000000000000000000000000|" "$n5"
serve_nginx "$TMP/c5"; u5=http://127.0.0.1:$SERVE_PORT
rc=0; out=$("$CAIRN" challenge --diff --from "$u1" --from "$u5" --from "$u2" "$STAMP") || rc=$?
echo "$out" | sed 's/^/  /'
check "--diff: a FileHash that does not match is caught, noted" \
  grep -q "^  note: $u5: FileHash mismatch" <<<"$out"
check "  ... and the group's next server is used" grep -q "^  diff $u1 -> $u2: 3 changes$" <<<"$out"

# ---- down and garbage servers
rc=0; out=$("$CAIRN" challenge --from "$u1" --from "$uc" --from "$uj" $others) || rc=$?
check "down + junk with one good cache: all inconclusive, exit 1" test "$rc" = 1
check "down + junk: summary" \
  grep -qx '3 store items analysed: 0 (0.0%) identical, 0 (0.0%) differ, 3 (100.0%) inconclusive' <<<"$out"
rc=0; "$CAIRN" challenge --json --from "$u1" --from "$u2" --from "$uc" --from "$uj" $others >"$TMP/d.json" || rc=$?
check "down + junk beside two good caches: identical, exit 0" test "$rc" = 0
check "down + junk: closed port is unknown for every item" \
  test "$(jget "$TMP/d.json" 'set(i["sources"][2]["outcome"] for i in d["items"])')" = "{'unknown'}"
check "down + junk: junk server is never present" \
  test "$(jget "$TMP/d.json" 'any(i["sources"][3]["outcome"] == "present" for i in d["items"])')" = False

# ---- cairn publish over the two stores, one in each dialect (when this
# build has it)
if "$CAIRN" publish -h >/dev/null 2>&1 || { not_ok "cairn publish is available"; false; }; then
  start_publish() { # NAME ARGS...: sets PUB_URL
    local name=$1; shift
    "$CAIRN" publish --listen 127.0.0.1:0 --port-file "$TMP/$name.port" --threads 1 "$@" \
      >"$TMP/$name.log" 2>&1 &
    cleanup_hooks+=("kill $!")
    PUB_URL=http://127.0.0.1:$(port_from_file "$TMP/$name.port" $!)
  }
  # --store is a root here as in challenge itself (issue 13.6)
  start_publish pub1 --store "$TMP/store1" --key "$TMP/k1.sec"
  p1=$PUB_URL
  start_publish pub2 --store "$TMP/store2" --dialect guix --compression zstd:3,none
  p2=$PUB_URL
  rc=0; out=$("$CAIRN" challenge --diff --from "$p1" --from "$p2" --from "$u1" $CLOSURE) || rc=$?
  echo "$out" | sed 's/^/  /'
  check "publish (nix + guix dialects): exit 2" test "$rc" = 2
  check "publish: summary" \
    grep -qx '4 store items analysed: 3 (75.0%) identical, 1 (25.0%) differ, 0 (0.0%) inconclusive' <<<"$out"
  check "publish: the nix-dialect server agrees with the cache of its store" \
    grep -qx "  differs: {$p1, $u1} vs {$p2}" <<<"$out"
  check "publish: --diff over both dialects names the three changed files" \
    test "$(awk '$1 == "content" {print $2}' <<<"$out" | LC_ALL=C sort | tr '\n' ' ')" = "\"/share/x\\xffy\" /share/random /stamp "
  rc=0; out=$("$CAIRN" weather --from "$p1" --from "$p2" $CLOSURE) || rc=$?
  check "publish: weather sees 4 of 4 on both" test "$(grep -c '^  100.0% available (4 of 4)$' <<<"$out")" = 2
else
  echo "skip: this cairn has no publish command; publish checks not run"
fi

# ---- usage
rc=0; "$CAIRN" challenge "$TOP" 2>/dev/null || rc=$?
check "no source: usage error" test "$rc" = 2
check "challenge -h" sh -c '"$CAIRN" challenge -h | grep -q "^usage: cairn challenge"'

finish
