#!/bin/sh
# `make run` until `cairn publish` lands: dump a tree to a NAR, hash it,
# sign a narinfo and verify it.
set -eu
CAIRN=${1:-build/src/cairn}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tree/bin"
printf 'hello from cairn\n' > "$tmp/tree/README"
printf '#!/bin/sh\necho hi\n' > "$tmp/tree/bin/hello"; chmod +x "$tmp/tree/bin/hello"
ln -s bin/hello "$tmp/tree/hello"
echo "\$ cairn nar dump tree | wc -c"
"$CAIRN" nar dump "$tmp/tree" | wc -c
echo "\$ cairn nar hash tree"
"$CAIRN" nar hash "$tmp/tree"
echo "\$ cairn nar dump tree | cairn nar ls"
"$CAIRN" nar dump "$tmp/tree" | "$CAIRN" nar ls
