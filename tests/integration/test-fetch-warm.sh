#!/usr/bin/env bash
# Connections opened early (issue 17, point 4): against a server with the
# batch narinfo route, the narinfo phase needs one or two connections;
# cairn fetch opens the ones its first downloads will use while it asks
# the narinfos, so that no NAR request pays a handshake after the answers
# came.  An nginx in front of cairn publish logs, per request, how many
# requests its connection had carried ($connection_requests): every NAR
# request must come on a connection that carried one before.  A linkem
# between cairn and nginx makes connections cost round trips.  Counts,
# never times.  (The early connections are HEADs of the cache root.)
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless nginx python3
publish_require
nix_lib_init
LINKEM=$BUILDDIR/tests/integration/linkem

pstore_init "$TMP/src"
TOP=$(pstore_build "$TMP/src" 6 w 50000)
check "built a closure of 6 paths" test -n "$TOP"
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" warm-test-1
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --compression none

# nginx as a reverse proxy, logging each request's connection and its count
NPORT=$(free_port)
mkdir -p "$TMP/ng.tmp"
cat > "$TMP/ng.conf" <<NGX
daemon off;
$([ "$(id -u)" != 0 ] || echo "user root root;")
worker_processes 1;
pid $TMP/ng.pid;
error_log $TMP/ng.error warn;
events { worker_connections 256; }
http {
  log_format conns '\$connection \$connection_requests "\$request" \$status';
  access_log $TMP/ng.access conns;
  client_body_temp_path $TMP/ng.tmp/body;
  proxy_temp_path $TMP/ng.tmp/proxy;
  fastcgi_temp_path $TMP/ng.tmp/fastcgi;
  uwsgi_temp_path $TMP/ng.tmp/uwsgi;
  scgi_temp_path $TMP/ng.tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$NPORT;
    location / { proxy_pass http://127.0.0.1:$PUBLISH_PORT; proxy_http_version 1.1;
                 proxy_set_header Connection ""; proxy_buffering off; }
  }
}
NGX
nginx -e "$TMP/ng.error" -p "$TMP/ng.tmp" -c "$TMP/ng.conf" &
NGPID=$!
cleanup_hooks+=("kill $NGPID 2>/dev/null")
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$NPORT" 2>/dev/null
"$LINKEM" --to "127.0.0.1:$NPORT" --port-file "$TMP/l.port" --delay-ms 20 2>"$TMP/l.log" &
LPID=$!
cleanup_hooks+=("kill $LPID 2>/dev/null")
LPORT=$(port_from_file "$TMP/l.port" "$LPID")

rc=0
"$CAIRN" fetch --no-cache --trusted-key "$TMP/k.pub" --jobs 6 --closure \
  --store-dir "$NIX_STORE_DIR" --nar-dir "$TMP/r" --from "http://127.0.0.1:$LPORT" "$TOP" \
  >/dev/null 2>"$TMP/e" || rc=$?
check "fetch --closure exits 0 ($rc)" test "$rc" = 0
[ "$rc" = 0 ] || sed 's/^/    | /' "$TMP/e"
check "the 6 NARs are in" test "$(find "$TMP/r" -name '*.nar' | wc -l)" = 6
sed 's/^/    | /' "$TMP/ng.access"
nars=$(grep -c '"GET /nar/' "$TMP/ng.access" || true)
fresh=$(grep '"GET /nar/' "$TMP/ng.access" | awk '$2 == 1' | wc -l)
check "6 NAR requests ($nars), the narinfos in one batch" \
  test "$nars" = 6 -a "$(grep -c '"GET /narinfos' "$TMP/ng.access" || true)" -ge 1
check "no NAR request opened its connection ($fresh did)" test "$fresh" = 0
finish
