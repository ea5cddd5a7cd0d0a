#!/usr/bin/env bash
# cairn monitor (issue 16) with real processes: two Nix stores built from
# the same expressions where one derivation is not reproducible, copied to
# two binary caches signed by different keys; the first served by
# `cairn publish --binary-cache --feed` (followed through its signed
# feed), the second by nginx (asked about a path list).  The JSON verdicts
# are exactly right (agree, differs, only-one), the item page shows the
# files that differ, a hostile narinfo field comes out escaped, an item
# added to the feed's cache shows up without a restart, a restart keeps
# the history, and a server going down is no disagreement.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/serve-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless nginx python3 curl sqlite3 xz
publish_require
nix_lib_init

build_two_stores
"$CAIRN" key generate --format nix --secret "$TMP/ka.sec" --public "$TMP/ka.pub" monitor-a
nix_gen_key wt-1 "$TMP/k1"
nix_gen_key wt-2 "$TMP/k2"
nix_copy_to_file "$TMP/store1" "$TOP" "$TMP/c1" xz "$TMP/k1.sec"
nix_copy_to_file "$TMP/store2" "$TOP" "$TMP/c2" zstd "$TMP/k2.sec"
hp() { basename "$1" | cut -c1-32; }
A=$(grep -- '-wt-a$' <<<"$CLOSURE")
B=$(grep -- '-wt-b$' <<<"$CLOSURE")
# wt-top only on the first cache
rm "$(narinfo_of "$TMP/c2" "$TOP")"
# a hostile server: markup in a field it controls (not signed: the
# signature still verifies)
EVIL='<script>alert("x")</script><img src=x onerror=alert(1)>'
printf 'Comment: %s\n' "$EVIL" >>"$(narinfo_of "$TMP/c2" "$A")"

publish_start --binary-cache "$TMP/c1" --feed "$TMP/feed1" --key "$TMP/k1.sec" ||
  { not_ok "cairn publish --feed starts"; finish; exit 1; }
u1=$PUBLISH_URL
serve_nginx "$TMP/c2"; u2=http://127.0.0.1:$SERVE_PORT; NGINX2=$NGINX_PID
printf '%s\n' "$A" "$B" "$STAMP" >"$TMP/paths"

# monitor_start: a monitor on the same database each time; sets MURL
mon_n=0
monitor_start() {
  mon_n=$((mon_n + 1))
  MLOG=$TMP/monitor-$mon_n.log
  TMPDIR=$TMP "$CAIRN" monitor --from "$u1" --from "$u2" --db "$TMP/mon.sqlite" \
    --listen 127.0.0.1:0 --port-file "$TMP/mon-$mon_n.port" --paths "$TMP/paths" \
    --trusted-key "$TMP/k1.pub" --trusted-key "$TMP/k2.pub" --interval 3600 --poll 200ms \
    --key "$TMP/ka.sec" \
    >"$MLOG" 2>&1 &
  MPID=$!
  cleanup_hooks+=("kill -9 $MPID 2>/dev/null")
  MURL=http://127.0.0.1:$(port_from_file "$TMP/mon-$mon_n.port" "$MPID" 15)
}
monitor_stop() {
  kill "$MPID" && wait_gone "$MPID" 10 && { wait "$MPID"; }
}
api() { curl -sf --max-time 10 "$MURL$1"; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
verdict() { api "/api/v1/items/$(hp "$1")" | jq_ 'd["verdict"]'; }
# settled: every item known has the verdict expected and the diff is done
settled() {
  [ "$(verdict "$A")" = agree ] && [ "$(verdict "$B")" = agree ] &&
    [ "$(verdict "$TOP")" = only-one ] && [ "$(verdict "$STAMP")" = differs ] &&
    [ "$(api "/api/v1/items/$(hp "$STAMP")" | jq_ 'd["diff"]["state"]')" = done ]
}

monitor_start
check "the monitor serves its API" wait_for 15 eval "api /api/v1/summary >/dev/null"
check "verdicts settle: wt-a, wt-b agree; wt-stamp differs; wt-top on one server only" \
  wait_for 60 settled || sed 's/^/  | /' "$MLOG"
api /api/v1/summary >"$TMP/summary.json"
check "summary: 4 items, 2 agree, 1 differs, 1 only-one" \
  test "$(jq_ '(d["items"], d["verdicts"]["agree"], d["verdicts"]["differs"], d["verdicts"]["only-one"])' <"$TMP/summary.json")" = "(4, 2, 1, 1)"
check "summary: the first server has a feed, the second not" \
  test "$(jq_ '[(s["url"], s["feed"]) for s in d["servers"]]' <"$TMP/summary.json")" = "[('$u1', True), ('$u2', False)]"
check "differs list: exactly wt-stamp" \
  test "$(api '/api/v1/items?verdict=differs' | jq_ '[i["path"] for i in d["items"]]')" = "['$STAMP']"
check "pagination: limit=1 over all items gives a cursor, and the pages cover the 4 items" \
  python3 - "$MURL" <<'PY'
import json, sys, urllib.request
seen, cur = [], ""
for _ in range(10):
    d = json.load(urllib.request.urlopen(sys.argv[1] + "/api/v1/items?limit=1" + ("&cursor=" + cur if cur else "")))
    seen += [i["hash"] for i in d["items"]]
    if not d["next"]:
        break
    cur = d["next"]
sys.exit(0 if len(seen) == 4 and len(set(seen)) == 4 else 1)
PY
api "/api/v1/items/$(hp "$STAMP")" >"$TMP/stamp.json"
check "wt-stamp: two servers, two different NarHashes, both signatures valid" \
  test "$(jq_ '(len(d["servers"]), len(set(s["nar_hash"] for s in d["servers"])), [s["signature"] for s in d["servers"]])' <"$TMP/stamp.json")" = "(2, 2, ['valid', 'valid'])"
check "wt-stamp: the files that differ are stamp, share/random and share/x\\377y (as U+FFFD)" \
  test "$(jq_ 'ascii(sorted(f["path"] for f in d["diff"]["files"] if f["change"] == "content"))' <"$TMP/stamp.json")" = "['share/random', 'share/x\\ufffdy', 'stamp']"
check "wt-stamp: stamp's hash on the second server is that of its file" \
  test "$(jq_ '[f["b"]["sha256"] for f in d["diff"]["files"] if f["path"] == "stamp"][0]' <"$TMP/stamp.json")" = \
       "$(sha256sum <"$TMP/store2$STAMP/stamp" | cut -d' ' -f1)"
check "wt-stamp: history is one change, to differs" \
  test "$(jq_ '[h["verdict"] for h in d["history"]]' <"$TMP/stamp.json")" = "['differs']"

curl -sf "$MURL/item/$(hp "$STAMP")" >"$TMP/stamp.html"
check "item page: names the differing file" grep -q '<code>stamp</code>' "$TMP/stamp.html"
check "item page: both narinfos side by side" test "$(grep -o '<pre>StorePath: ' "$TMP/stamp.html" | wc -l)" = 2
# diffoscope on the two unpacked NARs: linked from the item page, served
# apart in a sandbox (its HTML holds what the servers sent)
if command -v diffoscope >/dev/null 2>&1; then
  check "item page: links diffoscope's report" \
    grep -qF "<a href=\"/item/$(hp "$STAMP")/diffoscope\">" "$TMP/stamp.html"
  curl -sf -D "$TMP/dsc.h" "$MURL/item/$(hp "$STAMP")/diffoscope" >"$TMP/dsc.html"
  # diffoscope 240's HTML fails on a tree with the non-UTF-8 name: it is
  # run per differing file, on names of the monitor's, under the real ones
  check "diffoscope report: a section per differing file, the real names escaped" \
    bash -c 'for f in stamp share/random "share/x&#xfffd;y"; do grep -qF "<h2 class=\"file\"><code>$f</code></h2>" "$1" || exit 1; done' _ "$TMP/dsc.html"
  check "diffoscope report: diffoscope's own HTML diff of stamp (its changed line), not its text report" \
    python3 - "$TMP/dsc.html" <<'PY'
import sys
h = open(sys.argv[1], encoding="utf-8", errors="replace").read()
stamp = h.split('<code>stamp</code></h2>', 1)[1].split('<h2 class="file">', 1)[0]
ok = ('<body class="diffoscope">' in h and '.diffoscope .difference' in h
      and '<table class="diff">' in stamp and 'class="diffchanged"' in stamp
      and "text report" not in h)
sys.exit(0 if ok else 1)
PY
  check "diffoscope report: no script in it" bash -c '! grep -qi "<script" "$1"' _ "$TMP/dsc.html"
  check "API: the item document says where diffoscope's report is (the page's link), its size, no note" \
    test "$(jq_ 'tuple(d["diff"]["diffoscope"][k] for k in ("url", "size", "note", "a_server", "b_server"))' <"$TMP/stamp.json")" = \
         "('/item/$(hp "$STAMP")/diffoscope', $(wc -c <"$TMP/dsc.html"), None, '$u1', '$u2')"
  check "API: no diffoscope for an item that agrees (null)" \
    test "$(api "/api/v1/items/$(hp "$A")" | jq_ 'd["diff"]["diffoscope"]')" = None
  check "diffoscope report: served sandboxed, scripts off" \
    grep -qi "^content-security-policy: sandbox; default-src 'none'" "$TMP/dsc.h"
  check "diffoscope report: none for an item that agrees (404)" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "$MURL/item/$(hp "$A")/diffoscope")" = 404
  check "diffoscope: its temporary trees are gone" \
    bash -c '! ls -d "$1"/cairn-monitor-* 2>/dev/null' _ "$TMP"
elif [ "${CI:-}" = true ]; then
  not_ok "diffoscope is required in CI"
else
  echo "# skip: diffoscope not found"
fi
curl -sf "$MURL/item/$(hp "$A")" >"$TMP/a.html"
check "hostile field: escaped on the item page" \
  grep -qF 'Comment: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;' "$TMP/a.html"
check "hostile field: no markup of the server's in the page" \
  bash -c '! grep -qiE "<script|<img" "$1"' _ "$TMP/a.html"
check "hostile field: inert in the JSON too" \
  bash -c 'curl -sf "$1" | grep -q "\\\\u003cscript\\\\u003e" && ! curl -sf "$1" | grep -q "<script"' _ "$MURL/api/v1/items/$(hp "$A")"
check "overview page lists the servers" \
  bash -c 'curl -sf "$1/" | grep -qF "$2"' _ "$MURL" "$u2"
check "disagreements page lists wt-stamp" \
  bash -c 'curl -sf "$1/items?verdict=differs" | grep -qF "$2"' _ "$MURL" "$STAMP"
check "server page answers" curl -sf -o /dev/null "$MURL/server/1"
# on both: wt-a, wt-b (agree), wt-stamp (differs); wt-top on the first only
check "overview: the two servers agree on 2 of the 3 items both have (66.7 %), today too" \
  bash -c 'curl -sf "$1/" | tr -d "\n" | grep -qE "<td>3</td><td>2</td><td class=\"rate\">66.7&nbsp;%</td><td class=\"trend\"><span class=\"day\"><time>$(date -u +%F)</time> 66.7&nbsp;%"' _ "$MURL"
check "server page: its agreement with the other server" \
  bash -c 'curl -sf "$1/server/2" | grep -qF "66.7&nbsp;%"' _ "$MURL"
check "overview: today's items per verdict (2 agree, 1 differs, 1 only-one)" \
  bash -c 'curl -sf "$1/" | grep -qF "<tr><td><time>$(date -u +%F)</time></td><td>2</td><td>1</td><td>0</td><td>1</td>"' _ "$MURL"
check "Atom feed names wt-stamp" bash -c 'curl -sf "$1/atom.xml" | grep -qF "differs: $2"' _ "$MURL" "$STAMP"
check "/metrics counts items by verdict" \
  bash -c 'curl -sf "$1/metrics" | grep -qx "cairn_monitor_items{verdict=\"differs\"} 1"' _ "$MURL"
check "unknown item: 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$MURL/api/v1/items/00000000000000000000000000000000")" = 404
check "name filter: wt-stamp" \
  test "$(api '/api/v1/items?name=wt-stamp' | jq_ '[i["path"] for i in d["items"]]')" = "['$STAMP']"
check "name and verdict filters together: the agreeing wt- items" \
  test "$(api '/api/v1/items?verdict=agree&name=-wt-' | jq_ 'sorted(i["path"] for i in d["items"])')" = "$(printf '%s\n' "$A" "$B" | sort | python3 -c 'import sys; print(sorted(l.strip() for l in sys.stdin))')"
curl -sf "$MURL/items?name=%3Cscript%3Ex%22" >"$TMP/filter.html"
check "name filter page: the name typed is echoed escaped, nothing found" \
  bash -c 'grep -qF "value=\"&lt;script&gt;x&quot;\"" "$1" && ! grep -q "<script" "$1" && ! grep -q "/item/" "$1"' _ "$TMP/filter.html"
check "bad verdict filter: 400" test "$(curl -s -o /dev/null -w '%{http_code}' "$MURL/api/v1/items?verdict=nope")" = 400

# ---- --paths URL: a Hydra-style store-paths.xz, fetched at each full pass
printf '%s\n' "$A" "# a comment" "" "$B  " "$STAMP" | xz >"$TMP/c2/store-paths.xz"
"$CAIRN" monitor --from "$u2" --db "$TMP/mon-url.sqlite" --listen 127.0.0.1:0 \
  --port-file "$TMP/mon-url.port" --paths "$u2/store-paths.xz" --interval 3600 \
  >"$TMP/mon-url.log" 2>&1 &
UPID=$!
cleanup_hooks+=("kill -9 $UPID 2>/dev/null")
UURL=http://127.0.0.1:$(port_from_file "$TMP/mon-url.port" "$UPID" 15)
check "--paths URL: the 3 store paths of a store-paths.xz are asked about (only-one each)" \
  wait_for 30 eval '[ "$(curl -sf "$UURL/api/v1/summary" | jq_ "d[\"verdicts\"][\"only-one\"]")" = 3 ]' ||
  sed 's/^/  | /' "$TMP/mon-url.log"
kill "$UPID"

# ---- a new item on the first cache reaches the monitor through the feed
# (the path list does not name it, and no full pass is due for an hour)
cat >"$TMP/new.nix" <<'NIX'
derivation { name = "wt-new"; system = builtins.currentSystem; builder = "/bin/sh";
  PATH = "/bin:/usr/bin"; args = [ "-c" "mkdir -p $out; echo new > $out/new" ]; }
NIX
NEW=$(nix-build --store "$(nix_store_uri "$TMP/store1")" --no-out-link --quiet "$TMP/new.nix")
nix_copy_to_file "$TMP/store1" "$NEW" "$TMP/c1" xz "$TMP/k1.sec"
check "a new item on the feed shows up without a restart (only-one)" \
  wait_for 30 eval '[ "$(verdict "$NEW" 2>/dev/null)" = only-one ]'

# ---- the head's feed recreated (a new feed id, its own numbering): read
# from its start, and an item only the new feed names is learnt
kill "$PUBLISH_PID"; wait_gone "$PUBLISH_PID" 10
sed 's/wt-new/wt-new2/' "$TMP/new.nix" >"$TMP/new2.nix"
NEW2=$(nix-build --store "$(nix_store_uri "$TMP/store1")" --no-out-link --quiet "$TMP/new2.nix")
nix_copy_to_file "$TMP/store1" "$NEW2" "$TMP/c1" xz "$TMP/k1.sec"
"$CAIRN" publish --listen "127.0.0.1:$PUBLISH_PORT" --binary-cache "$TMP/c1" \
  --feed "$TMP/feed1b" --key "$TMP/k1.sec" >"$TMP/publish-b.log" 2>&1 &
PUBLISH_PID=$!
cleanup_hooks+=("kill -9 $PUBLISH_PID 2>/dev/null")
check "recreated feed: the monitor reads it from the start (wt-new2 only-one)" \
  wait_for 30 eval '[ "$(verdict "$NEW2" 2>/dev/null)" = only-one ]'
check "recreated feed: said once in the log" test "$(grep -c 'the feed is now' "$MLOG")" = 1

# ---- restart: the history is kept, no change is recorded twice
first_seen=$(jq_ 'd["first_seen"]' <"$TMP/stamp.json")
check "the monitor stops on SIGTERM" monitor_stop
# a server going down meanwhile: its answers stand, nothing differs anew
nginx_stop
monitor_start
check "restarted monitor serves its API" wait_for 15 eval "api /api/v1/summary >/dev/null"
check "after the restart's pass the second server is seen down" \
  wait_for 30 eval '[ "$(api /api/v1/summary | jq_ "d[\"servers\"][1][\"error\"] is not None")" = True ]'
api "/api/v1/items/$(hp "$STAMP")" >"$TMP/stamp2.json"
check "restart: wt-stamp still differs, first seen unchanged, one change in its history" \
  test "$(jq_ '(d["verdict"], d["first_seen"], len(d["history"]))' <"$TMP/stamp2.json")" = "('differs', $first_seen, 1)"
check "server down: wt-a and wt-b still agree" \
  eval '[ "$(verdict "$A")" = agree ] && [ "$(verdict "$B")" = agree ]'
check "restart: 6 items known" test "$(api /api/v1/summary | jq_ 'd["items"]')" = 6

# ---- the signed observation log, checked by `cairn monitor verify`
api /api/v1/log >"$TMP/a.log"
check "the log records what each server said (wt-stamp on both, two NarHashes)" \
  test "$(awk -v h="$(hp "$STAMP")" '$1 == "obs" && $5 == h {print $4, $7}' "$TMP/a.log" | sort -u | wc -l)" = 2
check "cairn monitor verify: the log verifies with the monitor's key" \
  "$CAIRN" monitor verify "$TMP/a.log" --trusted-key "$TMP/ka.pub"
sed '0,/ sha256:/s/ sha256:./ sha256:e/' "$TMP/a.log" >"$TMP/a-forged.log"
check "cairn monitor verify: a record changed is refused (hash)" \
  bash -c '! "$1" monitor verify "$2" --trusted-key "$3" 2>"$2.err" && grep -q "hash to" "$2.err"' _ \
  "$CAIRN" "$TMP/a-forged.log" "$TMP/ka.pub"
check "cairn monitor verify: another key is refused" \
  bash -c '! "$1" monitor verify "$2" --trusted-key "$3" 2>/dev/null' _ "$CAIRN" "$TMP/a.log" "$TMP/k1.pub"

# ---- peers: a good log appears attributed, a log by an untrusted key does not
AURL=$MURL
peer_start() { # NAME KEY...: a monitor of u1 with --peer A
  local name=$1; shift
  local keys=()
  for k in "$@"; do keys+=(--trusted-key "$k"); done
  "$CAIRN" monitor --from "$u1" --db "$TMP/$name.sqlite" --listen 127.0.0.1:0 \
    --port-file "$TMP/$name.port" --peer "$AURL" "${keys[@]}" --poll 200ms >"$TMP/$name.log" 2>&1 &
  PPID_=$!
  cleanup_hooks+=("kill -9 $PPID_ 2>/dev/null")
  PURL=http://127.0.0.1:$(port_from_file "$TMP/$name.port" "$PPID_" 15)
}
peers_of() { curl -sf "$PURL/api/v1/items/$(hp "$STAMP")" | jq_ "$1"; }
peer_start good "$TMP/ka.pub" "$TMP/k1.pub"
check "peer with the right key: A's observations of wt-stamp appear, attributed to A" \
  wait_for 30 eval '[ "$(peers_of "set((p[\"peer\"], p[\"server\"]) for p in d[\"peers\"]) == {(\"$AURL\", \"$u1\"), (\"$AURL\", \"$u2\")}" 2>/dev/null)" = True ]'
check "peer: the two NarHashes A saw" \
  test "$(peers_of 'len(set(p["nar_hash"] for p in d["peers"]))')" = 2
check "peer: shown on the item page" \
  bash -c 'curl -sf "$1/item/$2" | grep -q "What other monitors saw"' _ "$PURL" "$(hp "$STAMP")"
# ---- A's history rewritten (a record changed in its database, the log
# signed again with its key): the peer's next read must extend the log it
# used, so the new one is refused and what A said before stays
pmetric() { curl -sf "$PURL/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
wait_for 10 eval '[ "$(pmetric cairn_monitor_peer_logs_total)" -ge 2 ]'
monitor_stop
sqlite3 "$TMP/mon.sqlite" "UPDATE log SET nar_hash = 'sha256:rewritten' WHERE seq = 1"
aport=${AURL##*:}
"$CAIRN" monitor --from "$u1" --from "$u2" --db "$TMP/mon.sqlite" \
  --listen "127.0.0.1:$aport" --paths "$TMP/paths" \
  --trusted-key "$TMP/k1.pub" --trusted-key "$TMP/k2.pub" --interval 3600 --poll 200ms \
  --key "$TMP/ka.sec" >"$TMP/monitor-rewritten.log" 2>&1 &
MPID=$!
cleanup_hooks+=("kill -9 $MPID 2>/dev/null")
check "A rewritten: its log still verifies on its own (it signed it)" \
  wait_for 15 eval 'curl -sf "$AURL/api/v1/log" >"$TMP/a2.log" && "$CAIRN" monitor verify "$TMP/a2.log" --trusted-key "$TMP/ka.pub" 2>/dev/null'
check "A rewritten: the peer refuses the log, which does not extend the one it used" \
  wait_for 30 eval '[ "$(pmetric cairn_monitor_peer_logs_refused_total)" -ge 1 ]'
check "A rewritten: the peer says the history was rewritten" \
  grep -q "history was rewritten" "$TMP/good.log"
check "A rewritten: the peer keeps A's two NarHashes of wt-stamp as it had them" \
  test "$(peers_of 'sorted(set(p["nar_hash"] for p in d["peers"]))')" = \
       "$(python3 -c 'import json,sys; print(sorted(set(s["nar_hash"] for s in json.load(open(sys.argv[1]))["servers"])))' "$TMP/stamp.json")"
h1=$(sqlite3 "$TMP/mon.sqlite" "SELECT hash FROM log WHERE seq = 1")
check "A rewritten: the rewritten record is nowhere on the peer" \
  bash -c '! curl -sf "$1/api/v1/items/$2" | grep -q rewritten' _ "$PURL" "$h1"
kill "$PPID_"; wait_gone "$PPID_" 10
# ---- the log pruned (retention): its first records, aged (while a long
# --retention keeps them), are dropped at the next start into a `base` line
# carrying their chained digest; it still verifies, and a peer that read
# it before reads it after, the chain continuing
a_restart() { # NAME [OPTION...]: A again, on its port and database
  local name=$1; shift
  "$CAIRN" monitor --from "$u1" --from "$u2" --db "$TMP/mon.sqlite" \
    --listen "127.0.0.1:$aport" --paths "$TMP/paths" \
    --trusted-key "$TMP/k1.pub" --trusted-key "$TMP/k2.pub" --interval 3600 --poll 200ms \
    --key "$TMP/ka.sec" "$@" >"$TMP/monitor-$name.log" 2>&1 &
  MPID=$!
  cleanup_hooks+=("kill -9 $MPID 2>/dev/null")
}
monitor_stop
sqlite3 "$TMP/mon.sqlite" "UPDATE log SET at = 1 WHERE seq <= 2"
a_restart aged --retention 36500
peer_start rot "$TMP/ka.pub" "$TMP/k1.pub"
check "rotation: a new peer reads A's log" wait_for 30 eval '[ "$(pmetric cairn_monitor_peer_logs_total)" -ge 1 ]'
curl -sf "$AURL/api/v1/log" >"$TMP/a3.log"
check "rotation: a long --retention keeps the aged records" test "$(grep -c '^obs 1 1 ' "$TMP/a3.log")" = 1
monitor_stop
a_restart pruned
chain2=$(python3 -c '
import hashlib, sys
c = bytes(32)
for l in [l for l in open(sys.argv[1], "rb") if l.startswith(b"obs ")][:2]:
    c = hashlib.sha256(c + l).digest()
print(c.hex())' "$TMP/a3.log")
check "rotation: A's log starts with base 2 and the chained digest of the two records dropped" \
  wait_for 15 eval 'curl -sf "$AURL/api/v1/log" >"$TMP/a4.log" && grep -qx "base 2 $chain2" "$TMP/a4.log"'
check "rotation: the two aged records are gone from the log, the rest kept" \
  test "$(grep -c '^obs ' "$TMP/a4.log")" = "$(( $(grep -c '^obs ' "$TMP/a3.log") - 2 ))"
check "rotation: cairn monitor verify accepts it, the count over the whole history unchanged" \
  bash -c '"$1" monitor verify "$2" --trusted-key "$3" >"$2.out" && grep -q ": $4 observations" "$2.out" && grep -q "first 2 were pruned; their chained digest: $5" "$2.out"' _ \
  "$CAIRN" "$TMP/a4.log" "$TMP/ka.pub" "$(grep -c '^obs ' "$TMP/a3.log")" "$chain2"
sed "s/^base 2 ./base 2 $( [ "${chain2:0:1}" = 0 ] && echo 1 || echo 0)/" "$TMP/a4.log" >"$TMP/a4-forged.log"
check "rotation: a base changed after signing is refused" \
  bash -c '! "$1" monitor verify "$2" --trusted-key "$3" 2>/dev/null' _ "$CAIRN" "$TMP/a4-forged.log" "$TMP/ka.pub"
n0=$(pmetric cairn_monitor_peer_logs_total)
check "rotation: the peer that read the log before reads the pruned one, the chain continuing" \
  wait_for 30 eval '[ "$(pmetric cairn_monitor_peer_logs_total)" -gt "$n0" ]'
check "rotation: the peer refused nothing" test "$(pmetric cairn_monitor_peer_logs_refused_total)" = 0
kill "$PPID_"; wait_gone "$PPID_" 10
peer_start bad "$TMP/k1.pub"
prefused() { curl -sf "$PURL/metrics" | awk '$1 == "cairn_monitor_peer_logs_refused_total" {print $2}'; }
check "peer signed by an untrusted key: its log is refused" wait_for 30 eval '[ "$(prefused)" -ge 1 ]'
check "peer signed by an untrusted key: nothing of it is shown" \
  test "$(peers_of 'len(d["peers"])' 2>/dev/null || echo 0)" = 0
kill "$PPID_"; wait_gone "$PPID_" 10
check "the monitor stops on SIGTERM again" monitor_stop

# ---- a feed signed by a key that is not trusted is not followed
"$CAIRN" key generate --format nix --secret "$TMP/k3.sec" --public "$TMP/k3.pub" wt-3
publish_start --binary-cache "$TMP/c1" --feed "$TMP/feed3" --key "$TMP/k3.sec" ||
  { not_ok "cairn publish --feed (untrusted key) starts"; finish; exit 1; }
"$CAIRN" monitor --from "$PUBLISH_URL" --db "$TMP/mon3.sqlite" --listen 127.0.0.1:0 \
  --port-file "$TMP/mon3.port" --trusted-key "$TMP/k1.pub" --poll 100ms >"$TMP/mon3.log" 2>&1 &
MPID=$!
cleanup_hooks+=("kill -9 $MPID 2>/dev/null")
MURL=http://127.0.0.1:$(port_from_file "$TMP/mon3.port" "$MPID" 15)
refused() { curl -sf "$MURL/metrics" | awk '$1 == "cairn_monitor_feed_pages_refused_total" {print $2}'; }
check "untrusted feed: its pages are refused" wait_for 15 eval '[ "$(refused)" -ge 3 ]'
check "untrusted feed: nothing it names is learnt" test "$(api /api/v1/summary | jq_ 'd["items"]')" = 0
check "untrusted feed: refused once in the log, not at every poll" \
  test "$(grep -c 'refused' "$TMP/mon3.log")" = 1
check "the monitor stops on SIGTERM" monitor_stop

# ---- a head that keeps too few events (410 from 0): its snapshot is read,
# and nothing of it is used before its signature verified
solo() { # NAME URL: a monitor of URL alone, trusting k1, no path list
  "$CAIRN" monitor --from "$2" --db "$TMP/$1.sqlite" --listen 127.0.0.1:0 \
    --port-file "$TMP/$1.port" --trusted-key "$TMP/k1.pub" --poll 100ms >"$TMP/$1.log" 2>&1 &
  MPID=$!
  cleanup_hooks+=("kill -9 $MPID 2>/dev/null")
  MURL=http://127.0.0.1:$(port_from_file "$TMP/$1.port" "$MPID" 15)
}
n_c1=$(ls "$TMP/c1"/*.narinfo | wc -l)
publish_start --binary-cache "$TMP/c1" --feed "$TMP/feed4" --feed-keep 1 --key "$TMP/k3.sec" ||
  { not_ok "cairn publish --feed-keep 1 starts"; finish; exit 1; }
check "the head answers 410 for the events after 0" \
  test "$(curl -s -o /dev/null -w '%{http_code}' "$PUBLISH_URL/feed/events?since=0")" = 410
solo snap-bad "$PUBLISH_URL"
check "snapshot signed by an untrusted key: refused" wait_for 15 eval '[ "$(refused)" -ge 1 ]'
check "snapshot signed by an untrusted key: none of its items is learnt" \
  test "$(api /api/v1/summary | jq_ 'd["items"]')" = 0
monitor_stop
publish_start --binary-cache "$TMP/c1" --feed "$TMP/feed5" --feed-keep 1 --key "$TMP/k1.sec" ||
  { not_ok "cairn publish --feed-keep 1 starts"; finish; exit 1; }
solo snap-good "$PUBLISH_URL"
check "snapshot signed by a trusted key: its $n_c1 items are learnt" \
  wait_for 30 eval '[ "$(api /api/v1/summary | jq_ "d[\"verdicts\"][\"only-one\"]")" = "$n_c1" ]'
check "the monitor stops on SIGTERM" monitor_stop
finish
