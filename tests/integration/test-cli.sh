#!/usr/bin/env bash
# Every subcommand answers -h and `cairn help NAME`; --help and --version work.
. "$SRCDIR/tests/integration/lib.sh"

check "--version prints the version" bash -c '"$CAIRN" --version | grep -Eq "^cairn [0-9]+\.[0-9]+"'
check "--help exits 0" "$CAIRN" --help
check "no arguments is a usage error" bash -c '"$CAIRN"; [ $? -eq 2 ]'
check "unknown command is a usage error" bash -c '"$CAIRN" no-such-command 2>/dev/null; [ $? -eq 2 ]'

cmds=$("$CAIRN" --help | awk '/^commands:/{on=1; next} on && /^  [a-z]/{print $1}')
[ -n "$cmds" ] || { not_ok "--help lists commands"; finish; exit 1; }
for c in $cmds; do
  check "$c -h exits 0 with usage" bash -c '"$CAIRN" "$0" -h | grep -q "^usage: cairn $0"' "$c"
  check "help $c matches $c -h" bash -c 'diff <("$CAIRN" help "$0") <("$CAIRN" "$0" -h)' "$c"
done
check "help of unknown command fails" bash -c '"$CAIRN" help nope 2>/dev/null; [ $? -eq 2 ]'
finish
