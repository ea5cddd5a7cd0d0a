# lib/http.c against real servers on 127.0.0.1: a python3 server that
# misbehaves on purpose (tests/integration/http-test-server.py) and nginx
# speaking HTTP/2 over TLS (and h2c where libcurl can reuse it).  Driven by
# $BUILDDIR/tests/integration/http-client-test; about 20 s in all.
. "$SRCDIR/tests/integration/lib.sh"
skip_unless python3 nginx sha256sum

T="$BUILDDIR/tests/integration/http-client-test"
[ -x "$T" ] || { echo "error: $T not built" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- the misbehaving HTTP/1.1 server
python3 "$SRCDIR/tests/integration/http-test-server.py" "$TMP/port" &
pypid=$!
cleanup_hooks+=("kill $pypid")
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
P=$(sed -n 1p "$TMP/port")
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

# 3. stalls: detected within stall timeout + 1 s, mid-body and before headers
out=$("$T" -s 2 "$U/stall/100000" "$U/slow-headers")
echo "$out" | sed 's/^/  /'
for what in stall/100000 slow-headers; do
  line=$(printf '%s\n' "$out" | grep "url=$U/$what ")
  check "$what: outcome stall" test "$(field outcome "$line")" = stall
  check "$what: advice retry-range" test "$(field advice "$line")" = retry-range
  ms=$(field ms "$line")
  check "$what: detected in $ms ms (2 s stall timeout, at most 3000)" test "$ms" -ge 1900 -a "$ms" -le 3000
done

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
check "closed port: fails fast ($(field elapsed_ms "$sum") ms)" test "$(field elapsed_ms "$sum")" -lt 1000
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
check "silent TLS server: given up after the 1 s connect timeout ($ms ms)" test "$ms" -ge 900 -a "$ms" -le 2000

# 11. total timeout is told apart from a stall
out=$("$T" -s 10 -T 2 "$U/stall/100000")
check "total timeout: outcome timeout" grep -q 'outcome=timeout .*advice=next-server' <<<"$out"

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
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $tls))" 2>/dev/null && break
  sleep 0.1
done
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
