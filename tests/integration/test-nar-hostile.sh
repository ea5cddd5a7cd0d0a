#!/usr/bin/env bash
# `cairn nar restore` refuses every archive of the hostile corpus
# (tests/vectors/hostile, made by make.py): non-zero exit, the expected
# message, and nothing left behind - no target, no temporary sibling,
# nothing written outside (the symlink cases aim at /tmp/cairn-pwned).
. "$SRCDIR/tests/integration/lib.sh"

H="$SRCDIR/tests/vectors/hostile"
n=0
while IFS=$'\t' read -r name code msg; do
  case "$name" in '#'*|'') continue ;; esac
  n=$((n + 1))
  work="$TMP/$name"
  mkdir -p "$work"
  rc=0
  "$CAIRN" nar restore "$work/out" < "$H/$name.nar" 2> "$TMP/err" || rc=$?
  if [ "$rc" -ne 1 ]; then
    not_ok "$name: exit status $rc, expected 1"
  elif ! grep -qF -- "$msg" "$TMP/err"; then
    not_ok "$name: message '$(cat "$TMP/err")' lacks '$msg'"
  elif [ -n "$(ls -A "$work")" ]; then
    not_ok "$name: left behind: $(ls -A "$work")"
  else
    ok "$name: $code refused, nothing left"
  fi
done < "$H/expected.tsv"
check "the corpus has at least 20 cases ($n)" test "$n" -ge 20
check "nothing was written through a symlink" test ! -e /tmp/cairn-pwned

# A valid archive still restores, and an existing target is never replaced.
V="$VECTORS_DIR/nix/trees"
check "a valid NAR restores" bash -c '"$CAIRN" nar restore "$1/ok" < "$2/t04-dir.nar"' _ "$TMP" "$V"
check "restored tree dumps back identically" bash -c '"$CAIRN" nar dump "$1/ok" | cmp -s - "$2/t04-dir.nar"' _ "$TMP" "$V"
check "restore onto an existing path fails" bash -c '! "$CAIRN" nar restore "$1/ok" < "$2/t01-file.nar" 2>/dev/null' _ "$TMP" "$V"
check "the existing tree is untouched" bash -c '"$CAIRN" nar dump "$1/ok" | cmp -s - "$2/t04-dir.nar"' _ "$TMP" "$V"
check "no temporary sibling is left" bash -c '[ -z "$(ls -A "$1" | grep tmp-)" ]' _ "$TMP"
finish
