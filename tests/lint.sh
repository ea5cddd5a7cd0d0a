#!/bin/sh
# The rules of issue 13.7 that a machine can check, over lib/ and src/:
#   - every .c file includes cairn/banned.h after all its other headers,
#     and banned.h really turns a banned call into a compile error;
#   - no abort() and no assert() in the library (BUG() in error.c is the
#     one place that stops the process);
#   - no magic -1/-2 returns in the library: enum cairn_err or a named
#     constant.
# usage: lint.sh SOURCE_ROOT CC...
set -u
root=$1
shift
fail=0
bad() { echo "lint: $*" >&2; fail=1; }

for f in "$root"/lib/*.c "$root"/src/*.c; do
	last=$(grep -n '^#include' "$f" | tail -n 1)
	case $last in
	*'"cairn/banned.h"'*) ;;
	*) bad "$f: the last #include is not \"cairn/banned.h\" (${last:-none})" ;;
	esac
done

for f in "$root"/lib/*.c; do
	case ${f##*/} in error.c) continue ;; esac
	hits=$(grep -n '\babort *(' "$f" | grep -v '^[0-9]*: *\*')
	[ -n "$hits" ] && bad "$f: abort() in the library: $hits"
	hits=$(grep -n '\bassert *(' "$f" | grep -v '_Static_assert')
	[ -n "$hits" ] && bad "$f: assert() in the library (use BUG()): $hits"
	hits=$(grep -nE 'return -[0-9]+;' "$f")
	[ -n "$hits" ] && bad "$f: magic negative return (use enum cairn_err): $hits"
done

# banned.h must bite: a call to strcpy is an error, the same file without it is not
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/ok.c" <<'C'
#include <string.h>
#include "cairn/banned.h"
int f(char *d, const char *s, size_t n) { memcpy(d, s, n); return 0; }
C
cat >"$tmp/bad.c" <<'C'
#include <string.h>
#include "cairn/banned.h"
int f(char *d, const char *s) { strcpy(d, s); return 0; }
C
if ! "$@" -I"$root/include" -c "$tmp/ok.c" -o "$tmp/ok.o" 2>"$tmp/err"; then
	cat "$tmp/err" >&2
	bad "a file without banned calls does not compile with banned.h"
fi
if "$@" -I"$root/include" -c "$tmp/bad.c" -o "$tmp/bad.o" 2>/dev/null; then
	bad "strcpy compiled although banned.h forbids it"
fi

[ $fail = 0 ] && echo "lint: lib/ and src/ keep the rules"
exit $fail
