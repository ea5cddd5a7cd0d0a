#!/usr/bin/env bash
# cairn mirror in front of an nginx-served Nix cache: the real Nix client
# substitutes a closure through it, a second client is served from the
# cache alone, bytes that fail verification are never cached, untrusted
# narinfos are not served, Range on cached nars and on a tampered one not
# cached yet, /metrics; what it tells its operator (the log, /, /health);
# a restart with its upstream down: Nix is still served from the cache.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless nginx curl

store=$TMP/store1
top=$(nix_build_closure "$store" 4 m 100000)
nix_gen_key mirror-test-1 "$TMP/key"
nix_gen_key other-key "$TMP/other"
nix_copy_to_file "$store" "$top" "$TMP/cache" xz "$TMP/key.sec"
n_paths=$(nix_closure "$store" "$top" | wc -l)

nginx_serve up "$TMP/cache"
up=$NGINX_PORT
mirror_start m1 --upstream "http://127.0.0.1:$up" --cache "$TMP/mc1" --trusted-key "$TMP/key.pub"
url=http://127.0.0.1:$MIRROR_PORT
check "the log says where it listens, in front of what, with which cache and keys" \
  wait_log "^cairn mirror: listening on 127\.0\.0\.1:$MIRROR_PORT; upstream http://127\.0\.0\.1:$up; cache $TMP/mc1: 0 nars, 0 B \(no --max-size\); 1 trusted key\$"

check "nix-cache-info passed through unchanged, but for the mirror's CairnNarinfos: 1 (its batch route)" \
  cmp <(curl -fs "$url/nix-cache-info") <(cat "$TMP/cache/nix-cache-info"; echo "CairnNarinfos: 1")

check "nix copy --from the mirror substitutes the closure" \
  nix_copy_from "$url" "$TMP/store2" "$top" "$(cat "$TMP/key.pub")"
check "the copied closure is valid and hashes right" \
  nix_has_paths "$TMP/store2" $(nix_closure "$store" "$top")
nars1=$(count_requests up /nar/)
check "the first run fetched each nar upstream once ($nars1 of $n_paths)" [ "$nars1" -eq "$n_paths" ]
check "verified nars are in the cache" [ "$(ls "$TMP/mc1/data" | wc -l)" -eq "$n_paths" ]

check "a second client run substitutes the closure too" \
  nix_copy_from "$url" "$TMP/store3" "$top" "$(cat "$TMP/key.pub")"
check "... with no nar request upstream" [ "$(count_requests up /nar/)" -eq "$nars1" ]
check "hits are counted" [ "$(metric cairn_mirror_nar_hits_total)" -ge "$n_paths" ]
types=$(curl -fs "$url/metrics" | sed -n 's/^# TYPE //p')
check "/metrics types its gauges as gauges" \
  grep -qx 'cairn_mirror_upstreams_up gauge' <<<"$types"
check "... and its counters as counters, every one named *_total" \
  bash -c '! grep -v " gauge$" <<<"$1" | grep -qv "_total counter$"' _ "$types"
check "... and no gauge named *_total" bash -c '! grep -q "_total gauge$" <<<"$1"' _ "$types"

nar=$(nar_urls "$TMP/cache" | head -1)
check "a cached nar is byte-identical" cmp <(curl -fs "$url/$nar") "$TMP/cache/$nar"
check "Range on a cached nar" \
  cmp <(curl -fs -r 5-104 "$url/$nar") <(tail -c +6 "$TMP/cache/$nar" | head -c 100)
check "an unknown narinfo is 404" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/00000000000000000000000000000000.narinfo")" = 404 ]
check "a malformed narinfo name is 404" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/zzz.narinfo")" = 404 ]

# health: CODE FIRST_LINE LINE: /health answers CODE, its body starts with
# FIRST_LINE and has LINE
health() {
  local code
  code=$(curl -s -o "$TMP/health" -w '%{http_code}' "$url/health")
  [ "$code" = "$1" ] && [ "$(head -1 "$TMP/health")" = "$2" ] && grep -qxE -- "$3" "$TMP/health" ||
    { echo "/health: $code"; cat "$TMP/health"; return 1; }
}
check "/health: 200 ok, the upstream up" health 200 ok "upstream http://127.0.0.1:$up up"
check "/health: ... and the cache" health 200 ok "cache $n_paths nars [0-9]+ bytes, nix-cache-info held"
curl -fs "$url/" > "$TMP/page.html" || true
check "/ shows the upstream and its health" grep -q "^http://127.0.0.1:$up up\$" "$TMP/page.html"
check "/ shows the cache" grep -q "<p>$n_paths nars, " "$TMP/page.html"
check "/ shows the trusted key" grep -qxF "$(cat "$TMP/key.pub")" "$TMP/page.html"
# The page's nix command, as printed for Nix 2.8 without nix.conf changes
# (no NIX_CONFIG, a fresh HOME); the store path for its placeholder, and
# the store it copies into set by nix.conf's `store` (as root, /nix/store).
cmd=$(sed -n 's|^\(nix --extra-experimental-features nix-command copy .*\) /nix/store/\.\.\.$|\1|p' \
  "$TMP/page.html" | sed "s/&#39;/'/g; s/&quot;/\"/g; s/&lt;/</g; s/&gt;/>/g; s/&amp;/\&/g")
check "/ prints a nix copy command ($cmd)" [ -n "$cmd" ]
rc=0
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$TMP/page-home" NIX_CONFIG="store = $TMP/store4" \
  bash -c "$cmd $top" > "$TMP/page-copy.log" 2>&1 || rc=$?
check "... which works as printed with Nix $(nix --version | awk '{print $NF}') (exit $rc)" [ "$rc" = 0 ]
check "... the closure is valid" nix_has_paths "$TMP/store4" $(nix_closure "$store" "$top")

# The mirror stops, its upstream goes, the mirror starts again: Nix is
# served from what it holds (a fresh Nix, whose own narinfo cache cannot
# help), with the nix-cache-info it kept and its own Priority.  (--ttl 0:
# every narinfo it holds has expired, so all of them are served stale.)
mirror_stop
nginx_stop up
mirror_start m1b --upstream "http://127.0.0.1:$up" --cache "$TMP/mc1" --trusted-key "$TMP/key.pub" \
  --priority 30 --ttl 0 --health-interval 200ms --max-backoff 400ms
url=http://127.0.0.1:$MIRROR_PORT
code=$(curl -s -o "$TMP/info" -w '%{http_code}' "$url/nix-cache-info")
check "upstream down since the restart: /nix-cache-info is 200 ($code)" [ "$code" = 200 ]
check "... the upstream's, with the Priority given" bash -c \
  "grep -qx 'StoreDir: /nix/store' '$TMP/info' && [ \$(grep -c '^Priority:' '$TMP/info') = 1 ] &&
   grep -qx 'Priority: 30' '$TMP/info'"
fresh_copy() {
  HOME=$TMP/home-$1 XDG_CACHE_HOME=$TMP/xdg-$1 nix_copy_from "$url" "$TMP/$1" "$top" "$(cat "$TMP/key.pub")"
}
check "nix copy through the restarted mirror, its upstream down" fresh_copy store5
check "... the closure is valid" nix_has_paths "$TMP/store5" $(nix_closure "$store" "$top")
check "... its narinfos served stale" [ "$(metric cairn_mirror_stale_served_total)" -ge "$n_paths" ]
check "... saying so" bash -c "curl -fsi '$url/$(basename "$top" | cut -c1-32).narinfo' | grep -qi '^Warning: 110'"
check "the log says the upstream is down, and why" \
  wait_log "^cairn mirror: warning: upstream http://127\.0\.0\.1:$up is down: .*connect"
check "/health: 200 ok, the upstream down but the cache can serve" \
  health 200 ok "upstream http://127.0.0.1:$up down: .*connect.*"
nginx_serve up "$TMP/cache" "$up"
check "the log says the upstream is back" wait_log "^cairn mirror: upstream http://127\.0\.0\.1:$up is up again\$"
check "... one line each" [ "$(grep -c 'is down:\|is up again' "$MIRROR_LOG")" = 2 ]
mirror_stop

# Nothing cached and the upstream never answered: nothing to serve.
mirror_start m0 --upstream "http://127.0.0.1:$(free_port)" --cache "$TMP/mc0" --health-interval 200ms
url=http://127.0.0.1:$MIRROR_PORT
check "empty cache, upstream down: /nix-cache-info is 502" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/nix-cache-info")" = 502 ]
check "... /health is 503, saying why" health 503 unavailable "upstream http://127.0.0.1:[0-9]+ down: .*"
check "... and the cache" health 503 unavailable "cache 0 nars 0 bytes, nix-cache-info none"
mirror_stop

# Tampered upstream: same narinfos, one nar with a changed byte.
cp -r "$TMP/cache" "$TMP/bad"
python3 - "$TMP/bad/$nar" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0xff
open(p, 'wb').write(b)
PY
nginx_serve bad "$TMP/bad"
mirror_start m2 --upstream "http://127.0.0.1:$NGINX_PORT" --cache "$TMP/mc2"
url=http://127.0.0.1:$MIRROR_PORT
hash=$(basename "$(grep -l "URL: $nar" "$TMP/cache"/*.narinfo)" .narinfo)
curl -fs "$url/$hash.narinfo" > /dev/null
check "tampered nar: the client sees a failure" bash -c "! curl -fs '$url/$nar' -o '$TMP/got1'"
check "tampered nar: not cached" [ "$(ls "$TMP/mc2/data" | wc -l)" -eq 0 ]
check "tampered nar: the next request fails too" bash -c "! curl -fs '$url/$nar' -o '$TMP/got2'"
check "tampered nar: ... and went upstream again" [ "$(count_requests bad "/$nar")" -eq 2 ]
check "tampered nar: counted" [ "$(metric cairn_mirror_verify_failures_total)" -eq 2 ]
# a range that ends before the flipped byte: its bytes are right, but the
# object fails verification, so the 206 must not complete either
check "tampered nar, Range on it cold: no complete 206" \
  bash -c "! curl -fs -r 0-99 '$url/$nar' -o '$TMP/part1'"
check "... not cached" [ "$(ls "$TMP/mc2/data" | wc -l)" -eq 0 ]
mirror_stop

# A trusted key that did not sign: narinfos are neither served nor cached.
# A narinfo whose Sig names its key with bytes a terminal may take for an
# escape sequence (C1 CSI, raw and as UTF-8) comes last.
evil=11111111111111111111111111111111
sed -e "s|^StorePath: /nix/store/[a-z0-9]*|StorePath: /nix/store/$evil|" \
  -e "s|^Sig: [^:]*:|Sig: ev$(printf '\302\233')2J$(printf '\233')il:|" \
  "$TMP/cache/$hash.narinfo" > "$TMP/cache/$evil.narinfo"
mirror_start m3 --upstream "http://127.0.0.1:$up" --cache "$TMP/mc3" --trusted-key "$TMP/other.pub" \
  --log-interval 1500ms
url=http://127.0.0.1:$MIRROR_PORT
check "untrusted narinfo: not served" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/$hash.narinfo")" = 404 ]
check "untrusted narinfo: not cached" \
  [ "$(sqlite3 "$TMP/mc3/index.sqlite" 'SELECT count(*) FROM narinfo' 2>/dev/null || echo 0)" = 0 ]
check "the log says which narinfo was refused, from where, and why" \
  wait_log "^cairn mirror: warning: refused the narinfo of $hash from http://127\.0\.0\.1:$up: signed by untrusted key 'mirror-test-1'\$"
# five more refusals at once: counted, told in one line when the interval is over
curl -s $(cd "$TMP/cache" && ls *.narinfo | grep -v "^$hash\|^$evil" | sed "s|^|$url/|") \
  "$url/$evil.narinfo" > /dev/null
check "... at most one line per interval: the rest counted into the next" \
  wait_log "^cairn mirror: warning: refused $n_paths more narinfos for their signatures; the last: $evil from http://127\.0\.0\.1:$up: signed by untrusted key 'ev\\\\xc2\\\\x9b2J\\\\x9bil'\$"
check "... so two lines for the five" [ "$(grep -c 'refused' "$MIRROR_LOG")" = 2 ]
check "... and no control byte from the network reaches the log" \
  bash -c "! LC_ALL=C grep -q '[^ -~]' '$MIRROR_LOG'"
mirror_stop

# A miss does not hold its event loop: one loop, an upstream that takes 6 s
# over one narinfo; 20 hits (here a cached 404) are each answered while
# the miss's answer has not begun (held, not one would be).  The upstream sends its headers at once and its
# body 6 s later: one silent for 6 s before its status line would be a
# silent server (the HTTP client's first-byte timeout, 5 s).
cat > "$TMP/slow-up.py" <<'PY'
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/nix-cache-info":
            body = b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
            self.send_response(200)
        else:
            body = b"404 not found\n"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/" + "1" * 32):
            open(sys.argv[1], "w").close()  # the miss has reached us
            time.sleep(6)
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$TMP/slow-up.py" "$TMP/slow-up.seen" > "$TMP/slow-up.port" &
slowup=$!
cleanup_hooks+=("kill $slowup 2>/dev/null")
mirror_start m4 --upstream "http://127.0.0.1:$(port_from_file "$TMP/slow-up.port" "$slowup")" \
  --cache "$TMP/mc4" --threads 1
fast=22222222222222222222222222222222
curl -s -o /dev/null "http://127.0.0.1:$MIRROR_PORT/$fast.narinfo"
oneloop=$(timeout 60 python3 - "$MIRROR_PORT" "$fast" "$TMP/slow-up.seen" <<'PY'
import os, select, socket, sys, time
port, fast, seen = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def answer(s):
    d = b""
    while True:
        b = s.recv(65536)
        if not b: return d
        d += b
def get(path):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return s
miss = get("/" + "1" * 32 + ".narinfo")
t0 = time.time()
while not os.path.exists(seen) and time.time() - t0 < 20:
    time.sleep(0.05)
n = 0
for _ in range(20):
    d = answer(get("/" + fast + ".narinfo"))
    if d.startswith(b"HTTP/1.1 404") and not select.select([miss], [], [], 0)[0]:
        n += 1
print(n, answer(miss).split(b" ")[1].decode())
PY
)
read -r n late <<<"$oneloop"
check "one loop: 20 hits answered while a miss waits 6 s upstream ($n)" [ "$n" = 20 ]
check "one loop: the miss is answered afterwards ($late)" [ "$late" = 404 ]
mirror_stop

finish
