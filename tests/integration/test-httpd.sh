#!/usr/bin/env bash
# The http layer (lib/httpd*.c) through tests/integration/httpd-test-server:
# HTTP/1 keep-alive and pipelining, HTTP/2 (prior knowledge and h2c
# upgrade), HEAD, Range, ETag, traversal, limits, slow and idle clients,
# streams that fail, graceful stop, systemd sockets, --user.  127.0.0.1 only;
# every wait is bounded and ends on an event (a port file, a metric, a log
# line, a byte received), never on the clock alone.
. "$SRCDIR/tests/integration/lib.sh"

if [ -z "${HTTPD_TEST_SERVER:-}" ] || [ ! -x "$HTTPD_TEST_SERVER" ]; then
  if [ "${CI:-}" = true ]; then echo "error: httpd-test-server not built (libh2o missing?)" >&2; exit 1; fi
  echo "skip: httpd-test-server not built"; exit 77
fi
skip_unless curl python3 timeout

ulimit -n 8192 2>/dev/null || true
# 2000 idle connections need 2000 fds on each side; fewer if the limit is low
IDLE_N=2000
if [ "$(ulimit -n)" -lt 4400 ]; then
  IDLE_N=$(( ($(ulimit -n) - 200) / 2 ))
  echo "# fd limit $(ulimit -n): $IDLE_N idle connections instead of 2000"
fi
# Under ASan, leaks at exit are expected and not reported: h2o 2.2 keeps
# per-thread allocation caches for the life of the process, and a loop that
# still has idle keep-alive connections at exit is left to the OS.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
DATA=$TMP/data
mkdir -p "$DATA"
head -c 1000000 /dev/urandom > "$DATA/blob.bin"
printf 'hello\n' > "$DATA/hello.txt"
ln -s /etc/passwd "$DATA/link"
truncate -s 256M "$DATA/sparse.bin"
LOG=$TMP/access.log

# start_server OUTFILE ARGS...: start in the background, set PID and PORT
start_server() {
  local out=$1; shift
  rm -f "$out.port"
  "$HTTPD_TEST_SERVER" --port-file "$out.port" "$@" > "$out" 2> "$out.err" &
  PID=$!
  cleanup_hooks+=("kill -9 $PID 2>/dev/null")
  PORT=$(port_from_file "$out.port" "$PID") || { echo "server did not start:"; cat "$out.err"; return 1; }
}

# stop_server: SIGTERM, wait at most 15 s; returns the exit status, 1 if
# it had to be killed (then KILLED=1)
stop_server() {
  KILLED=0
  kill -TERM "$PID" 2>/dev/null || true
  wait_gone "$PID" 15 || { KILLED=1; kill -9 "$PID"; return 1; }
  wait "$PID"
}

# requests ROUTE STATUS: how many ROUTE answers with STATUS the server counted
requests() {
  "${C[@]}" "$U/metrics" |
    awk -v k="cairn_http_requests_total{route=\"$1\",status=\"$2\"}" '$1 == k {n = $2} END {print n + 0}'
}
# fsize FILE: its size in bytes, 0 while it does not exist
fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }
# has_bytes FILE: a client has received part of its response into FILE
has_bytes() { [ "$(fsize "$1")" -gt 0 ]; }

# (the shutdown timeout is far above the 15 s that stop_server waits: a
# drain that waited for it rather than for the last response would fail)
start_server "$TMP/s1.out" --listen 127.0.0.1:0 --dir "$DATA" --threads 2 \
  --access-log "$LOG" --request-timeout 2000 --shutdown-timeout 60000 --send-timeout 5000
U=http://127.0.0.1:$PORT
C=(curl -s --max-time 20)

# --- basics -------------------------------------------------------------------
check "/small is 300 bytes" test "$("${C[@]}" "$U/small" | wc -c)" -eq 300
hdrs=$("${C[@]}" -D - -o /dev/null "$U/small" | tr -d '\r')
check "/small has its content type" grep -qi '^content-type: text/x-nix-narinfo$' <<<"$hdrs"
check "/small has the handler's cache-control" grep -qi '^cache-control: public, max-age=3600$' <<<"$hdrs"
check "unknown path is 404" test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/nope")" = 404
check "POST is 405" test "$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "$U/small")" = 405
check "declining route falls through to 404" \
  test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/cb/x.nar")" = 404
check "inspecting route answers" test "$("${C[@]}" "$U/cb/x.narinfo")" = cb
check "peer address, version, authority (HTTP/1)" test "$("${C[@]}" "$U/peer")" = "127.0.0.1 1 127.0.0.1:$PORT"
check "peer address, version, authority (HTTP/2)" \
  test "$("${C[@]}" --http2-prior-knowledge "$U/peer")" = "127.0.0.1 2 127.0.0.1:$PORT"
check "handler that forgets to answer: 500, not a hang" \
  test "$("${C[@]}" --max-time 5 -o /dev/null -w '%{http_code}' "$U/noanswer")" = 500
check "redirect: 302 with Location" \
  test "$("${C[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' "$U/redirect")" = "302 $U/small"

# keep-alive: the second transfer reuses the connection (0 new connects)
check "keep-alive reuses the connection" \
  test "$("${C[@]}" -o /dev/null -o /dev/null -w '%{num_connects}\n' "$U/small" "$U/small" | tail -1)" = 0

# pipelining: three requests in one write, three answers in order
pipeline=$(python3 - "$PORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
req = b"GET /small HTTP/1.1\r\nHost: x\r\n\r\nGET /file/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" \
      b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
s.sendall(req)
data = b""
while True:
    b = s.recv(65536)
    if not b: break
    data += b
print(data.count(b"HTTP/1.1 200 OK"), int(b"hello\n" in data), len(data))
EOF
)
check "pipelined requests all answered ($pipeline)" test "$(cut -d' ' -f1,2 <<<"$pipeline")" = "3 1"

# --- HTTP/2 ----------------------------------------------------------------------
check "h2c prior knowledge" \
  test "$("${C[@]}" --http2-prior-knowledge -o /dev/null -w '%{http_version} %{size_download}' "$U/small")" = "2 300"
check "h2c via Upgrade" test "$("${C[@]}" --http2 -o /dev/null -w '%{http_version}' "$U/small")" = 2
"${C[@]}" --http2-prior-knowledge -o "$TMP/blob.h2" "$U/file/blob.bin"
check "file over HTTP/2 is intact" cmp -s "$TMP/blob.h2" "$DATA/blob.bin"

# --- HEAD, files, Range, ETag ---------------------------------------------------------
head_small=$("${C[@]}" -I -w '%{size_download}' "$U/small" | tr -d '\r')
check "HEAD /small: length, no body" \
  bash -c 'grep -qi "^content-length: 300$" <<<"$1" && [ "$(tail -1 <<<"$1")" = 0 ]' _ "$head_small"
head_file=$("${C[@]}" -I "$U/file/blob.bin" | tr -d '\r')
check "HEAD file: length, ETag, Last-Modified, Accept-Ranges" \
  bash -c 'grep -qi "^content-length: 1000000$" <<<"$1" && grep -qi "^etag: \"" <<<"$1" &&
           grep -qi "^last-modified: " <<<"$1" && grep -qi "^accept-ranges: bytes$" <<<"$1"' _ "$head_file"
"${C[@]}" -o "$TMP/blob" "$U/file/blob.bin"
check "file body is intact" cmp -s "$TMP/blob" "$DATA/blob.bin"

range=$("${C[@]}" -D "$TMP/range.h" -o "$TMP/range.b" -w '%{http_code}' -H 'Range: bytes=1000-1999' "$U/file/blob.bin")
check "Range: 206" test "$range" = 206
check "Range: Content-Range" grep -qi '^content-range: bytes 1000-1999/1000000' "$TMP/range.h"
check "Range: the right bytes" cmp -s "$TMP/range.b" <(tail -c +1001 "$DATA/blob.bin" | head -c 1000)
"${C[@]}" -o "$TMP/suffix.b" -H 'Range: bytes=-10' "$U/file/blob.bin"
check "suffix Range: the last 10 bytes" cmp -s "$TMP/suffix.b" <(tail -c 10 "$DATA/blob.bin")
check "Range over HTTP/2: 206" test "$("${C[@]}" --http2-prior-knowledge -o /dev/null -w '%{http_code} %{size_download}' \
  -H 'Range: bytes=0-99' "$U/file/blob.bin")" = "206 100"
r416=$("${C[@]}" -D "$TMP/416.h" -o /dev/null -w '%{http_code}' -H 'Range: bytes=2000000-' "$U/file/blob.bin")
check "unsatisfiable Range: 416 + bytes */size" \
  bash -c '[ "$1" = 416 ] && grep -qi "^content-range: bytes \*/1000000" "$2"' _ "$r416" "$TMP/416.h"

etag=$(grep -i '^etag:' <<<"$head_file" | cut -d' ' -f2-)
lastmod=$(grep -i '^last-modified:' <<<"$head_file" | cut -d' ' -f2-)
check "If-None-Match with the ETag: 304" \
  test "$("${C[@]}" -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$U/file/blob.bin")" = 304
check "If-None-Match with another ETag: 200" \
  test "$("${C[@]}" -o /dev/null -w '%{http_code}' -H 'If-None-Match: "other"' "$U/file/blob.bin")" = 200
check "If-Modified-Since the mtime: 304" \
  test "$("${C[@]}" -o /dev/null -w '%{http_code}' -H "If-Modified-Since: $lastmod" "$U/file/blob.bin")" = 304

# large files on HTTP/1 go out from the server's mapping (lib/httpd-send.c)
head -c 5000000 /dev/urandom > "$DATA/big.bin"
# eight connections: both loops serve it (all on one: 1 chance in 128)
for i in 1 2 3 4 5 6 7 8; do "${C[@]}" -o "$TMP/big.$i" "$U/file/big.bin"; done
check "large file (mapped) is intact, eight times" \
  bash -c 'for i in 1 2 3 4 5 6 7 8; do cmp -s "$1.$i" "$2" || exit 1; done' _ "$TMP/big" "$DATA/big.bin"
check "Range on a large file" \
  cmp <("${C[@]}" -H 'Range: bytes=3000000-3999999' "$U/file/big.bin") <(tail -c +3000001 "$DATA/big.bin" | head -c 1000000)
check "a file served again, on either loop, is not mapped again (one mapping)" \
  test "$(grep -c "$DATA/big.bin" /proc/$PID/maps)" -eq 1
check "large file over HTTP/2 (not mapped) is intact" \
  cmp <("${C[@]}" --http2-prior-knowledge "$U/file/big.bin") "$DATA/big.bin"
# 24 MB at 8 MB/s: more than loopback's socket buffers take at once, so
# the server is still sending when the file changes
head -c 24000000 /dev/urandom > "$DATA/big24.bin"
cp "$DATA/big24.bin" "$DATA/gone.bin"
"${C[@]}" --limit-rate 8M -o "$TMP/gone" "$U/file/gone.bin" & cpid=$!
wait_for 15 has_bytes "$TMP/gone"; rm "$DATA/gone.bin"
mid=$(fsize "$TMP/gone")
rc=0; wait $cpid || rc=$?
check "a file deleted mid-response ($mid bytes in) is still sent whole (curl $rc)" \
  bash -c '[ "$1" -lt 24000000 ] && cmp -s "$2" "$3"' _ "$mid" "$TMP/gone" "$DATA/big24.bin"
check "... and unmapped when that response ended" \
  wait_for 10 bash -c '! grep -q "gone.bin" /proc/$1/maps' _ "$PID"
cp "$DATA/big24.bin" "$DATA/shrink.bin"
"${C[@]}" --limit-rate 8M -o "$TMP/shrink" "$U/file/shrink.bin" & cpid=$!
wait_for 15 has_bytes "$TMP/shrink"; truncate -s 1000000 "$DATA/shrink.bin"
rc=0; wait $cpid || rc=$?
check "a file truncated mid-response: the client sees an error (curl $rc)" test "$rc" != 0
check "... the server is still up" test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/small")" = 200

# --- a stream with a file region sent by the loop (cairn_httpd_stream_write_file) --------
verify_fstream='import sys; d = sys.stdin.buffer.read(); h, t = int(sys.argv[1]), int(sys.argv[2])
f = open(sys.argv[3], "rb").read()
pat = lambda a, n: bytes((a + i) % 251 for i in range(n))
sys.exit(not (d == pat(0, h) + f + pat(h, t)))'
metric() { "${C[@]}" "$U/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
fs() { # URL-QUERY FILE [curl args...]: the body is head pattern + FILE + tail pattern
  local q=$1 f=$2; shift 2
  "${C[@]}" "$@" "$U/fstream?$q" | python3 -c "$verify_fstream" 1000 3000 "$f"
}
check "stream + large file (mapped) + stream, Content-Length: intact" \
  fs "name=big.bin&head=1000&tail=3000&length=1" "$DATA/big.bin"
check "  chunked: intact" fs "name=big.bin&head=1000&tail=3000" "$DATA/big.bin"
check "  over HTTP/2 (read, not mapped): intact" \
  fs "name=big.bin&head=1000&tail=3000&length=1" "$DATA/big.bin" --http2-prior-knowledge
check "  a file under 1 MiB (read by the loop): intact" \
  fs "name=blob.bin&head=1000&tail=3000&length=1" "$DATA/blob.bin"
check "  the server reuses its mapping of the file (one mapping)" \
  test "$(grep -c "$DATA/big.bin" /proc/$PID/maps)" -eq 1
for v in "length:&length=1" "chunked:" "h2:&length=1"; do
  name=${v%%:*} extra=${v#*:}
  args=()
  [ "$name" = h2 ] && args=(--http2-prior-knowledge)
  rc=0; "${C[@]}" "${args[@]}" -o /dev/null "$U/fstream?name=big.bin&head=10&extra=1000$extra" || rc=$?
  check "a file region longer than the file ($name): an error for the client (curl $rc)" test "$rc" != 0
done
before=$(metric httpd_test_producer_canceled_total)
rc=0; "${C[@]}" --limit-rate 4M --max-time 1 -o /dev/null "$U/fstream?name=big24.bin&length=1" || rc=$?
check "a client leaving during a file region (curl $rc)" test "$rc" = 28
wait_for 10 eval '[ "$(metric httpd_test_producer_canceled_total)" -gt "$before" ]' || true
check "  its producer is told (canceled $before -> $(metric httpd_test_producer_canceled_total))" \
  test "$(metric httpd_test_producer_canceled_total)" -gt "$before"
check "  and the server goes on" test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/small")" = 200

# --- traversal ---------------------------------------------------------------------------
for p in '/file/../blob.bin' '/file/..%2fblob.bin' '/file/%2e%2e/etc/passwd' '/file/.%2E/x' \
         '/file/a%2fb' '/file/a%5cb' '/file/hello.txt%00' '/file/%00' '/file//etc/passwd' \
         '/file/./hello.txt' '/file/link' '/file/' '/file/%zz'; do
  code=$("${C[@]}" --path-as-is -o /dev/null -w '%{http_code}' "$U$p")
  check "traversal '$p' refused ($code)" bash -c '[ "$1" = 400 ] || [ "$1" = 404 ]' _ "$code"
  code=$("${C[@]}" --http2-prior-knowledge --path-as-is -o /dev/null -w '%{http_code}' "$U$p")
  check "traversal '$p' over HTTP/2 refused ($code)" bash -c '[ "$1" = 400 ] || [ "$1" = 404 ]' _ "$code"
done

# --- limits ----------------------------------------------------------------------------------
long=$(head -c 9000 /dev/zero | tr '\0' a)
check "request line over 8 KiB: 414" test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/$long")" = 414
big=$(head -c 17000 /dev/zero | tr '\0' b)
check "headers over 16 KiB: 431" test "$("${C[@]}" -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$U/small")" = 431
check "headers over 16 KiB over HTTP/2: 431" test "$("${C[@]}" --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
  -H "X-Big: $big" "$U/small")" = 431
check "server still serves after the limits" test "$("${C[@]}" "$U/small" | wc -c)" -eq 300

# slowloris: headers one byte per 0.3 s must be cut off by the 2 s request
# timeout (after about 7 bytes; all 108 would take 32 s), while a normal
# client keeps being served meanwhile
cat > "$TMP/slowloris.py" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n")
open(sys.argv[2], "w").write("sent\n")
sent = 0
closed = False
try:
    for c in b"X-Slow: " + b"a" * 100:
        s.sendall(bytes([c]))
        sent += 1
        time.sleep(0.3)
        s.setblocking(False)
        try:
            if s.recv(1024) == b"":
                closed = True; break
        except BlockingIOError:
            pass
        finally:
            s.setblocking(True)
except (BrokenPipeError, ConnectionResetError):
    closed = True
print("closed" if closed else "open", sent)
EOF
timeout 60 python3 "$TMP/slowloris.py" "$PORT" "$TMP/slowloris.sent" > "$TMP/slowloris.out" &
slpid=$!
wait_file "$TMP/slowloris.sent"
check "normal client served during slowloris" test "$("${C[@]}" "$U/small" | wc -c)" -eq 300
wait $slpid || true
slow=$(cat "$TMP/slowloris.out")
check "slowloris cut off by the timeout, not served to the end ($slow bytes)" \
  bash -c 'set -- $1; [ "$1" = closed ] && [ "$2" -lt 100 ]' _ "$slow"

# 2000 idle connections: the server keeps serving, its memory stays bounded,
# and the idle timeout closes them
idle=$(python3 - "$PORT" "$PID" "$U" "$IDLE_N" <<'EOF'
import os, select, socket, subprocess, sys, time
port, pid, url, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
before = rss()
def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))
fds0 = fds()
socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
# until the server has accepted them all (bounded: the first ones may
# already be gone to the idle timeout on a slow machine)
t0 = time.time()
while fds() < fds0 + n and time.time() - t0 < 5:
    time.sleep(0.05)
accepted = fds() - fds0
r = subprocess.run(["curl", "-s", "--max-time", "10", url + "/small"], capture_output=True)
served = len(r.stdout) == 300
grown = rss() - before
# until the 2 s idle timeout has closed every one (bounded: 30 s)
p = select.poll()
byfd = {}
for s in socks:
    s.setblocking(False)
    p.register(s, select.POLLIN)
    byfd[s.fileno()] = s
while byfd and time.time() - t0 < 30:
    for fd, _ in p.poll(1000):
        try:
            if byfd[fd].recv(1) != b"": continue
        except BlockingIOError:
            continue
        except ConnectionResetError:
            pass
        p.unregister(fd)
        del byfd[fd]
closed = n - len(byfd)
print(int(served), grown, closed, accepted)
EOF
)
read -r idle_served idle_kib idle_closed idle_accepted <<<"$idle"
check "$IDLE_N idle connections: still serving" test "$idle_served" = 1
check "$IDLE_N idle connections ($idle_accepted accepted at once): under 40 MiB more RSS (${idle_kib} KiB)" test "$idle_kib" -lt 40960
check "$IDLE_N idle connections: closed by the idle timeout ($idle_closed)" test "$idle_closed" -eq "$IDLE_N"

# --- streams --------------------------------------------------------------------------------------
verify_stream='import sys; d = sys.stdin.buffer.read(); n = int(sys.argv[1])
sys.exit(not (len(d) == n and all(d[i] == i % 251 for i in range(0, n, 997))))'
U=$U V=$verify_stream
export U V
check "stream (chunked) delivers every byte" \
  bash -c 'curl -s --max-time 20 "$U/stream?size=3000000&chunk=10000" | python3 -c "$V" 3000000'
check "stream (Content-Length) delivers every byte" \
  bash -c 'curl -s --max-time 20 "$U/stream?size=3000000&length=1" | python3 -c "$V" 3000000'
check "stream over HTTP/2 delivers every byte" \
  bash -c 'curl -s --max-time 20 --http2-prior-knowledge "$U/stream?size=3000000" | python3 -c "$V" 3000000'
check "HEAD on a stream: headers only" \
  test "$("${C[@]}" -I -o /dev/null -w '%{http_code} %{size_download}' "$U/stream?size=1000&length=1")" = "200 0"

for v in "chunked:" "length:&length=1" "h2:" ; do
  name=${v%%:*} extra=${v#*:}
  args=()
  [ "$name" = h2 ] && args=(--http2-prior-knowledge)
  rc=0; "${C[@]}" "${args[@]}" -o "$TMP/failed" "$U/stream?size=2000000&fail_at=700000$extra" || rc=$?
  check "failing stream ($name) is an error for the client (curl $rc)" \
    bash -c 'case $1 in 18|56|92) exit 0;; *) exit 1;; esac' _ "$rc"
  check "failing stream ($name) is short" test "$(stat -c %s "$TMP/failed")" -lt 2000000
done
rc=0; "${C[@]}" -o /dev/null "$U/stream?size=1000&fail_at=0&length=1" || rc=$?
check "stream failing before its first byte is an error (curl $rc)" bash -c '[ "$1" != 0 ]' _ "$rc"

# A producer that writes more than the Content-Length it announced must not
# put the extra bytes on a keep-alive connection, where the client would read
# them as the start of the next response.
overrun='import socket, sys
def once(chunk):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(b"GET /stream?size=3000&declared=1000&chunk=%d HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n" % chunk)
    d = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            d += b
    except socket.timeout:
        pass
    head, _, body = d.partition(b"\r\n\r\n")
    return b"Content-Length: 1000" in head and len(body) <= 1000
sys.exit(0 if all(once(c) for c in (700, 3000, 700, 3000)) else 1)'
check "stream writing past its Content-Length sends no byte beyond it" python3 -c "$overrun" "$PORT"

# deferred responses: the head is chosen by the producer thread, later
check "deferred stream: status, header and every byte" \
  bash -c 'h=$(curl -s --max-time 20 -D - -o "$2" "$1/stream?size=300000&length=1&defer_ms=200") &&
    echo "$h" | grep -q "^HTTP/1.1 200" && echo "$h" | grep -qi "^x-deferred: yes" &&
    echo "$h" | grep -qi "^content-length: 300000" && python3 -c "$3" 300000 < "$2"' _ "$U" "$TMP/deferred" "$V"
check "deferred stream over HTTP/2: every byte" \
  bash -c 'curl -s --max-time 20 --http2-prior-knowledge "$U/stream?size=300000&defer_ms=100" | python3 -c "$V" 300000'
check "deferred stream: the producer's status (404)" \
  test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/stream?size=10&length=1&defer_ms=50&status=404" || true)" = 404
check "deferred HEAD: headers only" \
  test "$("${C[@]}" -I -o /dev/null -w '%{http_code} %{size_download}' "$U/stream?size=1000&length=1&defer_ms=50")" = "200 0"
check "deferred stream ended without a head: 502" \
  test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/stream?size=10&defer_ms=50&nohead=1" || true)" = 502
c0=$("${C[@]}" "$U/metrics" | awk '/^httpd_test_producer_canceled_total/{print $2}')
curl -s --http2-prior-knowledge --max-time 0.5 -o /dev/null "$U/stream?size=1000&defer_ms=1500" || true
# the producer learns it when it answers, 1.5 s after the request
wait_for 10 eval '[ "$(metric httpd_test_producer_canceled_total)" -gt "${c0:-0}" ]' || true
c1=$("${C[@]}" "$U/metrics" | awk '/^httpd_test_producer_canceled_total/{print $2}')
check "deferred stream whose HTTP/2 client left: the producer is told ($c0 -> $c1)" \
  test "${c1:-0}" -gt "${c0:-0}"

# a client that goes away mid-stream cancels the producer (HTTP/1 and HTTP/2)
canceled() { "${C[@]}" "$U/metrics" | awk '/^httpd_test_producer_canceled_total /{print $2}'; }
c0=$(canceled)
"${C[@]}" --max-time 1 -o /dev/null "$U/stream?size=100000000&chunk=10000&delay_ms=20" || true
"${C[@]}" --http2-prior-knowledge --max-time 1 -o /dev/null "$U/stream?size=100000000&chunk=10000&delay_ms=20" || true
wait_for 10 eval '[ "$(canceled)" -ge $((c0 + 2)) ]' || true
check "client gone: both producers canceled ($c0 -> $(canceled))" test "$(canceled)" -ge $((c0 + 2))

# backpressure: a client that does not read must not make the server buffer
# the whole 512 MiB stream
bp=$(python3 - "$PORT" "$PID" <<'EOF'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
before = rss()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"GET /stream?size=536870912&chunk=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(2)
grown = rss() - before
got = 0
t0 = time.time()
while got < 64 << 20 and time.time() - t0 < 20:
    b = s.recv(1 << 20)
    if not b: break
    got += len(b)
print(grown, int(got >= 64 << 20))
EOF
)
read -r bp_kib bp_flow <<<"$bp"
check "stalled reader: producer blocked, RSS grew ${bp_kib} KiB (< 16 MiB)" test "$bp_kib" -lt 16384
check "stalled reader: stream resumes when the client reads" test "$bp_flow" = 1

# slow read: a client that stops reading a file or a stream is disconnected
# after the 5 s send timeout instead of holding the connection forever; the
# same over HTTP/2 (h2c upgrade, raw frames): a client that opens its
# flow-control windows and then stops reading the connection is cut off; one
# that simply never opens the stream's window (flow control, its own
# choice) keeps its connection.  All five at once, each on its own path: a
# client that is to be cut reads nothing until the server has logged its
# request (the server logs a request when it ends it), then reads what is
# left, to the end of the connection; the one to be left alone started
# first, so its timer has fired when the others have been cut.
truncate -s 256M "$DATA/sparse-h2.bin" "$DATA/sparse-nw.bin"
cat > "$TMP/slowclient.py" <<'EOF'
import os, socket, struct, sys, time
port, path, size, mode, log, ready = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                                      sys.argv[4], sys.argv[5], sys.argv[6])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect(("127.0.0.1", port))
def frame(t, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload
if mode == "h1":
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
else:
    inc = struct.pack(">I", 0x7fffffff - 65535)
    windows = frame(8, 0, 0, inc) + frame(8, 0, 1, inc) if mode == "read-nothing" else b""
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
              b"Upgrade: h2c\r\nHTTP2-Settings: \r\n\r\n"
              b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + windows)
s.settimeout(20)
s.recv(1, socket.MSG_PEEK)  # the response has begun
open(ready, "w").close()
# wait (bounded) for the event: the server ended the request, or (no-window)
# the go file appears
want = ('"GET ' + path + ' ').encode()
deadline = time.time() + 30
while time.time() < deadline:
    if mode == "no-window":
        if os.path.exists(ready + ".go"): break
    elif want in open(log, "rb").read():
        break
    time.sleep(0.05)
s.settimeout(20 if mode != "no-window" else 2)
got, eof = 0, False
try:
    while True:
        b = s.recv(1 << 20)
        if not b:
            eof = True; break
        got += len(b)
except ConnectionResetError:
    eof = True
except socket.timeout:
    pass
if mode == "h1":
    print(int(eof and 0 < got < size))
elif mode == "read-nothing":
    print("cut" if eof and 0 < got < size else "not-cut %d" % got)
else:
    print("open" if not eof and got > 0 else "closed %d" % got)
EOF
slow() { local out=$1; shift; timeout 90 python3 "$TMP/slowclient.py" "$PORT" "$@" "$LOG" "$out.ready" > "$out"; }
slow "$TMP/nw" /file/sparse-nw.bin 268435456 no-window & nwpid=$!
wait_for 20 test -e "$TMP/nw.ready" || true
spids=()
slow "$TMP/sr-file" /file/sparse.bin 268435456 h1 & spids+=($!)
slow "$TMP/sr-stream" '/stream?size=536870912&chunk=65536&c=1' 536870912 h1 & spids+=($!)
slow "$TMP/h2-file" /file/sparse-h2.bin 268435456 read-nothing & spids+=($!)
slow "$TMP/h2-stream" '/stream?size=536870912&chunk=65536&c=2' 536870912 read-nothing & spids+=($!)
for p in "${spids[@]}"; do wait "$p" || true; done
touch "$TMP/nw.ready.go"
wait "$nwpid" || true
check "slow reader of a file is disconnected" test "$(cat "$TMP/sr-file")" = 1
check "slow reader of a stream is disconnected" test "$(cat "$TMP/sr-stream")" = 1
check "HTTP/2 client not reading a file is cut off" test "$(cat "$TMP/h2-file")" = cut
check "HTTP/2 client not reading a stream is cut off" test "$(cat "$TMP/h2-stream")" = cut
check "HTTP/2 stream held by the client's flow control is left alone" test "$(cat "$TMP/nw")" = open

# --- metrics and access log ---------------------------------------------------------------------
metrics=$("${C[@]}" "$U/metrics")
check "metrics count /small 200s" grep -Eq '^cairn_http_requests_total\{route="small",status="200"\} [0-9]+$' <<<"$metrics"
check "metrics count 414s" grep -Eq '^cairn_http_requests_total\{route="none",status="414"\} [1-9]' <<<"$metrics"
check "metrics count file bytes" grep -Eq '^cairn_http_response_bytes_total\{route="file"\} [1-9][0-9]{6,}$' <<<"$metrics"
check "access log in Combined Log Format" \
  grep -Eq '^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} [+-][0-9]{4}\] "GET /small HTTP/1\.1" 200 300 "-" "curl/' "$LOG"
check "access log has HTTP/2 requests" grep -q '"GET /small HTTP/2" 200 300' "$LOG"

# --- graceful stop ---------------------------------------------------------------------------------
# a 2 s response in flight when SIGTERM arrives still completes; new
# connections are refused; the server exits 0 as soon as that response is
# done (not at its 60 s shutdown deadline)
"${C[@]}" -o "$TMP/inflight" "$U/stream?size=200000&chunk=10000&delay_ms=100&length=1" &
cpid=$!
wait_for 15 has_bytes "$TMP/inflight"
kill -TERM "$PID"
wait_for 10 eval '! port_open $PORT' || true
nrc=0; curl -s --max-time 3 -o /dev/null "$U/small" || nrc=$?
check "SIGTERM: new connections refused during the drain (curl $nrc)" test "$nrc" = 7
check "SIGTERM: the response was still in flight then ($(fsize "$TMP/inflight") bytes)" \
  test "$(fsize "$TMP/inflight")" -lt 200000
stop_rc=0; stop_server || stop_rc=$?
crc=0; wait $cpid || crc=$?
check "SIGTERM: in-flight response completed (curl $crc)" \
  bash -c '[ "$1" = 0 ] && [ "$(stat -c %s "$2")" = 200000 ]' _ "$crc" "$TMP/inflight"
check "SIGTERM: server exited 0 by itself once it was done ($stop_rc, killed: $KILLED)" \
  test "$stop_rc" = 0 -a "$KILLED" = 0
check "SIGTERM: port closed afterwards" bash -c '! curl -s --max-time 2 -o /dev/null "$1/small"' _ "$U"

# a deferred response does not hold its loop: one loop, one answer 3 s
# late; 20 requests on new connections are each answered while the
# deferred answer has not begun (held, not one would be)
start_server "$TMP/s4.out" --listen 127.0.0.1:0 --dir "$DATA" --threads 1
U=http://127.0.0.1:$PORT
oneloop=$(timeout 60 python3 - "$PORT" <<'EOF'
import select, socket, sys
port = int(sys.argv[1])
def answer(s):
    d = b""
    while True:
        b = s.recv(65536)
        if not b: return d
        d += b
def ok(d, n):
    head, _, body = d.partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.1 200") and len(body) == n
a = socket.create_connection(("127.0.0.1", port), timeout=30)
a.sendall(b"GET /stream?size=1000&length=1&defer_ms=3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
n = 0
for _ in range(20):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    d = answer(s)
    s.close()
    if ok(d, 300) and not select.select([a], [], [], 0)[0]:
        n += 1
print(n, int(ok(answer(a), 1000)))
EOF
)
read -r n late <<<"$oneloop"
check "one loop: 20 requests answered while a deferred one waits ($n)" test "$n" = 20
check "one loop: the deferred response arrives afterwards ($late)" test "$late" = 1
stop_server || true

# the shutdown deadline bounds a response that would take too long
start_server "$TMP/s2.out" --listen 127.0.0.1:0 --dir "$DATA" --threads 1 --shutdown-timeout 1000
U=http://127.0.0.1:$PORT
# (the response would take 50 s; stop_server waits 15 at most)
rc=0
"${C[@]}" --max-time 60 -o "$TMP/deadline" "$U/stream?size=1000000&chunk=1000&delay_ms=50&length=1" & cpid=$!
wait_for 15 has_bytes "$TMP/deadline"
stop_server || true
wait $cpid || rc=$?
check "shutdown deadline: the server left by itself, not killed ($KILLED)" test "$KILLED" = 0
check "shutdown deadline: the cut response is an error (curl $rc, $(fsize "$TMP/deadline") bytes)" \
  test "$rc" != 0 -a "$(fsize "$TMP/deadline")" -lt 1000000

# --- listeners ----------------------------------------------------------------------------------------
start_server "$TMP/s3.out" --listen 127.0.0.1:0 --dir "$DATA" --threads 2 --reuseport
check "SO_REUSEPORT mode serves" test "$("${C[@]}" "http://127.0.0.1:$PORT/small" | wc -c)" -eq 300
stop_server || true

if python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
  start_server "$TMP/s4.out" --listen '[::1]:0' --dir "$DATA"
  check "IPv6 listener serves" test "$("${C[@]}" -g "http://[::1]:$PORT/small" | wc -c)" -eq 300
  stop_server || true
else
  echo "# no IPv6 loopback here; IPv6 listener not tested"
fi

# systemd socket activation: the listening socket arrives as fd 3
sd=$(python3 "$SRCDIR/tests/integration/socket-activate.py" "$TMP/s5" small \
  "$HTTPD_TEST_SERVER" --systemd --dir "$DATA" --threads 2)
check "systemd socket activation serves and stops cleanly ($sd)" test "$sd" = "300 0"

# --user: privileges dropped after binding (only as root)
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
  chmod 755 "$TMP" "$DATA"
  chmod 644 "$DATA/hello.txt"
  start_server "$TMP/s6.out" --listen 127.0.0.1:0 --dir "$DATA" --user nobody
  uid=$(awk '/^Uid:/{print $2, $3, $4, $5}' "/proc/$PID/status")
  check "--user nobody: all uids are nobody's ($uid)" test "$uid" = "$(id -u nobody) $(id -u nobody) $(id -u nobody) $(id -u nobody)"
  check "--user nobody: still serves files" test "$("${C[@]}" "http://127.0.0.1:$PORT/file/hello.txt")" = hello
  stop_server || true
else
  echo "# not root: --user not tested"
fi

# --- out of file descriptors ---------------------------------------------------------------------
# 2000 connections held open by one client against a server started with a
# soft fd limit of 1024 (systemd's default).  The server raises it to the
# hard limit; where the hard limit is 1024 too, accept fails with EMFILE and
# leaves the connection queued, so the loops must stop watching the listener
# for a while rather than spin on it, and take the queued clients once
# connections close.  Over a 3 s hold: the server's CPU time (/proc/PID/stat),
# and how its threads left the CPU (/proc/PID/task/*/status).  On a loaded
# machine a spinning loop may get little CPU, but it never blocks: it is only
# ever preempted (nonvoluntary switches), while a loop that waits blocks in
# epoll_wait (voluntary ones), whatever the load.
cat > "$TMP/fdhold.py" <<'PY'
import glob, os, socket, subprocess, sys, time
port, pid, url, n, close_n, probe = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                     int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def switches():
    v = nv = 0
    for p in glob.glob(f"/proc/{pid}/task/*/status"):
        for l in open(p):
            k, _, n = l.partition(":")
            if k == "voluntary_ctxt_switches":
                v += int(n)
            elif k == "nonvoluntary_ctxt_switches":
                nv += int(n)
    return v, nv
def get(t):
    r = subprocess.run(["curl", "-s", "--max-time", str(t), url + "/small"], capture_output=True)
    return int(len(r.stdout) == 300)
socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
time.sleep(0.5)
c0, (v0, nv0) = cpu(), switches()
time.sleep(3)
(v1, nv1) = switches()
used, v, nv = cpu() - c0, v1 - v0, nv1 - nv0
during = get(10) if probe else -1
for s in socks[:close_n]:
    s.close()
after = get(10)
for s in socks[close_n:]:
    s.close()
print("%.2f %d %d %d %d" % (used, v, nv, during, after))
PY
# limited SOFT HARD ARGS...: the test server under these fd limits (same pid)
limited() { local soft=$1 hard=$2; shift 2
  HTTPD_TEST_SERVER="$TMP/limited-$soft-$hard" start_server "$@"; }
for l in 1024:4096 1024:1024; do
  printf '#!/bin/sh\nexec prlimit --nofile=%s -- "%s" "$@"\n' "$l" "$HTTPD_TEST_SERVER" \
    > "$TMP/limited-${l%:*}-${l#*:}"
  chmod +x "$TMP/limited-${l%:*}-${l#*:}"
done
if [ "$(ulimit -n)" -ge 4400 ]; then
  limited 1024 4096 "$TMP/s7.out" --listen 127.0.0.1:0 --dir "$DATA" --threads 2 --request-timeout 60000
  U=http://127.0.0.1:$PORT
  soft=$(awk '/^Max open files/{print $4}' "/proc/$PID/limits")
  check "fd soft limit 1024, hard 4096: raised to the hard limit at start ($soft)" test "$soft" = 4096
  read -r cpu vol nonvol during after <<<"$(timeout 120 python3 "$TMP/fdhold.py" "$PORT" "$PID" "$U" 2000 2000 1)"
  check "  2000 connections held: another client is served meanwhile ($during)" test "$during" = 1
  paused=$(metric cairn_http_accept_fd_exhausted_total)
  check "  accept never paused ($paused)" test "$paused" = 0
  stop_server || true

  limited 1024 1024 "$TMP/s8.out" --listen 127.0.0.1:0 --dir "$DATA" --threads 2 --request-timeout 60000
  U=http://127.0.0.1:$PORT
  read -r cpu vol nonvol during after <<<"$(timeout 120 python3 "$TMP/fdhold.py" "$PORT" "$PID" "$U" 2000 1500 0)"
  check "fd limit 1024:1024, 2000 connections held: no busy loop (${cpu} s of CPU in 3 s, want < 0.6)" \
    python3 -c 'import sys; sys.exit(not float(sys.argv[1]) < 0.6)' "$cpu"
  check "  the loops block between wakeups ($vol voluntary, $nonvol nonvoluntary switches)" \
    test "$vol" -gt "$nonvol"
  check "  a new client is served once 1500 of them close ($after)" test "$after" = 1
  paused=$(metric cairn_http_accept_fd_exhausted_total)
  check "  /metrics counts the accept pauses ($paused)" test "${paused:-0}" -gt 0
  check "  and the server still serves" test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/small")" = 200
  stop_server || true
else
  echo "# fd limit $(ulimit -n): the fd exhaustion checks need 4400"
  [ "${CI:-}" != true ] || not_ok "fd limit too low for the fd exhaustion checks"
fi

# sanitizer builds: any report from any server run is a failure
for e in "$TMP"/*.err "$TMP/s5"; do
  [ -f "$e" ] || continue
  if grep -Eq 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:|Assertion' "$e"; then
    not_ok "sanitizer or assertion report in $(basename "$e")"; sed -n 1,30p "$e"
  fi
done

finish
