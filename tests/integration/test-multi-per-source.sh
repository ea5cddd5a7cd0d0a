#!/usr/bin/env bash
# Range requests in flight per source (issue 17, point 4): a large item
# from two mirrors at once, with --multi-per-source 2, has two requests
# open at a time to each mirror (two connections each carrying part of the
# file, counted by linkem); with the default (1, which measured best:
# bench/ranges.sh) one connection per mirror carries its ranges.  The
# links are shared by their connections (linkem --shared 1), as real ones
# are.  Counts, never times.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
nix_lib_init
skip_unless nginx
LINKEM=$BUILDDIR/tests/integration/linkem
SIZE=12000000

S1=$TMP/s1
TOP=$(nix_build_closure "$S1" 1 big "$SIZE")
check "built one path of $SIZE random bytes" test -n "$TOP"
nix_gen_key test-1 "$TMP/k1"
nix_copy_to_file "$S1" "$TOP" "$TMP/www/cache" none "$TMP/k1.sec"
nginx_start ng "$TMP/www"
up=127.0.0.1:$NGINX_PORT

# run NAME ARGS...: two fresh linked mirrors, one fetch from both
run() {
  local name=$1 pid p rc=0; shift
  for m in a b; do
    "$LINKEM" --to "$up" --port-file "$TMP/$name-$m.port" --delay-ms 5 --rate 100M --shared 1 \
      2>"$TMP/$name-$m.log" &
    pid=$!
    cleanup_hooks+=("kill $pid 2>/dev/null")
    eval "pid_$m=$pid"
    p=$(port_from_file "$TMP/$name-$m.port" "$pid")
    eval "port_$m=$p"
  done
  # shellcheck disable=SC2154
  "$CAIRN" fetch --no-cache --trusted-key "$TMP/k1.pub" --store "$TMP/r-$name" --multi-min 1M \
    --from "http://127.0.0.1:$port_a/cache" --from "http://127.0.0.1:$port_b/cache" "$@" "$TOP" \
    >/dev/null 2>"$TMP/e-$name" || rc=$?
  check "$name: fetch from two mirrors exits 0 ($rc)" test "$rc" = 0
  [ "$rc" = 0 ] || sed 's/^/    | /' "$TMP/e-$name"
  check "$name: the item is in the store and verifies" nix_has_paths "$TMP/r-$name" "$TOP"
  # cairn has exited: its connections are closing; count once the links'
  # logs stop growing between two polls
  SETTLE=$name
  wait_for 10 settled || true
  # shellcheck disable=SC2154
  kill "$pid_a" "$pid_b"; wait "$pid_a" "$pid_b" 2>/dev/null || true
}
settled() {
  local n; n=$(cat "$TMP/$SETTLE"-?.log | grep -c closed)
  [ "$n" = "$(cat "$TMP/$SETTLE.closed" 2>/dev/null)" ] && [ "$n" -gt 0 ] && return 0
  echo "$n" >"$TMP/$SETTLE.closed"; return 1
}
# carried NAME M: connections of mirror M's link that brought over 1 MB
carried() {
  sed -n 's/.*closed up=[0-9]* down=\([0-9]*\).*/\1/p' "$TMP/$1-$2.log" |
    awk '$1 > 1000000 {n++} END {print n+0}'
}

run two --multi-per-source 2
check "2 per source: mirror a's ranges came on 2 connections ($(carried two a))" test "$(carried two a)" = 2
check "2 per source: mirror b's too ($(carried two b))" test "$(carried two b)" = 2
run one
check "default: mirror a's ranges came on 1 connection ($(carried one a))" test "$(carried one a)" = 1
check "default: mirror b's too ($(carried one b))" test "$(carried one b)" = 1
finish
