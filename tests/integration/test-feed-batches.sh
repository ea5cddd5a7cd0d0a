#!/usr/bin/env bash
# The feed answers waiting requests between the batches of a long first
# pass, not only after it.  A binary-cache directory of 1500 narinfos (the
# log takes them 512 to a transaction, in the order of their hash parts)
# where two names, at positions 700 and 1300, are named pipes: reading the
# directory stops at each until the test opens it.  So, without a clock, a
# request answered while the second pipe is still closed was answered in
# the middle of the pass; then the pass completes.  (That a named pipe
# stops the directory source is what this test uses to pause it; if the
# source ever opens narinfos without blocking, it needs another way.)
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 mkfifo timeout
publish_require

"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" feed-test-1
BC=$TMP/bc
mkdir -p "$BC"
printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n' > "$BC/nix-cache-info"
python3 - "$BC" << 'EOF'
import os, random, sys
r = random.Random(14)
alpha = "0123456789abcdfghijklmnpqrsvwxyz"
hps = sorted({"".join(r.choice(alpha) for _ in range(32)) for _ in range(1500)})
for i, hp in enumerate(hps):
    p = os.path.join(sys.argv[1], hp + ".narinfo")
    if i in (700, 1300):
        os.mkfifo(p)
        open(os.path.join(sys.argv[1], "..", "fifo%d" % (1 if i == 700 else 2)), "w").write(p)
        continue
    with open(p, "w") as f:
        f.write("StorePath: /nix/store/%s-item-%d\nURL: nar/%s.nar\nCompression: none\n"
                "NarHash: sha256:%s\nNarSize: 1\nReferences: \n" % (hp, i, hp, "0" * 52))
EOF
total=1498
fifo1=$(cat "$TMP/fifo1") fifo2=$(cat "$TMP/fifo2")

publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "cairn publish --binary-cache --feed starts"; finish; exit 1; }
# a waiting request: since=0, the feed empty or a batch in
curl -sf --max-time 60 "$PUBLISH_URL/feed/events?since=0&wait=50" -o "$TMP/lp" &
lp=$!
# the first pipe opened: the pass goes on to the second and stops there
timeout 30 bash -c ': > "$0"' "$fifo1" || not_ok "the pass reaches the first pipe"
answered() { ! kill -0 "$lp" 2> /dev/null; }
check "a waiting request is answered while the pass is stopped at the second pipe" \
  wait_for 30 answered
wait "$lp" || not_ok "  with 200"
h=$(sed -n 's/^head //p' "$TMP/lp")
check "  its page is signed and verifies" \
  "$CAIRN" feed verify --trusted-key "$TMP/k.pub" --since 0 "$TMP/lp"
check "  its head ($h) is that of a batch in, below the $total items" \
  [ -n "$h" ] && [ "$h" -ge 512 ] && [ "$h" -lt "$total" ]
timeout 30 bash -c ': > "$0"' "$fifo2" || not_ok "the pass reaches the second pipe"
# Both pipes served their turn: gone before the source lists the
# directory again (it does every few seconds, and would stop at a pipe
# that was written to since, for good).
rm -f "$fifo1" "$fifo2"
complete() {
  curl -sf --max-time 10 "$PUBLISH_URL/feed/events?since=0&max=1" -o "$TMP/page" &&
    [ "$(sed -n 's/^head //p' "$TMP/page")" -ge "$total" ]
}
check "then the pass completes: $total events" wait_for 30 complete
finish
