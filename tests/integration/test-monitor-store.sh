#!/usr/bin/env bash
# cairn monitor --store ROOT (issue 16): the local store compared with a
# cache.  Two Nix stores built from the same expressions (wt-stamp is not
# reproducible); the first copied to an nginx-served cache, the second
# given as the monitor's local store.  wt-stamp differs between the cache
# and this machine's build, the rest agree (unsigned: neither the cache
# nor a store signs here), and the local store is a server row of its own.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/serve-lib.sh"
skip_unless nginx python3 curl
nix_lib_init

build_two_stores
nix_copy_to_file "$TMP/store1" "$TOP" "$TMP/c1" xz
serve_nginx "$TMP/c1"; u1=http://127.0.0.1:$SERVE_PORT
printf '%s\n' "$CLOSURE" >"$TMP/paths"
hp() { basename "$1" | cut -c1-32; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

check "--store-db without --store is refused" \
  bash -c '! "$1" monitor --from http://127.0.0.1:1 --db "$2/x.sqlite" --store-db /x 2>/dev/null' _ "$CAIRN" "$TMP"
check "--store on a directory without a store database: refused at start, saying so" \
  bash -c '! "$1" monitor --from http://127.0.0.1:1 --db "$2/y.sqlite" --store "$2/nothing" 2>"$2/y.err" && grep -q "store database" "$2/y.err"' _ "$CAIRN" "$TMP"

"$CAIRN" monitor --from "$u1" --store "$TMP/store2" --db "$TMP/mon.sqlite" \
  --listen 127.0.0.1:0 --port-file "$TMP/mon.port" --paths "$TMP/paths" --interval 3600 \
  >"$TMP/mon.log" 2>&1 &
MPID=$!
cleanup_hooks+=("kill -9 $MPID 2>/dev/null")
MURL=http://127.0.0.1:$(port_from_file "$TMP/mon.port" "$MPID" 15)
api() { curl -sf --max-time 10 "$MURL$1"; }
verdict() { api "/api/v1/items/$(hp "$1")" | jq_ 'd["verdict"]'; }
n=$(wc -l <"$TMP/paths")
check "wt-stamp: the cache and the local store differ" \
  wait_for 30 eval '[ "$(verdict "$STAMP" 2>/dev/null)" = differs ]' || sed 's/^/  | /' "$TMP/mon.log"
check "the other $((n - 1)) items: the same claim in the cache and the store (unsigned)" \
  test "$(api /api/v1/summary | jq_ '(d["verdicts"]["unsigned"], d["verdicts"]["differs"])')" = "($((n - 1)), 1)"
check "the local store is a server row, named by its root, with the $n items" \
  test "$(api /api/v1/summary | jq_ '[(s["url"], s["present"]) for s in d["servers"]]')" = \
       "[('$u1', $n), ('local:$TMP/store2/nix/store', $n)]"
check "wt-stamp: the store's NarHash is that of the store's database" \
  test "$(api "/api/v1/items/$(hp "$STAMP")" | jq_ '[s["nar_hash"] for s in d["servers"] if s["url"].startswith("local:")][0]')" = \
       "$(nix-store --store "$(nix_store_uri "$TMP/store2")" --query --hash "$STAMP")"
check "wt-b: the store's References are the narinfo's (the same claim)" \
  test "$(api "/api/v1/items/$(hp "$(grep -- '-wt-b$' <<<"$CLOSURE")")" | jq_ 'len(set(s["references"] for s in d["servers"]))')" = 1
# the file diff against the store: the cache's NAR downloaded, the
# store's tree dumped as a NAR where it lies
check "wt-stamp: diffed against the local store" \
  wait_for 30 eval '[ "$(api "/api/v1/items/$(hp "$STAMP")" | jq_ "d[\"diff\"][\"state\"]")" = done ]' ||
  sed 's/^/  | /' "$TMP/mon.log"
api "/api/v1/items/$(hp "$STAMP")" >"$TMP/stamp.json"
check "wt-stamp: stamp and share/random differ, between the cache and the store" \
  test "$(jq_ '(sorted(f["path"] for f in d["diff"]["files"] if f["path"] in ("stamp", "share/random")), sorted(set((f["a_server"], f["b_server"]) for f in d["diff"]["files"])))' <"$TMP/stamp.json")" = \
       "(['share/random', 'stamp'], [('$u1', 'local:$TMP/store2/nix/store')])"
check "wt-stamp: the store's stamp file is the one on disk" \
  test "$(jq_ '[f["b"]["sha256"] for f in d["diff"]["files"] if f["path"] == "stamp"][0]' <"$TMP/stamp.json")" = \
       "$(sha256sum <"$TMP/store2$STAMP/stamp" | cut -d' ' -f1)"
kill "$MPID"
finish
