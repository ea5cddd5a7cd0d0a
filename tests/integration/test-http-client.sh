# lib/http.c against real servers on 127.0.0.1: two python3 servers that
# misbehave on purpose (tests/integration/http-test-server.py, and
# hostile-server.py for silent, trickling, resetting and truncating servers)
# and nginx speaking HTTP/2 over TLS (and h2c where libcurl can reuse it).
# Driven by $BUILDDIR/tests/integration/http-client-test; about 40 s in all.
. "$SRCDIR/tests/integration/lib.sh"
skip_unless python3 nginx sha256sum

T="$BUILDDIR/tests/integration/http-client-test"
[ -x "$T" ] || { echo "error: $T not built" >&2; exit 1; }

# ---- the misbehaving HTTP/1.1 server
python3 "$SRCDIR/tests/integration/http-test-server.py" "$TMP/port" &
pypid=$!
cleanup_hooks+=("kill $pypid")
P=$(port_from_file "$TMP/port" "$pypid")
SILENT=$(sed -n 2p "$TMP/port")
U="http://127.0.0.1:$P"

# field NAME LINE...: the value of NAME=... in the first line that has it
field() { local n=$1; shift; printf '%s\n' "$@" | grep -o "$n=[^ ]*" | head -n1 | cut -d= -f2; }
stats() { python3 -c "import urllib.request; print(urllib.request.urlopen('$U/stats').read().decode().split('=')[1].strip())"; }
reset() { python3 -c "import urllib.request; urllib.request.urlopen('$U/reset').read()"; }
sha_of() { python3 -c "
import random, hashlib, sys
b = random.Random(42).randbytes(1 << 20); n = int(sys.argv[1]); s = int(sys.argv[2])
print(hashlib.sha256(((b * (n // len(b) + 1))[:n])[s:]).hexdigest())" "$@"; }

# 1. keep-alive: 500 concurrent GETs share at most 6 connections
reset
out=$("$T" -k 6 -n 500 "$U/data/1000")
sum=$(printf '%s\n' "$out" | grep '^summary')
conns=$(stats)
echo "  $sum; server saw $conns connections"
check "500 concurrent GETs all succeed" test "$(field ok "$sum")" = 500
check "500 GETs used at most 6 connections (server count)" test "$conns" -le 6
check "client counted the same connections" test "$(field new_connections "$sum")" = "$conns"
check "every body hashes right" test "$(printf '%s\n' "$out" | grep -c "sha256=$(sha_of 1000 0) ")" = 500

# 2. requests added from on_done reuse the one keep-alive connection
reset
out=$("$T" -q 50 "$U/data/1000")
check "50 chained requests (added from callbacks) all succeed" test "$(field ok "$(printf '%s\n' "$out" | grep '^summary')")" = 50
check "50 chained requests used one connection" test "$(stats)" = 1

# 3. stalls: detected mid-body and before headers, while the server is
# still silent (it resumes after 20 s: a client that missed the stall
# would end ok or short), and not before the 2 s stall timeout (a lower
# bound, which load cannot break)
out=$("$T" -s 2 "$U/stall/100000" "$U/slow-headers")
echo "$out" | sed 's/^/  /'
for what in stall/100000 slow-headers; do
  line=$(printf '%s\n' "$out" | grep "url=$U/$what ")
  check "$what: outcome stall" test "$(field outcome "$line")" = stall
  check "$what: advice retry-range" test "$(field advice "$line")" = retry-range
  ms=$(field ms "$line")
  check "$what: not before the 2 s stall timeout ($ms ms)" test "$ms" -ge 1900
done
check "stall/100000: stalled after the 50000 bytes sent" \
  test "$(field bytes "$(printf '%s\n' "$out" | grep "url=$U/stall/100000 ")")" = 50000

# 4. a short body is an error, with Content-Length or chunked
out=$("$T" "$U/short/100000" "$U/chunked-cut/100000")
for what in short/100000 chunked-cut/100000; do
  line=$(printf '%s\n' "$out" | grep "url=$U/$what ")
  check "$what: outcome short, not ok" test "$(field outcome "$line")" = short
  check "$what: advice retry-range" test "$(field advice "$line")" = retry-range
done
check "short body message names the URL and the sizes" \
  grep -q "GET $U/short/100000: body ended after 50000 of 100000 bytes" <<<"$out"

# 5. Range: resume a cut body where it stopped, and a plain Range request
out=$("$T" -R -m 10000000 "$U/flaky/3000000")
echo "$out" | sed 's/^/  /' | cut -c1-160
line=$(printf '%s\n' "$out" | grep '^result')
check "resumed download completes" test "$(field outcome "$line")" = ok
check "resume asked from byte 1500000" grep -q '^retry outcome=short bytes=1500000 from=1500000' <<<"$out"
check "resumed status is 206" test "$(field status "$line")" = 206
check "first part + resumed part hash like the whole file" test "$(field sha256 "$line")" = "$(sha_of 3000000 0)"
out=$("$T" -v -r 1000 -m 10000000 "$U/data/3000000")
check "Range 1000-: 206 with Content-Range 1000-2999999/3000000" grep -q 'status=206 .*range=1000-2999999/3000000' <<<"$out"
check "Range 1000-: the tail hashes right" test "$(field sha256 "$(grep '^result' <<<"$out")")" = "$(sha_of 3000000 1000)"

# 6. the body limit, from Content-Length and while streaming
out=$("$T" -m 5000000 "$U/huge-cl" "$U/huge")
line=$(printf '%s\n' "$out" | grep "url=$U/huge-cl ")
check "announced 100 MiB over a 5 MB limit: too-large before any byte" \
  test "$(field outcome "$line")/$(field bytes "$line")" = too-large/0
line=$(printf '%s\n' "$out" | grep "url=$U/huge ")
check "chunked body past 5 MB: too-large" test "$(field outcome "$line")" = too-large
check "chunked body past 5 MB: no more than the limit delivered" test "$(field bytes "$line")" -le 5000000
check "default limit (1 MiB, narinfo) holds too" grep -q 'outcome=too-large' <<<"$("$T" "$U/data/2000000")"

# 7. statuses, headers, redirects, HEAD
out=$("$T" -v "$U/status/404" "$U/status/500" "$U/status/403")
check "404: status, next-server, max-age parsed" \
  grep -q 'status=404 version=11 length=12 .*max_age=60' <<<"$out"
check "404 advice next-server" grep -q 'outcome=status status=404 .*advice=next-server' <<<"$out"
check "500 advice retry-range" grep -q 'outcome=status status=500 .*advice=retry-range' <<<"$out"
check "403 advice next-server" grep -q 'outcome=status status=403 .*advice=next-server' <<<"$out"
out=$("$T" "$U/redirect/3" "$U/redirect/9")
check "3 redirects followed" grep -q "outcome=ok status=200 bytes=100 .*url=$U/redirect/3 " <<<"$out"
check "9 redirects refused (limit 5)" grep -q "url=$U/redirect/9 msg=.*more than 5 redirects" <<<"$out"
out=$("$T" -v -H "$U/data/100000")
check "HEAD: Content-Length seen, no body" grep -q 'outcome=ok status=200 bytes=0 ' <<<"$out"
check "HEAD: headers parsed" grep -q 'length=100000 .*accept_ranges=1' <<<"$out"
check "a scheme other than http(s) is refused" grep -q 'add-failed msg=.*only http:// and https://' <<<"$("$T" file:///etc/passwd)"

# 8. nix-cache-info through a server object
out=$("$T" -S -I "$U/" /nix-cache-info)
check "nix-cache-info parsed" grep -q '^info store_dir=/nix/store want_mass_query=1 priority=30$' <<<"$out"

# 9. a closed port fails fast and marks the server down
closed=$(free_port)
out=$("$T" -S -c 1000 "http://127.0.0.1:$closed" nix-cache-info a.narinfo b.narinfo)
echo "$out" | sed 's/^/  /' | cut -c1-160
sum=$(grep '^summary' <<<"$out")
check "closed port: outcome connect, next-server" \
  test "$(grep -c 'outcome=connect .*advice=next-server' <<<"$out")" = 3
check "closed port: server marked down" test "$(field down "$sum")" = 1
check "closed port: refused, not timed out (the 1 s connect timeout)" \
  test "$(grep -c "^result outcome=connect .*cannot connect: .*Couldn't connect to server" <<<"$out")/$(grep -ci 'timeout\|timed out' <<<"$out")" = 3/0
out=$("$T" -S -q 3 "http://127.0.0.1:$closed" a.narinfo 2>&1)
check "closed port: the next request to the down server is refused at once" \
  grep -q "http-client-test: http: http://127.0.0.1:$closed is down: .*cannot connect" <<<"$out"
check "closed port: only one request reached the network" grep -q '^summary requests=1 ' <<<"$out"

# 10. a server that accepts but never completes a TLS handshake: the
# connect timeout (1 s), not a stall, and the server is marked down
out=$("$T" -S -c 1000 -s 10 "https://127.0.0.1:$SILENT" a.narinfo b.narinfo)
sum=$(grep '^summary' <<<"$out")
check "silent TLS server: outcome connect, next-server" \
  test "$(grep -c 'outcome=connect .*advice=next-server.*msg=.*cannot connect:.*time' <<<"$out")" = 2
check "silent TLS server: marked down" test "$(field down "$sum")" = 1
ms=$(field elapsed_ms "$sum")
check "silent TLS server: the connect timeout, not the 10 s stall: none stalled, not before 1 s ($ms ms)" \
  test "$(grep -c 'outcome=stall' <<<"$out")" = 0 -a "$ms" -ge 900

# 11. total timeout is told apart from a stall
out=$("$T" -s 10 -T 2 "$U/stall/100000")
check "total timeout: outcome timeout" grep -q 'outcome=timeout .*advice=next-server' <<<"$out"

# ---- a hostile server (hostile-server.py): silent and trickling servers,
# resets, bad ranges, truncation and delayed retries.  Each case counts what
# the client reported and what the server logged; times are safety bounds
# far above what a correct client takes (the stall timeout is 20 s in all
# of them, so a client that waits for it fails).
python3 "$SRCDIR/tests/integration/hostile-server.py" --port-file "$TMP/hport" \
  --log "$TMP/hlog" --hold 40 --lifetime 300 &
hpid=$!
cleanup_hooks+=("kill $hpid")
H="http://127.0.0.1:$(port_from_file "$TMP/hport" "$hpid")"
# hreqs PREFIX: requests the hostile server read whose path starts with PREFIX
hreqs() { grep -c "^req .* path=$1" "$TMP/hlog" || true; }

# 12. silent before the status line: SILENT after the first-byte timeout
# (1 s), not the 20 s stall; next-server; the server is marked down
out=$("$T" -S -s 20 -F 1000 "$H/silent" a.narinfo b.narinfo)
echo "$out" | sed 's/^/  /' | cut -c1-200
sum=$(grep '^summary' <<<"$out")
check "silent server: both requests end silent, next-server" \
  test "$(grep -c 'outcome=silent .*advice=next-server' <<<"$out")" = 2
check "silent server: the message says no response within 1 s" \
  grep -q "GET $H/silent/a.narinfo: no response within 1 s (no status line" <<<"$out"
check "silent server: marked down" test "$(field down "$sum")" = 1
check "silent server: health says silent, 2 silent transfers" \
  grep -q '^health state=silent requests=2 ok=0 unreachable=0 silent=2 slow=0 stalls=0 ' <<<"$out"
check "silent server: ended by the first-byte timeout, not the 20 s stall (no stall)" \
  test "$(grep -c 'outcome=stall' <<<"$out")" = 0

# 13. once it is down, nobody waits on it: with one connection allowed, the
# first request meets the silence; the two queued behind it end at once,
# and the requests their callbacks add are refused: the server read one
out=$("$T" -S -k 1 -q 2 -s 20 -F 1000 "$H/silent" q1 q2 q3 2>&1)
echo "$out" | sed 's/^/  /' | cut -c1-200
check "silent server, queued requests: one silent, two ended as its server is down" \
  test "$(grep -c 'outcome=silent ' <<<"$out")/$(grep -c 'outcome=connect .*server is down: .*no response within 1 s' <<<"$out")" = 1/2
check "silent server, later requests refused at once (3 refusals)" \
  test "$(grep -c "http-client-test: http: $H/silent is down: " <<<"$out")" = 3
check "silent server, queued requests: the server read exactly one of them" \
  test "$(hreqs /silent/q)" = 1

# 14. silent after the headers, and in the middle of the body: the stall
# timeout (2 s here) as before, retry-range, the server stays up
out=$("$T" -S -s 2 "$H" silent-headers/bytes/1000 silent-body/bytes/100000)
line=$(grep "url=$H/silent-headers/" <<<"$out")
check "silent after the headers: stall, retry-range" \
  test "$(field outcome "$line")/$(field advice "$line")" = stall/retry-range
line=$(grep "url=$H/silent-body/" <<<"$out")
check "silent mid-body: stall after 50000 bytes, retry-range" \
  test "$(field outcome "$line")/$(field bytes "$line")/$(field advice "$line")" = stall/50000/retry-range
check "silent after the headers: nothing received for 2 s" \
  grep -q "silent-headers/bytes/1000: stalled, nothing received for 2 s" <<<"$out"
check "stalls: the server stays up" grep -q '^health state=up .* stalls=2 ' <<<"$out"

# 15. a trickling body (a byte every 100 ms): SLOW once the 1 s window is
# under 1000 bytes/s, saying so; the server stays up and counts it slow
out=$("$T" -S -s 20 -L 1000 -W 1 "$H" trickle-body/bytes/300)
echo "$out" | sed 's/^/  /' | cut -c1-220
line=$(grep '^result' <<<"$out")
check "trickling body: slow, next-server" \
  test "$(field outcome "$line")/$(field advice "$line")" = slow/next-server
check "trickling body: the message says what happened" \
  grep -Eq "trickle-body/bytes/300: too slow: [0-9]+ bytes in the last 1 s, below the minimum of 1000 bytes/s" <<<"$line"
check "trickling body: a few bytes delivered, not the whole body" test "$(field bytes "$line")" -lt 300
check "trickling body: server up, one slow transfer" \
  grep -q '^health state=up .* slow=1 .*slow_fn=1 ' <<<"$out"
out=$("$T" -S -Z -s 20 -L 1000 -W 1 "$H" trickle-body/bytes/300)
check "trickling body with slow_marks_down: the server is marked down as slow" \
  grep -q '^health state=slow .* slow=1 ' <<<"$out"

# 16. trickling headers: a byte every 100 ms is SLOW (the status line came
# in time); a byte a second is SILENT (no status line within 2 s)
out=$("$T" -S -s 20 -L 1000 -W 1 -F 2000 "$H" trickle-headers/bytes/100 trickle-headers-1000/bytes/100)
echo "$out" | sed 's/^/  /' | cut -c1-220
line=$(grep "url=$H/trickle-headers/" <<<"$out")
check "trickling headers (100 ms a byte): slow, before any body byte" \
  test "$(field outcome "$line")/$(field bytes "$line")" = slow/0
check "trickling headers: the message counts header bytes" \
  grep -Eq "too slow: [0-9]+ bytes in the last 1 s, below the minimum of 1000 bytes/s" <<<"$line"
line=$(grep "url=$H/trickle-headers-1000/" <<<"$out")
check "trickling headers (1 s a byte): silent, next-server" \
  test "$(field outcome "$line")/$(field advice "$line")" = silent/next-server
check "trickling headers: both ended by their own rule, not the 20 s stall (no stall)" \
  test "$(grep -c 'outcome=stall' <<<"$out")" = 0

# 17. the first-byte timeout per request: 3 s for one request covers a
# server that answers after 1.5 s, where the client's 1 s does not
out=$("$T" -s 20 -F 1000 -f 3000 "$H/delay-1500/bytes/100")
check "first-byte timeout per request: the longer one waits for the answer" \
  grep -q "^result outcome=ok status=200 bytes=100 " <<<"$out"
out=$("$T" -s 20 -F 1000 "$H/delay-1500/bytes/100")
check "first-byte timeout: the client's 1 s does not" grep -q '^result outcome=silent ' <<<"$out"

# 18. a reset in the middle of the body: network, retry-range, the bytes
# before it delivered
line=$("$T" -m 1000000 "$H/reset-body/bytes/100000" | grep '^result')
check "reset mid-body: network error after 50000 bytes, retry-range" \
  test "$(field outcome "$line")/$(field bytes "$line")/$(field advice "$line")" = network/50000/retry-range

# 19. a Range answered with 200, and a 206 with the wrong Content-Range:
# reported as they are (the caller's on_headers refuses both here)
out=$("$T" -v -r 1000 -m 1000000 "$H/range200/bytes/100000" "$H/badrange/bytes/100000")
check "Range answered with 200: status 200, no Content-Range" \
  grep -q '^headers status=200 .*range=-1--1/-1 ' <<<"$out"
check "206 with a wrong Content-Range: reported as sent (0-99999)" \
  grep -q '^headers status=206 .*range=0-99999/100000 ' <<<"$out"
check "both stopped by the caller: aborted, give-up" \
  test "$(grep -c '^result outcome=aborted .*advice=give-up' <<<"$out")" = 2

# 20. truncated twice, then whole: resumed with Range after a delay (700
# ms) each time; the server saw each retry at least 700 ms after the
# previous request, and the whole hashes right
out=$("$T" -R -D 700 -m 1000000 "$H/truncate-2/bytes/100000")
echo "$out" | sed 's/^/  /' | cut -c1-160
check "truncated twice: two retries, then ok" \
  test "$(grep -c '^retry outcome=short' <<<"$out")/$(field outcome "$(grep '^result' <<<"$out")")" = 2/ok
check "truncated twice: the whole hashes right" \
  test "$(field sha256 "$(grep '^result' <<<"$out")")" = "$(sha_of 100000 0)"
check "truncated twice: the server read 3 requests" test "$(hreqs /truncate-2/bytes/100000)" = 3
gaps=$(grep "^req .* path=/truncate-2/bytes/100000 " "$TMP/hlog" | sed 's/.* t=\([0-9.]*\) .*/\1/' |
  awk 'NR > 1 { printf "%d ", $1 - prev } { prev = $1 }')
echo "  retries arrived $gaps ms after the previous request"
check "delay_ms: each retry reached the server at least 700 ms after the previous request" \
  test "$(printf '%s\n' $gaps | awk '$1 >= 699' | wc -l)" = 2

# ---- nginx: HTTP/2 multiplexing over TLS (ALPN), h2c where usable
NG="$TMP/nginx"
mkdir -p "$NG/www" "$NG/tmp"
head -c 2000 /dev/urandom >"$NG/www/small"
# A test-only certificate for 127.0.0.1 (valid until 2126), so that no
# openssl binary is needed: http-test-cert.pem, http-test-key.pem.
cp "$SRCDIR/tests/integration/http-test-cert.pem" "$NG/cert.pem"
cp "$SRCDIR/tests/integration/http-test-key.pem" "$NG/key.pem"
tls=$(free_port)
h2c=$(free_port)
cat >"$NG/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log;
events { worker_connections 1024; }
http {
  log_format conn '\$connection \$server_protocol \$status';
  access_log $NG/conn.log conn;
  client_body_temp_path $NG/tmp/body;
  proxy_temp_path $NG/tmp/proxy;
  fastcgi_temp_path $NG/tmp/fastcgi;
  uwsgi_temp_path $NG/tmp/uwsgi;
  scgi_temp_path $NG/tmp/scgi;
  root $NG/www;
  server { listen 127.0.0.1:$h2c http2; }
  server {
    listen 127.0.0.1:$tls ssl http2;
    ssl_certificate $NG/cert.pem;
    ssl_certificate_key $NG/key.pem;
  }
}
EOF
nginx -e "$NG/error.log" -p "$NG" -c "$NG/nginx.conf" &
ngpid=$!
cleanup_hooks+=("kill $ngpid")
wait_port "$tls" || cat "$NG/error.log" >&2
want=$(sha256sum "$NG/www/small" | cut -d' ' -f1)

: >"$NG/conn.log"
out=$("$T" -A "$NG/cert.pem" -k 1 -n 500 "https://127.0.0.1:$tls/small")
sum=$(grep '^summary' <<<"$out")
echo "  https, 1 connection allowed: $sum"
check "h2 over TLS: 500 GETs succeed" test "$(field ok "$sum")" = 500
check "h2 over TLS: one connection" test "$(field new_connections "$sum")" = 1
check "h2 over TLS: nginx saw one connection, all HTTP/2.0" \
  test "$(awk '{print $1, $2}' "$NG/conn.log" | sort -u)" = "$(awk 'NR==1{print $1, "HTTP/2.0"}' "$NG/conn.log")"
check "h2 over TLS: bodies hash right" test "$(grep -c "sha256=$want " <<<"$out")" = 500
: >"$NG/conn.log"
out=$("$T" -A "$NG/cert.pem" -k 4 -n 500 "https://127.0.0.1:$tls/small")
sum=$(grep '^summary' <<<"$out")
check "h2 over TLS, 4 allowed: 500 GETs on at most 4 connections" \
  test "$(field ok "$sum")" = 500 -a "$(awk '{print $1}' "$NG/conn.log" | sort -u | wc -l)" -le 4
out=$("$T" -n 2 "https://127.0.0.1:$tls/small")
check "untrusted certificate: connect error naming it" grep -q 'outcome=connect .*SSL certificate problem' <<<"$out"

: >"$NG/conn.log"
if out=$("$T" -S -2 -k 1 -n 500 "http://127.0.0.1:$h2c" small 2>&1); then
  sum=$(grep '^summary' <<<"$out")
  echo "  h2c: $sum"
  check "h2c prior knowledge: 500 GETs on one connection" \
    test "$(field ok "$sum")/$(field new_connections "$sum")" = 500/1
  check "h2c prior knowledge: nginx saw HTTP/2.0 only" \
    test "$(awk '{print $2}' "$NG/conn.log" | sort -u)" = HTTP/2.0
else
  echo "  $out"
  check "h2c prior knowledge refused on a libcurl that cannot reuse it" \
    grep -q 'cannot reuse h2c' <<<"$out"
fi

finish
