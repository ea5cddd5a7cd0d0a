#!/bin/sh
# `make run` until `cairn publish` lands: the core library end to end —
# dump a tree to a NAR, hash and list it, restore it, make a signing key,
# sign a narinfo and verify it (and see a tampered one refused).
set -eu
CAIRN=${1:-build/src/cairn}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tree/bin"
printf 'hello from cairn\n' > "$tmp/tree/README"
printf '#!/bin/sh\necho hi\n' > "$tmp/tree/bin/hello"; chmod +x "$tmp/tree/bin/hello"
ln -s bin/hello "$tmp/tree/hello"
run() { echo "\$ $*"; "$@"; echo; }
echo "== a NAR of a small tree"
run "$CAIRN" nar hash "$tmp/tree"
"$CAIRN" nar dump "$tmp/tree" > "$tmp/tree.nar"
run "$CAIRN" nar ls -R "$tmp/tree.nar"
run "$CAIRN" nar restore "$tmp/copy" < "$tmp/tree.nar"
run "$CAIRN" nar hash "$tmp/copy"
echo "== signing a narinfo (one that the real Nix wrote) with a fresh key"
"$CAIRN" key generate --format nix --secret "$tmp/key.sec" --public "$tmp/key.pub" demo.cairn-1
run cat "$tmp/key.pub"
echo
narinfo=$here/tests/vectors/nix/cache-xz/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo
grep -v '^Sig:' "$narinfo" | "$CAIRN" narinfo sign --key "$tmp/key.sec" > "$tmp/signed.narinfo"
run cat "$tmp/signed.narinfo"
run "$CAIRN" narinfo verify --trusted-key "$tmp/key.pub" < "$tmp/signed.narinfo"
echo "== the same narinfo with its NarSize changed"
sed 's/^NarSize: .*/NarSize: 1/' "$tmp/signed.narinfo" > "$tmp/bad.narinfo"
echo "\$ $CAIRN narinfo verify --trusted-key key.pub < tampered.narinfo"
if "$CAIRN" narinfo verify --trusted-key "$tmp/key.pub" < "$tmp/bad.narinfo"; then
  echo "demo: a tampered narinfo verified" >&2; exit 1
fi
echo "(refused, as it should be)"
