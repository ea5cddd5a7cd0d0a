#!/usr/bin/env bash
# cairn weather against real Nix binary caches served by nginx: two caches
# of one closure (one missing some narinfos), a cache that is down, one
# that answers garbage, and a Guix narinfo; coverage, sizes, --closure,
# --missing, --min-coverage, --held and --json.
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
# c2 lacks two of the four items
missing=$(grep -e '-wt-a$' -e '-wt-top$' <<<"$CLOSURE" | sort)
for p in $missing; do rm "$(narinfo_of "$TMP/c2" "$p")"; done
serve_nginx "$TMP/c1"; u1=http://127.0.0.1:$SERVE_PORT
serve_nginx "$TMP/c2"; u2=http://127.0.0.1:$SERVE_PORT
serve_junk; uj=http://127.0.0.1:$SERVE_PORT
uc=http://127.0.0.1:$(serve_closed_port)

jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

# ---- coverage, sizes, --closure
rc=0; "$CAIRN" weather --json --closure --from "$u1" --from "$u2" "$TOP" >"$TMP/w.json" || rc=$?
check "weather exits 0 without --min-coverage" test "$rc" = 0
check "--closure expands to the 4 paths" test "$(jget "$TMP/w.json" 'd["paths"]')" = 4
check "cache 1: 4 of 4" test "$(jget "$TMP/w.json" '(d["servers"][0]["available"], d["servers"][0]["total"])')" = "(4, 4)"
check "cache 2: 2 of 4, 2 absent" test "$(jget "$TMP/w.json" '(d["servers"][1]["available"], d["servers"][1]["absent"], d["servers"][1]["percent"])')" = "(2, 2, 50.0)"
fs=$(cat "$TMP"/c1/*.narinfo | awk '/^FileSize:/ {s += $2} END {print s}')
ns=$(cat "$TMP"/c1/*.narinfo | awk '/^NarSize:/ {s += $2} END {print s}')
check "cache 1: download size is the sum of FileSize ($fs)" test "$(jget "$TMP/w.json" 'd["servers"][0]["download_size"]')" = "$fs"
check "cache 1: unpacked size is the sum of NarSize ($ns)" test "$(jget "$TMP/w.json" 'd["servers"][0]["nar_size"]')" = "$ns"
check "lookups counted" test "$(jget "$TMP/w.json" 'd["lookups"]')" = 8

# ---- narinfos without FileSize (servers that compress on request, issue 12.11):
# NarSize is counted, and the report says so instead of "0 B to download"
mkdir -p "$TMP/nofs"; cp "$TMP"/c1/*.narinfo "$TMP/nofs/"; sed -i '/^FileSize:/d' "$TMP"/nofs/*.narinfo
serve_nginx "$TMP/nofs"; un=http://127.0.0.1:$SERVE_PORT
"$CAIRN" weather --json --from "$un" $CLOSURE >"$TMP/n.json"
check "no FileSize: download size is the NarSize sum, and says so" \
  test "$(jget "$TMP/n.json" '(d["servers"][0]["download_size"], d["servers"][0]["download_size_from_nar_size"], d["servers"][0]["without_file_size"])')" = "($ns, $ns, 4)"
out=$("$CAIRN" weather --from "$un" $CLOSURE)
check "no FileSize: the table says 'at most', never 0 B" \
  bash -c 'grep -q "at most .* to download (no narinfo gives FileSize" <<<"$0" && ! grep -q " 0 B to download" <<<"$0"' "$out"

# ---- the table, --missing, stdin
out=$(echo "$CLOSURE" | "$CAIRN" weather --missing --from "$u1" --from "$u2" -)
echo "$out" | sed 's/^/  /'
check "table: 100.0% available (4 of 4)" grep -q '^  100.0% available (4 of 4)$' <<<"$out"
check "table: 50.0% available (2 of 4)" grep -q '^  50.0% available (2 of 4)$' <<<"$out"
check "--missing lists exactly the two missing paths" \
  test "$(awk '$1 == "absent" {print $2}' <<<"$out" | sort)" = "$missing"

# ---- --min-coverage gates
rc=0; "$CAIRN" weather --min-coverage 60 --from "$u1" --from "$u2" $CLOSURE >/dev/null || rc=$?
check "--min-coverage 60 with a cache at 50%: exit 1" test "$rc" = 1
rc=0; "$CAIRN" weather --min-coverage 50 --from "$u1" --from "$u2" $CLOSURE >/dev/null || rc=$?
check "--min-coverage 50: exit 0" test "$rc" = 0
rc=0; "$CAIRN" weather --min-coverage 100 --from "$u1" $CLOSURE >/dev/null || rc=$?
check "--min-coverage 100 with a full cache: exit 0" test "$rc" = 0

# ---- down and garbage: unknown or invalid, never available, no crash
rc=0; "$CAIRN" weather --json --missing --from "$u1" --from "$uc" --from "$uj" $CLOSURE >"$TMP/bad.json" || rc=$?
check "down and junk servers: exit 0" test "$rc" = 0
check "closed port: 0 available, 4 unknown" \
  test "$(jget "$TMP/bad.json" '(d["servers"][1]["available"], d["servers"][1]["unknown"])')" = "(0, 4)"
check "junk server: 0 available, 4 invalid or unknown" \
  test "$(jget "$TMP/bad.json" '(d["servers"][2]["available"], d["servers"][2]["invalid"] + d["servers"][2]["unknown"])')" = "(0, 4)"
check "junk server: reasons given" \
  test "$(jget "$TMP/bad.json" 'sum(1 for m in d["servers"][2]["missing"] if m.get("reason"))')" = 4
check "good server still 4 of 4" test "$(jget "$TMP/bad.json" 'd["servers"][0]["available"]')" = 4
rc=0; "$CAIRN" weather --min-coverage 1 --from "$u1" --from "$uc" $CLOSURE >/dev/null || rc=$?
check "a down server fails --min-coverage" test "$rc" = 1

# ---- --held: only-if-cached; a 504 (a cache that does not hold it) is
# absent and asked once; without --held a 504 is unknown and retried
python3 "$SRCDIR/tests/integration/hostile-server.py" --port-file "$TMP/hport" \
  --log "$TMP/hlog" --lifetime 300 &
hpid=$!
cleanup_hooks+=("kill $hpid")
uh="http://127.0.0.1:$(port_from_file "$TMP/hport" "$hpid")/status-504"
rc=0; "$CAIRN" weather --held --json --min-coverage 100 --from "$u1" --from "$uh" $CLOSURE \
  >"$TMP/held.json" || rc=$?
check "--held: an origin holds what it has, a 504 is absent" \
  test "$(jget "$TMP/held.json" '(d["held"], d["servers"][0]["available"], d["servers"][1]["absent"], d["servers"][1]["unknown"])')" = "(True, 4, 4, 0)"
check "  below --min-coverage: exit 1" test "$rc" = 1
check "  each path asked once (not retried)" test "$(grep -c '^req .* path=/status-504/[^ ]*\.narinfo ' "$TMP/hlog")" = 4
"$CAIRN" weather --from "$uh" $CLOSURE >/dev/null || true
check "without --held a 504 is retried" test "$(grep -c '^req .* path=/status-504/[^ ]*\.narinfo ' "$TMP/hlog")" -ge 8
out=$("$CAIRN" weather --held --min-coverage 100 --from "$u1" --from "$uh" $CLOSURE) || true
check "--held: a line per cache, held or not, and its verdict" \
  test "$(grep -cE '^  (100.0% held \(4 of 4\)|0.0% held \(0 of 4\)|meets --min-coverage 100.0%|below --min-coverage 100.0%)$' <<<"$out")" = 4

# ---- Guix dialect: the narinfo of a real Guix substitute server
mkdir -p "$TMP/guix"
cp "$VECTORS_DIR/guix/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw.narinfo" "$TMP/guix/"
serve_nginx "$TMP/guix"; ug=http://127.0.0.1:$SERVE_PORT
"$CAIRN" weather --json --from "$ug" /gnu/store/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4 >"$TMP/g.json"
check "guix narinfo: available, FileSize 218663, NarSize 637360" \
  test "$(jget "$TMP/g.json" '(d["servers"][0]["available"], d["servers"][0]["download_size"], d["servers"][0]["nar_size"])')" = "(1, 218663, 637360)"
rc=0; "$CAIRN" weather --closure --json --from "$ug" /gnu/store/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4 >"$TMP/g2.json" || rc=$?
check "guix --closure: 3 paths (self-reference not doubled), 1 of 3" \
  test "$(jget "$TMP/g2.json" '(d["paths"], d["servers"][0]["available"])')" = "(3, 1)"

# ---- usage
rc=0; "$CAIRN" weather "$TOP" 2>/dev/null || rc=$?
check "no --from: usage error" test "$rc" = 2
rc=0; "$CAIRN" weather --from "$u1" not-a-store-path 2>/dev/null || rc=$?
check "bad store path: usage error" test "$rc" = 2
check "weather -h" sh -c '"$CAIRN" weather -h | grep -q "^usage: cairn weather"'

finish
