#!/usr/bin/env bash
# The feed answers waiting requests between the batches of a long first
# pass, not only after it.  Deterministic by counting, not by a clock: a
# binary-cache directory of 1500 narinfo names, all hard links to one
# empty file (the source skips empty narinfos), with an old mtime (so it
# is listed at the start and then only on its periodic rescan).  A
# long-poll since=0 is held (the server's held-requests counter says so)
# before that one file gets its text in one write: the next listing reads
# 1500 narinfos, which the log takes 512 to a transaction, and the held
# request, asked before that pass began, must be answered after its first
# batch, with a head strictly between 0 and 1500 (512 unless a rescan
# happened to list the directory during that one write).
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 touch
publish_require

"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" feed-test-1
BC=$TMP/bc
mkdir -p "$BC"
printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n' > "$BC/nix-cache-info"
total=1500
python3 - "$BC" "$TMP/blank" "$total" << 'EOF'
import os, random, sys
r = random.Random(14)
alpha = "0123456789abcdfghijklmnpqrsvwxyz"
hps = set()
while len(hps) < int(sys.argv[3]):
    hps.add("".join(r.choice(alpha) for _ in range(32)))
open(sys.argv[2], "w").close()
for hp in sorted(hps):
    os.link(sys.argv[2], os.path.join(sys.argv[1], hp + ".narinfo"))
EOF
touch -d '1 hour ago' "$BC"

publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "cairn publish --binary-cache --feed starts"; finish; exit 1; }
# answered by the source after its first round: the empty narinfos skipped
curl -sf --max-time 30 "$PUBLISH_URL/feed/events?since=0" -o "$TMP/p0"
check "the first listing skips the empty narinfos (head 0)" \
  [ "$(sed -n 's/^head //p' "$TMP/p0")" = 0 ]

curl -sf --max-time 60 "$PUBLISH_URL/feed/events?since=0&wait=50" -o "$TMP/lp" &
lp=$!
held() {
  curl -sf --max-time 5 "$PUBLISH_URL/metrics" |
    grep -q '^cairn_feed_held_total[^0-9]* [1-9]'
}
check "the long-poll is held (cairn_feed_held_total)" wait_for 30 held
# all 1500 narinfos get their text at once (one write to their one file)
python3 - "$TMP/blank" << 'EOF'
import os, sys
hp = "0" * 32
text = ("StorePath: /nix/store/%s-item\nURL: nar/%s.nar\nCompression: none\n"
        "NarHash: sha256:%s\nNarSize: 1\nReferences: \n" % (hp, hp, "0" * 52))
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
assert os.write(fd, text.encode()) == len(text)
os.close(fd)
EOF
wait "$lp"
check "the held request is answered with 200" [ $? = 0 ]
h=$(sed -n 's/^head //p' "$TMP/lp")
check "  its page is signed and verifies" \
  "$CAIRN" feed verify --trusted-key "$TMP/k.pub" --since 0 "$TMP/lp"
check "  its head ($h) is that of a batch in, below the $total items" \
  [ -n "$h" ] && [ "$h" -gt 0 ] && [ "$h" -lt "$total" ]
complete() {
  curl -sf --max-time 10 "$PUBLISH_URL/feed/events?since=0&max=1" -o "$TMP/page" &&
    [ "$(sed -n 's/^head //p' "$TMP/page")" -ge "$total" ]
}
check "then the pass completes: $total events" wait_for 30 complete
check "the server stops cleanly" publish_stop
finish
