#!/usr/bin/env bash
# `cairn publish --cache DIR` adopts DIR/info/ at its start: an entry there
# that is a named pipe (opened blocking, it held the start for good) or a
# device is skipped and removed, not read; the server starts, serves and
# stops cleanly.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl mkfifo
publish_require
nix_lib_init

pstore_init "$TMP/src"
top=$(pstore_build "$TMP/src" 1 odd)
h=$(basename "$top" | cut -c1-32)
mkdir -p "$TMP/cache/info"
fifo=$TMP/cache/info/${h}.zstd
mkfifo "$fifo"
publish_start "${PSTORE_ARGS[@]}" --cache "$TMP/cache" ||
  { not_ok "cairn publish --cache starts beside a named pipe in its info/"; finish; exit 1; }
ok "cairn publish --cache starts beside a named pipe in its info/"
check "  the pipe is removed as a bad entry" [ ! -e "$fifo" ]
check "  the item is served" curl -fsS --max-time 10 -o /dev/null "$PUBLISH_URL/$h.narinfo"
check "the server stops cleanly" publish_stop
finish
