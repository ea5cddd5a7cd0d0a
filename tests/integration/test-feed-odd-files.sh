#!/usr/bin/env bash
# A binary-cache directory's feed source skips what is not a regular file
# under a narinfo's name: a named pipe (opened blocking, it held the
# source, every long-poll and the server's stop), a symbolic link (to a
# narinfo outside the directory), a device.  The regular narinfos around
# them are in the feed, the server answers and stops cleanly, and the
# directory's own narinfo route answers 404 for each without blocking.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl mkfifo
publish_require

"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" feed-test-1
BC=$TMP/bc
mkdir -p "$BC"
printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n' > "$BC/nix-cache-info"
ni() {
  printf 'StorePath: /nix/store/%s-%s\nURL: nar/%s.nar\nCompression: none\nNarHash: sha256:%s\nNarSize: 1\nReferences: \n' \
    "$1" "$2" "$1" 0000000000000000000000000000000000000000000000000000
}
# the odd ones sort first: a source stopped at one never reaches the rest
fifo=00000000000000000000000000000000
link=11111111111111111111111111111111
dev=22222222222222222222222222222222
mkfifo "$BC/$fifo.narinfo"
ni "$link" outside > "$TMP/outside.narinfo"
ln -s "$TMP/outside.narinfo" "$BC/$link.narinfo"
odd=2
if mknod "$BC/$dev.narinfo" c 1 5 2> /dev/null; then odd=3; fi # /dev/zero's
for hp in aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb \
  cccccccccccccccccccccccccccccccc; do
  ni "$hp" item > "$BC/$hp.narinfo"
done

publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "cairn publish --binary-cache --feed starts"; finish; exit 1; }
# held until the first pass appends something (one batch: all 3), bounded
curl -sf --max-time 25 "$PUBLISH_URL/feed/events?since=0&wait=20" -o "$TMP/page"
check "the 3 regular narinfos are in the feed ($odd odd names beside them)" \
  [ "$(sed -n 's/^head //p' "$TMP/page")" = 3 ]
check "  and only they" \
  [ "$(grep -cw -e "$fifo" -e "$link" -e "$dev" "$TMP/page")" = 0 ]
check "a long-poll is answered at the end of its wait" \
  curl -sf --max-time 10 "$PUBLISH_URL/feed/events?since=3&wait=1" -o /dev/null
for hp in $fifo $link $dev; do
  [ -e "$BC/$hp.narinfo" ] || [ -L "$BC/$hp.narinfo" ] || continue
  code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PUBLISH_URL/$hp.narinfo")
  check "GET /$hp.narinfo answers 404 ($code)" [ "$code" = 404 ]
done
check "the source said why it skipped them" \
  grep -q "not in the feed" "$PUBLISH_LOG"
check "the server stops cleanly" publish_stop
finish
