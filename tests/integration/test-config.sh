#!/usr/bin/env bash
# --config FILE for the servers: publish and mirror take their options from
# the file, options on the command line come after them, and a bad line is
# refused with the file and the line named.  Then the systemd units'
# ExecStart lines, run as systemd runs them (socket activation, the example
# config files, the key as a credential), serve.
. "$SRCDIR/tests/integration/lib.sh"
skip_unless curl python3

vcache=$VECTORS_DIR/nix/cache-xz
activate=$SRCDIR/tests/integration/socket-activate.py

# start NAME ARGS...: run cairn ARGS in the background until the test ends;
# wait for the port file $TMP/NAME.port (named by ARGS or their config).
start() {
  local name=$1 pid; shift
  "$CAIRN" "$@" >"$TMP/$name.log" 2>&1 &
  pid=$!
  cleanup_hooks+=("kill $pid 2>/dev/null; wait $pid 2>/dev/null")
  eval "${name}_pid=$pid"
  port_from_file "$TMP/$name.port" "$pid" > /dev/null && return 0
  cat "$TMP/$name.log" >&2
  return 1
}
stop() { local pid; eval "pid=\$${1}_pid"; kill "$pid"; wait "$pid"; }
max_age() { curl -sI "http://127.0.0.1:$1/00000000000000000000000000000000.narinfo" |
  tr -d '\r' | sed -n 's/^cache-control: .*max-age=//Ip'; }

# A file with comments, blank and indented lines, spaces around values and
# a CRLF line end: every option in it is applied.
printf '%s\n' "# publish the test vectors' binary cache" "" \
  "  listen   127.0.0.1:0   " "port-file $TMP/pub.port" "	# indented comment" \
  "binary-cache $vcache" "negative-ttl 7" > "$TMP/pub.conf"
printf 'threads 2\r\n' >> "$TMP/pub.conf"
start pub publish --config "$TMP/pub.conf"
port=$(cat "$TMP/pub.port")
check "publish --config: serves on the configured address (port-file from the file)" \
  bash -c "curl -sf http://127.0.0.1:$port/nix-cache-info | grep -qx 'StoreDir: /nix/store'"
check "publish --config: the file's negative-ttl is applied" test "$(max_age "$port")" = 7
stop pub

# The command line comes after the file: it overrides (negative-ttl,
# port-file) wherever --config stands in it.
start pub2 publish --negative-ttl 9 --config "$TMP/pub.conf" --port-file "$TMP/pub2.port"
port=$(cat "$TMP/pub2.port")
check "publish: command-line options override the file's" test "$(max_age "$port")" = 9
stop pub2
check "publish: the file's port-file was overridden, not also written" \
  bash -c "[ \$(cat '$TMP/pub.port') != $port ]"

# bad CMD CONTENT LINE MESSAGE: the file CONTENT is refused with exit 2 and
# "FILE:LINE: MESSAGE"
bad() {
  local cmd=$1 content=$2 line=$3 msg=$4 rc=0 out
  printf '%b' "$content" > "$TMP/bad.conf"
  out=$("$CAIRN" "$cmd" --config "$TMP/bad.conf" 2>&1 >/dev/null) || rc=$?
  if [ "$rc" -eq 2 ] && grep -qF -- "cairn $cmd: error: $TMP/bad.conf:$line: $msg" <<<"$out"; then
    ok "$cmd: bad config line $line refused: $msg"
  else
    not_ok "$cmd: bad config line $line refused: $msg (exit $rc: $out)"
  fi
}
bad publish 'listen 127.0.0.1:0\n# fine\nlisen 127.0.0.1:0\n' 3 "unknown option 'lisen'"
bad publish '\n\nlisten\n' 3 "'listen' needs a value"
bad publish 'listen    \n' 1 "'listen' needs a value"
bad publish 'systemd yes\n' 1 "'systemd' takes no value"
bad publish '--listen 127.0.0.1:0\n' 1 "'--listen': write option names without their dashes"
bad publish 'config /etc/cairn/other.conf\n' 1 "a config file cannot name another"
bad publish 'help\n' 1 "unknown option 'help'"
bad publish 'listen 127.0.0.1:0\nstore /a\x01b\n' 2 "control character"
bad publish "# long\nstore /$(head -c 5000 /dev/zero | tr '\0' a)\n" 2 "line longer than 4096 bytes"
bad publish "$(for _ in $(seq 257); do printf 'listen 127.0.0.1:0\\n'; done)" 257 \
  "more than 256 options"
bad mirror 'upstream http://127.0.0.1:1\ncache\n' 2 "'cache' needs a value"
bad mirror 'key /etc/cairn/publish.sec\n' 1 "unknown option 'key'"

# whole-file errors name the file
fails_with() {
  local what=$1 want_rc=$2 msg=$3 rc=0 out; shift 3
  out=$("$CAIRN" "$@" 2>&1 >/dev/null) || rc=$?
  if [ "$rc" -eq "$want_rc" ] && grep -qF -- "$msg" <<<"$out"; then ok "$what"
  else not_ok "$what (exit $rc: $out)"; fi
}
head -c 70000 /dev/zero | tr '\0' '#' > "$TMP/big.conf"
fails_with "a file over 64 KiB is refused" 1 "'$TMP/big.conf' is larger than 65536 bytes" \
  publish --config "$TMP/big.conf"
printf 'listen 127.0.0.1:0\n\0\n' > "$TMP/nul.conf"
fails_with "a file with a NUL byte is refused" 2 "$TMP/nul.conf: holds a NUL byte" \
  publish --config "$TMP/nul.conf"
fails_with "a missing file is named" 1 "cannot open '$TMP/none.conf'" \
  publish --config "$TMP/none.conf"
fails_with "--config twice is a usage error" 2 "--config may be given once" \
  publish --config "$TMP/pub.conf" --config "$TMP/pub.conf"
fails_with "--config without a file is a usage error" 2 "--config needs a FILE" publish --config
# a value the command refuses is reported by the command, naming the option
printf 'ttl soon\n' > "$TMP/ttl.conf"
fails_with "a bad value from the file is refused" 2 "--ttl: 'soon' is not a duration" \
  publish --config "$TMP/ttl.conf"
rc=0; out=$(timeout 10 "$CAIRN" publish --config="$TMP/ttl.conf" --listen 127.0.0.1:0 2>&1) || rc=$?
check "--config=FILE is read as --config FILE is (exit $rc)" \
  bash -c '[ "$0" = 2 ] && grep -qF -- "--ttl: '"'soon'"' is not a duration" <<<"$1"' "$rc" "$out"
check "-h still prints the usage, which lists --config" \
  bash -c '"$CAIRN" publish -h --config /nonexistent | grep -q -- "--config FILE"'

# The mirror, socket-activated as its unit runs it, with everything else
# (upstream, cache, the systemd flag) from its config file.
start up publish --binary-cache "$vcache" --listen 127.0.0.1:0 --port-file "$TMP/up.port"
up=http://127.0.0.1:$(cat "$TMP/up.port")
printf '%s\n' "upstream $up" "cache $TMP/mcache" "systemd" "health-interval 1s" > "$TMP/mirror.conf"
r=$(python3 "$activate" "$TMP/m.log" 6rpbsa1ix05i5cmar0xh7fw9cyms2476.narinfo \
  "$CAIRN" mirror --config "$TMP/mirror.conf")
check "mirror --systemd from its config: serves the upstream's narinfo, stops cleanly ($r)" \
  bash -c "[ '${r#* }' = 0 ] && cmp -s '$TMP/m.log.body' '$vcache/6rpbsa1ix05i5cmar0xh7fw9cyms2476.narinfo'"
check "mirror cached it in the configured cache" test -s "$TMP/mcache/index.sqlite"

# The units' ExecStart lines, word for word, with the example configs; only
# what must differ in a test is added after them (the store, the cache, a
# local upstream instead of cache.nixos.org).
mkdir -p "$TMP/etc/cairn" "$TMP/cred"
cp "$SRCDIR/contrib/config/publish.conf" "$TMP/etc/cairn/"
sed "s|^upstream .*|upstream $up|" "$SRCDIR/contrib/config/mirror.conf" > "$TMP/etc/cairn/mirror.conf"
check "the example mirror.conf has one upstream line (replaced above)" \
  test "$(grep -c '^upstream' "$SRCDIR/contrib/config/mirror.conf")" = 1
exec_start() {
  sed -n 's/^ExecStart=//p' "$SRCDIR/contrib/systemd/$1.service.in" |
    sed "s|@bindir@/cairn|$CAIRN|; s|@sysconfdir@|$TMP/etc|g"
}
export CREDENTIALS_DIRECTORY=$TMP/cred
eval "set -- $(exec_start cairn-mirror)"
r=$(python3 "$activate" "$TMP/um.log" nix-cache-info "$@" --cache "$TMP/umcache")
check "cairn-mirror.service's ExecStart with the example mirror.conf serves ($r)" \
  bash -c "[ '${r#* }' = 0 ] && grep -qx 'StoreDir: /nix/store' '$TMP/um.log.body'"

if command -v nix-build >/dev/null || [ "${CI:-}" = true ]; then
  . "$SRCDIR/tests/integration/nix-lib.sh"
  nix_lib_init
  top=$(nix_build_closure "$TMP/store" 1 unit)
  "$CAIRN" key generate --format nix --secret "$TMP/cred/signing-key" \
    --public "$TMP/unit.pub" unit-1 >/dev/null
  eval "set -- $(exec_start cairn-publish)"
  h=$(basename "$top" | cut -c1-32)
  r=$(python3 "$activate" "$TMP/up.log" "$h.narinfo" "$@" \
    --store "$TMP/store" --cache "$TMP/pcache")
  check "cairn-publish.service's ExecStart with the example publish.conf serves ($r)" \
    bash -c "[ '${r#* }' = 0 ] && grep -qx 'StorePath: $top' '$TMP/up.log.body'"
  check "... signed with the key from the credentials directory" \
    bash -c "\"\$CAIRN\" narinfo verify --trusted-key '$TMP/unit.pub' < '$TMP/up.log.body' >/dev/null"
else
  echo "skip: nix-build not found, the publish unit is not run"
fi
finish
