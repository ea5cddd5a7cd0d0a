#!/usr/bin/env bash
# Names and fields a hostile server controls never reach the terminal raw
# (issue 19.4): file names and symlink targets from NARs (nar ls -R,
# challenge --diff), key names and reasons in messages (fetch, narinfo
# verify).  A newline in a name cannot forge a line of a report.
. "$SRCDIR/tests/integration/lib.sh"

# no control byte but the newline, no DEL, no C1 (UTF-8 C2 80..9F)
clean() { ! LC_ALL=C grep -qP '[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]' "$1"; }

# Two trees that differ in a file whose name is an attack, and a symlink
# whose target retitles the window.
evil=$'x\n100.0% identical\x1b]0;pwned\x07\r'
for t in a b; do
  mkdir -p "$TMP/$t"
  printf 'version %s\n' "$t" >"$TMP/$t/$evil"
  ln -s $'\x1b[2J\xc2\x9bgone' "$TMP/$t/link"
  "$CAIRN" nar dump "$TMP/$t" >"$TMP/$t.nar"
done

"$CAIRN" nar ls -R "$TMP/a.nar" >"$TMP/ls.out"
cat -v "$TMP/ls.out" | sed 's/^/    | /'
check "nar ls -R: no control byte reaches the terminal" clean "$TMP/ls.out"
check "  ... one line per entry (a newline in a name is escaped)" test "$(wc -l <"$TMP/ls.out")" = 3
check "  ... the name shows its escapes, quoted" grep -qF '"/x\n100.0% identical\x1b]0;pwned\a\r"' "$TMP/ls.out"
check "  ... the symlink target too" grep -qF -- '-> "\x1b[2J\xc2\x9bgone"' "$TMP/ls.out"

# Two binary caches (file://) with one item each, of the two trees.
P=/nix/store/s6mk0l9hjdl07jf1w0y1kqbcdb6ymsl7-evil
for t in a b; do
  mkdir -p "$TMP/c$t/nar"
  cp "$TMP/$t.nar" "$TMP/c$t/nar/$t.nar"
  { read -r h; read -r s; } < <("$CAIRN" nar hash "$TMP/$t")
  printf 'StorePath: %s\nURL: nar/%s.nar\nCompression: none\nNarHash: %s\nNarSize: %s\nReferences: \n' \
    "$P" "$t" "$h" "$s" >"$TMP/c$t/s6mk0l9hjdl07jf1w0y1kqbcdb6ymsl7.narinfo"
  echo "StoreDir: /nix/store" >"$TMP/c$t/nix-cache-info"
done
rc=0; "$CAIRN" challenge --diff --from "file://$TMP/ca" --from "file://$TMP/cb" "$P" >"$TMP/ch.out" || rc=$?
cat -v "$TMP/ch.out" | sed 's/^/    | /'
check "challenge --diff: differs (exit 2)" test "$rc" = 2
check "  ... no control byte reaches the terminal" clean "$TMP/ch.out"
check "  ... no forged report line" bash -c '! grep -q "^100.0% identical" "$0"' "$TMP/ch.out"
check "  ... the real summary is the only one" \
  test "$(grep -c 'store items analysed' "$TMP/ch.out")" = 1
check "  ... the changed file is named, escaped" grep -qF 'content    "/x\n100.0% identical' "$TMP/ch.out"
"$CAIRN" challenge --diff --json --from "file://$TMP/ca" --from "file://$TMP/cb" "$P" >"$TMP/ch.json" || true
check "  ... --json keeps the exact name" \
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); n=[f["path"] for f in d["items"][0]["diffs"][0]["files"]]; sys.exit(0 if "x\n100.0% identical\x1b]0;pwned\x07\r" in n else 1)' "$TMP/ch.json"

# A key name with a C1 control (CSI) in a signature: the error names it,
# escaped.
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" good-1 >/dev/null
ni=$TMP/ca/s6mk0l9hjdl07jf1w0y1kqbcdb6ymsl7.narinfo
printf 'Sig: ev\xc2\x9b2Jil:%s\n' "$(head -c 64 /dev/zero | base64 -w0)" >>"$ni"
rc=0; "$CAIRN" fetch --no-cache --from "file://$TMP/ca" --trusted-key "$TMP/k.pub" --store "$TMP/r" "$P" \
  2>"$TMP/f.err" || rc=$?
cat -v "$TMP/f.err" | sed 's/^/    | /'
check "fetch: refused (exit 1), the message names the key" \
  bash -c '[ "$0" = 1 ] && grep -qF "untrusted key '"'"'ev\xc2\x9b2Jil'"'"'" "$1"' "$rc" "$TMP/f.err"
check "  ... and no control byte reaches the terminal" clean "$TMP/f.err"
rc=0; "$CAIRN" narinfo verify --trusted-key "$TMP/k.pub" <"$ni" 2>"$TMP/v.err" || rc=$?
check "narinfo verify: the same, escaped" bash -c '[ "$0" = 1 ] && grep -qF "ev\xc2\x9b2Jil" "$1"' "$rc" "$TMP/v.err"
check "  ... no control byte" clean "$TMP/v.err"
finish
