#!/usr/bin/env bash
# cairn publish --binary-cache DIR --feed: a narinfo rewritten under the
# same name with new content is a new event.  Twice: `nix store sign`
# adding a second signature to a narinfo of the directory (as Nix writes
# it), and a narinfo written over in place (open, truncate, write: the
# directory's mtime does not change).  A follower (cairn sync --follow)
# gets each new text, byte for byte.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 cmp
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
top=$(pstore_build "$TMP/src" 2 rw 1000) || { not_ok "nix-build"; finish; exit 1; }
hp() { basename "$1" | cut -c1-32; }
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" head-test-1
"$CAIRN" key generate --format nix --secret "$TMP/k2.sec" --public "$TMP/k2.pub" second-test-1
BC=$TMP/head
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=zstd" "$top"
n_head=$(ls "$BC"/*.narinfo | wc -l)
publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "the head starts"; finish; exit 1; }
# page SINCE: the page after SINCE into $TMP/page
page() { curl -sf "$PUBLISH_URL/feed/events?since=$1&max=10000" -o "$TMP/page"; }
head_at_least() { page 0 && [ "$(sed -n 's/^head //p' "$TMP/page")" -ge "$1" ]; }
wait_for 30 head_at_least "$n_head" || true
H=$(sed -n 's/^head //p' "$TMP/page")

R=$TMP/replica
"$CAIRN" sync --from "$PUBLISH_URL" --to "$R" --trusted-key "$TMP/k.pub" --follow \
  > /dev/null 2> "$TMP/follow.err" &
f=$!
cleanup_hooks+=("kill -9 $f 2>/dev/null")
check "the follower has the closure" wait_file "$R/$(hp "$top").narinfo" 30

# 1. Nix adds a signature: the narinfo is written again under its name
NI=$BC/$(hp "$top").narinfo
nix store sign --store "file://$BC" --key-file "$TMP/k2.sec" "$top"
check "nix store sign rewrote the narinfo (two Sig lines now)" [ "$(grep -c '^Sig: ' "$NI")" -eq 2 ]
added_after() { page "$1" && grep -q "^add [0-9]* $(hp "$top") " "$TMP/page"; }
check "the rewritten narinfo is a new add event" wait_for 30 added_after "$H"
check "  carrying the new text" python3 - "$TMP/page" "$NI" << 'EOF'
import sys
page, f = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
sys.exit(0 if b"\n" + f + b"\nend " in page or b"\n" + f + b"add " in page else 1)
EOF
same_as() { cmp -s "$1" "$2"; }
check "  and the follower gets it, byte for byte" wait_for 30 same_as "$NI" "$R/$(hp "$top").narinfo"
H=$(sed -n 's/^head //p' "$TMP/page")

# 2. written over in place: same name, same inode, the directory unchanged
# (its mtime set an hour back first, so that it does not look recently
# changed: only the periodic listing can see this one)
touch -d "@$(($(date +%s) - 3600))" "$BC"
python3 - "$NI" << 'EOF'
import sys
t = open(sys.argv[1], "rb").read()
# the two Sig lines in the other order: new bytes, still the head's signature
lines = t.split(b"\n")
sigs = [l for l in lines if l.startswith(b"Sig: ")]
rest = [l for l in lines if not l.startswith(b"Sig: ") and l]
with open(sys.argv[1], "r+b") as f:
    f.truncate(0)
    f.write(b"\n".join(rest + sigs[::-1]) + b"\n")
EOF
check "a narinfo written over in place is a new add event" wait_for 30 added_after "$H"
check "  and the follower gets it, byte for byte" wait_for 30 same_as "$NI" "$R/$(hp "$top").narinfo"
H2=$(sed -n 's/^head //p' "$TMP/page")
check "  one event each time, none for the narinfos left alone" [ "$H2" -eq $((H + 1)) ]
check "no page refused, no item refused by the follower" bash -c '! grep -q refused "$0"' "$TMP/follow.err"
kill -TERM "$f"
wait "$f" 2> /dev/null || true
publish_stop || true
finish
