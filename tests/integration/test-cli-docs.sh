#!/usr/bin/env bash
# Each command's options, as its -h prints them from its option table
# (src/cli-options.h), are all in docs/cairn-NAME.md; and every option a
# page lists (a table row, a list item or a heading that starts with it) is
# one the command has.  Help and parsing come from the same table, so this
# keeps the three in step (issue 13.6).
. "$SRCDIR/tests/integration/lib.sh"

cmds=$("$CAIRN" --help | awk '/^commands:/{on=1; next} on && /^  [a-z]/{print $1}')
[ -n "$cmds" ] || { not_ok "--help lists commands"; finish; exit 1; }
for c in $cmds; do
  doc=$SRCDIR/docs/cairn-$c.md
  check "docs/cairn-$c.md exists" test -f "$doc" || continue
  "$CAIRN" "$c" -h | grep -oE '^ +(-[a-zA-Z], )?--[a-z0-9-]+' |
    grep -oE -- '--[a-z0-9-]+' | sort -u > "$TMP/help-$c"
  check "$c -h lists options" test -s "$TMP/help-$c"
  grep -oE -- '--[a-z0-9][a-z0-9-]*' "$doc" | sort -u > "$TMP/doc-$c"
  missing=$(comm -23 "$TMP/help-$c" "$TMP/doc-$c" | tr '\n' ' ')
  check "every option of $c is in docs/cairn-$c.md${missing:+ (missing: $missing)}" \
    test -z "$missing"
  { grep -oE '^(\| |- |## )`?--[a-z0-9][a-z0-9-]*' "$doc" || true; } |
    { grep -oE -- '--[a-z0-9-]+' || true; } | sort -u > "$TMP/listed-$c"
  unknown=$(comm -13 "$TMP/help-$c" "$TMP/listed-$c" | tr '\n' ' ')
  check "every option docs/cairn-$c.md lists is one $c has${unknown:+ (not: $unknown)}" \
    test -z "$unknown"
done

# the check itself bites: an option missing from a page is found
printf '# cairn x\n\n- `--json`: JSON\n' > "$TMP/doc-x"
printf -- '--json\n--jobs\n' > "$TMP/help-x"
check "a page without an option is caught" \
  test "$(comm -23 "$TMP/help-x" <(grep -oE -- '--[a-z0-9][a-z0-9-]*' "$TMP/doc-x" | sort -u))" = --jobs
finish
