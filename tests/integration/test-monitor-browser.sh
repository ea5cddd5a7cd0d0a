#!/usr/bin/env bash
# cairn monitor's pages in a real browser (issue 16): Debian's headless
# Chromium loads the overview, the disagreements and an item page of a
# monitor of two nginx-served caches built from the same expressions (one
# derivation not reproducible); the rendered DOM names the item that
# differs and its differing file, the browser logs no console message at
# all (a script blocked by the page's Content-Security-Policy would log
# one), and a screenshot is taken.  A hostile narinfo field with markup
# and scripts that would set the title, add an element and log to the
# console is rendered as text: none of that happens.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/serve-lib.sh"
skip_unless nginx python3 curl chromium
nix_lib_init

build_two_stores
nix_copy_to_file "$TMP/store1" "$TOP" "$TMP/c1" xz
nix_copy_to_file "$TMP/store2" "$TOP" "$TMP/c2" zstd
hp() { basename "$1" | cut -c1-32; }
A=$(grep -- '-wt-a$' <<<"$CLOSURE")
# markup a hostile server puts in a field it controls: each piece, if it
# ran, would leave a mark the checks below look for
EVIL='</pre><script>document.title="PWNED";console.log("PWNED")</script>'
EVIL+='<img src=x onerror="document.title=&quot;PWNED&quot;">'
EVIL+='<div id="pwned-element">x</div><svg onload="console.log(1)"></svg>'
printf 'Comment: %s\n' "$EVIL" >>"$(narinfo_of "$TMP/c2" "$A")"
serve_nginx "$TMP/c1"; u1=http://127.0.0.1:$SERVE_PORT
serve_nginx "$TMP/c2"; u2=http://127.0.0.1:$SERVE_PORT
printf '%s\n' "$CLOSURE" >"$TMP/paths"

"$CAIRN" monitor --from "$u1" --from "$u2" --db "$TMP/mon.sqlite" --listen 127.0.0.1:0 \
  --port-file "$TMP/mon.port" --paths "$TMP/paths" --interval 3600 >"$TMP/mon.log" 2>&1 &
MPID=$!
cleanup_hooks+=("kill -9 $MPID 2>/dev/null")
MURL=http://127.0.0.1:$(port_from_file "$TMP/mon.port" "$MPID" 15)
diffed() {
  curl -sf --max-time 10 "$MURL/api/v1/items/$(hp "$STAMP")" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["verdict"] == "differs" and d["diff"]["state"] == "done" else 1)'
}
check "the monitor finds wt-stamp differing and diffs it" wait_for 60 diffed ||
  sed 's/^/  | /' "$TMP/mon.log"

# browse URL NAME [--screenshot]: the DOM Chromium rendered into NAME.html,
# its log (console messages are the INFO:CONSOLE lines) into NAME.log
browse() {
  local url=$1 name=$2 shot=()
  [ "${3:-}" != --screenshot ] || shot=(--screenshot="$TMP/$name.png" --window-size=1100,1000)
  # each load its own profile: nothing cached from the one before
  timeout 90 chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$TMP/chromium-$name" --enable-logging=stderr --v=0 \
    "${shot[@]}" --dump-dom "$url" >"$TMP/$name.html" 2>"$TMP/$name.log"
}
no_console() { ! grep -q ':CONSOLE' "$1" || { grep ':CONSOLE' "$1" | sed 's/^/  | /'; false; }; }

check "chromium renders the overview" browse "$MURL/" overview --screenshot
check "overview: the servers are in the rendered DOM" \
  bash -c 'grep -qF "$2" "$1" && grep -qF "$3" "$1"' _ "$TMP/overview.html" "$u1" "$u2"
check "overview: one item differs, in the rendered DOM" \
  grep -qE '<a href="/items\?verdict=differs">differs</a></td><td>1</td>' "$TMP/overview.html"
check "overview: the agreement rate of the two servers (3 of 4 items) is in the rendered DOM" \
  grep -qF '<td>4</td><td>3</td><td class="rate">75.0&nbsp;%</td>' "$TMP/overview.html"
check "overview: no console message" no_console "$TMP/overview.log"
check "overview: a screenshot was taken (a PNG)" \
  bash -c 'head -c 8 "$1" | od -An -c | grep -q "P   N   G"' _ "$TMP/overview.png"

check "chromium renders a server's page" browse "$MURL/server/1" server
check "server page: its agreement with the other server (75.0 %) in the rendered DOM" \
  grep -qF '<td class="rate">75.0&nbsp;%</td>' "$TMP/server.html"
check "server page: wt-stamp among the items where it differs" \
  grep -qF "href=\"/item/$(hp "$STAMP")\"" "$TMP/server.html"
check "server page: no console message" no_console "$TMP/server.log"

check "chromium renders the disagreements" browse "$MURL/items?verdict=differs" differs
check "disagreements: wt-stamp in the rendered DOM, as a link to its page" \
  grep -qF "href=\"/item/$(hp "$STAMP")\"" "$TMP/differs.html"
check "disagreements: no console message" no_console "$TMP/differs.log"

check "chromium renders wt-stamp's page" browse "$MURL/item/$(hp "$STAMP")" stamp --screenshot
check "item page: the differing file stamp is in the rendered DOM" \
  grep -qF '<code>stamp</code>' "$TMP/stamp.html"
check "item page: the verdict differs is in the rendered DOM" grep -qF 'differs' "$TMP/stamp.html"
check "item page: no console message" no_console "$TMP/stamp.log"
check "item page: a screenshot was taken" test -s "$TMP/stamp.png"

# diffoscope's report, served apart in a sandbox: rendered as diffoscope
# wrote it, a section per differing file, nothing blocked or run
if command -v diffoscope >/dev/null 2>&1; then
  check "chromium renders wt-stamp's diffoscope report" \
    browse "$MURL/item/$(hp "$STAMP")/diffoscope" diffoscope --screenshot
  check "diffoscope report: the differing files and diffoscope's diff of stamp in the rendered DOM" \
    bash -c 'grep -qF "<code>stamp</code>" "$1" && grep -qF "<code>share/random</code>" "$1" &&
             grep -qF "<table class=\"diff\">" "$1" && grep -qF "class=\"diffchanged\"" "$1"' _ "$TMP/diffoscope.html"
  check "diffoscope report: no console message" no_console "$TMP/diffoscope.log"
elif [ "${CI:-}" = true ]; then
  not_ok "diffoscope is required in CI"
else
  echo "# skip: diffoscope not found"
fi

check "chromium renders the hostile server's item" browse "$MURL/item/$(hp "$A")" evil
check "hostile field: no script ran (the title is not PWNED)" \
  bash -c 'grep -q "<title>" "$1" && ! grep -q "<title>PWNED" "$1"' _ "$TMP/evil.html"
check "hostile field: no element of the server's in the DOM" \
  bash -c '! grep -qE "<div id=\"pwned-element\"|<img |<svg|<script" "$1"' _ "$TMP/evil.html"
check "hostile field: shown as text" grep -qF '&lt;div id="pwned-element"&gt;' "$TMP/evil.html"
check "hostile field: no console message (nothing ran, nothing was blocked)" \
  no_console "$TMP/evil.log"
kill "$MPID"
# CAIRN_SCREENSHOTS=DIR keeps them (docs/monitor-overview.png is one)
[ -z "${CAIRN_SCREENSHOTS:-}" ] || cp "$TMP/overview.png" "$TMP/stamp.png" "$CAIRN_SCREENSHOTS/"
[ -z "${CAIRN_SCREENSHOTS:-}" ] || [ ! -f "$TMP/diffoscope.png" ] || cp "$TMP/diffoscope.png" "$CAIRN_SCREENSHOTS/"
finish
