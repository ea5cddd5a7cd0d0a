#!/usr/bin/env bash
# Request smuggling (RFC 9112 6.1, 6.3): a request whose framing fields are
# ambiguous or invalid (Content-Length and Transfer-Encoding together, two
# Content-Lengths, lists, non-digits, folded lines, a Transfer-Encoding that
# is not exactly "chunked", Transfer-Encoding on HTTP/1.0) gets 400 and a
# closed connection, and the request hidden after it is never served: not by
# the http layer's test server, not by cairn publish, not by cairn mirror,
# and not forwarded by the mirror to its upstream (httpd-smuggle.py counts
# them in the access logs).
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
skip_unless curl python3 nix
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
smuggle() { timeout 120 python3 "$SRCDIR/tests/integration/httpd-smuggle.py" "$@"; }

if [ -n "${HTTPD_TEST_SERVER:-}" ] && [ -x "$HTTPD_TEST_SERVER" ]; then
  "$HTTPD_TEST_SERVER" --listen 127.0.0.1:0 --port-file "$TMP/layer.port" --dir "$TMP" --threads 2 \
    --access-log "$TMP/layer.access" > "$TMP/layer.out" 2> "$TMP/layer.err" &
  lpid=$!
  cleanup_hooks+=("kill -9 $lpid 2>/dev/null")
  lport=$(port_from_file "$TMP/layer.port" "$lpid") || cat "$TMP/layer.err"
  echo "# the http layer's test server"
  check "the layer: every smuggling case refused" smuggle "$lport" /small "$TMP/layer.access"
  kill "$lpid"
  wait "$lpid" || true
elif [ "${CI:-}" = true ]; then
  not_ok "httpd-test-server not built"
fi

# an empty store is enough: the requests are /nix-cache-info and narinfos
# of hashes it does not have
NIX_CONFIG="experimental-features = nix-command" \
  nix path-info --store "local?root=$TMP/store" --all > /dev/null 2>&1 || true
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" smuggle-test-1
"$CAIRN" publish --store "$TMP/store/nix/store" --key "$TMP/k.sec" --listen 127.0.0.1:0 \
  --threads 2 --port-file "$TMP/pub.port" --access-log "$TMP/pub.access" 2> "$TMP/pub.log" &
ppid=$!
cleanup_hooks+=("kill -9 $ppid 2>/dev/null")
pport=$(port_from_file "$TMP/pub.port" "$ppid") || { cat "$TMP/pub.log"; not_ok "cairn publish starts"; finish; exit 1; }

echo "# cairn publish"
check "publish: every smuggling case refused" smuggle "$pport" /nix-cache-info "$TMP/pub.access"

mirror_start m --upstream "http://127.0.0.1:$pport" --cache "$TMP/mc" --trusted-key "$TMP/k.pub"
echo "# cairn mirror in front of cairn publish"
check "mirror: every smuggling case refused, nothing hidden reaches the upstream" \
  smuggle "$MIRROR_PORT" /nix-cache-info "$TMP/m.mirror-access" "$TMP/pub.access"
mirror_stop
check "publish still runs" kill -0 "$ppid"
kill "$ppid"
wait "$ppid" || true
for e in "$TMP/layer.err" "$TMP/pub.log" "$TMP/m.log"; do
  [ -f "$e" ] || continue
  if grep -Eq 'AddressSanitizer|runtime error:' "$e"; then
    not_ok "sanitizer report in $(basename "$e")"
    sed -n 1,30p "$e"
  fi
done
finish
