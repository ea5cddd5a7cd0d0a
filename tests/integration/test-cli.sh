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
  check "$c -h exits 0 with usage" bash -c '"$CAIRN" "$0" -h > "$1" && grep -q "^usage: cairn $0" "$1"' "$c" "$TMP/h-$c"
  check "$c -h says nothing on stderr" bash -c '[ -z "$("$CAIRN" "$0" -h 2>&1 >/dev/null)" ]' "$c"
  check "help $c matches $c -h" bash -c 'diff <("$CAIRN" help "$0") <("$CAIRN" "$0" -h)' "$c"
done
check "help of unknown command fails" bash -c '"$CAIRN" help nope 2>/dev/null; [ $? -eq 2 ]'

# every action answers --help and -h, wherever it comes (issue 12.9)
for a in "nar dump" "nar restore" "nar hash" "nar ls" "nar cat" "nar check" \
         "key generate" "key public" "narinfo sign" "narinfo verify" \
         "hash convert" "hash file"; do
  for h in --help -h; do
    check "$a $h exits 0 with usage" bash -c '"$CAIRN" $0 "$1" | grep -q "^usage: cairn ${0%% *}"' "$a" "$h"
  done
done
check "fetch with options before --help shows usage" \
  bash -c '"$CAIRN" fetch --from http://127.0.0.1:1 --help | grep -q "^usage: cairn fetch"'

# a typo gets the nearest name (grep reads everything: with -q it would stop
# at the match and the usage written after it could die of SIGPIPE, 141)
check "mistyped command: did you mean" \
  bash -c '"$CAIRN" pubish 2>&1 | grep "did you mean .publish." > /dev/null; [ "${PIPESTATUS[0]}" -eq 2 ]'
check "mistyped action: did you mean" \
  bash -c '"$CAIRN" narinfo sing 2>&1 | grep "did you mean .sign." > /dev/null; [ "${PIPESTATUS[0]}" -eq 2 ]'
check "mistyped nar action: did you mean" bash -c '"$CAIRN" nar lss 2>&1 | grep -q "did you mean .ls."'
check "nothing close: no suggestion" bash -c '! "$CAIRN" xyzzy 2>&1 | grep -q "did you mean"'

# one option parser for every command, from each command's table (issue 13.6)
usage_err() { # usage_err MESSAGE ARGS...: exit 2 and MESSAGE on stderr
  local msg=$1 rc=0 out; shift
  out=$("$CAIRN" "$@" 2>&1 >/dev/null) || rc=$?
  if [ "$rc" = 2 ] && grep -qF -- "$msg" <<<"$out"; then ok "$* -> $msg"
  else not_ok "$* -> $msg (exit $rc: $(head -1 <<<"$out"))"; fi
}
usage_err "unknown option '--form'; did you mean '--from'?" fetch --form http://x
usage_err "unknown option '--jbos'; did you mean '--jobs'?" weather --jbos=3 --from http://x p
usage_err "--jobs: '0' is not a number from 1 to" fetch --jobs=0
usage_err "--jobs: '9x' is not a number from 1 to" challenge --jobs 9x
usage_err "--json takes no value" weather --json=yes
usage_err "--from needs a value" fetch --from
usage_err "--verify takes background, strict, off, not 'sometimes'" publish --verify sometimes
usage_err "--health-interval: '0' is not a duration from 1ms to 1d" mirror --health-interval 0
usage_err "--ttl: '1500ms' is not a duration in whole seconds" publish --ttl 1500ms
usage_err "unknown option '-x'" nar ls -x
usage_err "at most 16 --upstream" mirror $(for i in $(seq 17); do echo --upstream http://127.0.0.1:$i; done)
h=sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s
check "--to=VALUE is --to VALUE" \
  bash -c 'test "$("$CAIRN" hash convert --to=base16 "$0")" = "$("$CAIRN" hash convert --to base16 "$0")"' "$h"
check "options and operands mix: --to after the hash" \
  bash -c 'test "$("$CAIRN" hash convert "$0" --to base16)" = "$("$CAIRN" hash convert --to base16 "$0")"' "$h"
rc=0; out=$("$CAIRN" hash convert --to nix32 -- --frob 2>&1) || rc=$?
check "-- ends the options: --frob after it is a HASH (exit $rc)" \
  bash -c '[ "$0" = 1 ] && ! grep -q "unknown option" <<<"$1"' "$rc" "$out"
check "-R is --recursive" bash -c 'diff <("$CAIRN" nar dump "$0" | "$CAIRN" nar ls -R) <("$CAIRN" nar dump "$0" | "$CAIRN" nar ls --recursive)' "$SRCDIR/tests/integration"

# --listen takes a name (issue 12.8)
mkdir -p "$TMP/bc"
cp -r "$VECTORS_DIR/nix/cache-xz/." "$TMP/bc/"
"$CAIRN" publish --binary-cache "$TMP/bc" --listen localhost:0 --port-file "$TMP/lp" 2>"$TMP/lp.err" &
lpid=$!
cleanup_hooks+=("kill $lpid 2>/dev/null")
port_from_file "$TMP/lp" "$lpid" > /dev/null || cat "$TMP/lp.err"
check "--listen localhost:0 resolves the name and serves on 127.0.0.1" \
  bash -c 'curl -fsS "http://127.0.0.1:$(cat "$0")/nix-cache-info" | grep -q StoreDir' "$TMP/lp"
kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null || true
check "--listen no-such-host.invalid:0 is refused, naming it" \
  bash -c 'out=$("$CAIRN" publish --binary-cache "$0" --listen no-such-host.invalid:0 2>&1); [ $? -ne 0 ] && grep -q "no-such-host.invalid:0" <<<"$out"' "$TMP/bc"

# sizes and durations: a signed or spaced number is refused, not wrapped
for v in ' -5' '+5' '-5' '5X' '' '18446744073709551616'; do
  check "--cache-max-size '$v' is a usage error naming it" bash -c \
    '"$CAIRN" publish --cache-max-size "$0" 2>&1 >/dev/null | grep -q "not a size"; [ "${PIPESTATUS[0]}" -eq 2 ]' "$v"
  check "--ttl '$v' is a usage error naming it" bash -c \
    '"$CAIRN" publish --ttl "$0" 2>&1 >/dev/null | grep -q "not a duration"; [ "${PIPESTATUS[0]}" -eq 2 ]' "$v"
done
# publish refuses to start on a directory that is not there, saying which
# (issue 12.9); `timeout` ends a server that would start anyway
pub() { timeout 10 "$CAIRN" publish --listen 127.0.0.1:0 "$@" > "$TMP/pub.out" 2>&1; }
rc=0; pub --store /nonexistent || rc=$?
sed 's/^/    | /' "$TMP/pub.out"
check "publish --store /nonexistent fails (exit $rc)" test "$rc" = 1
check "  ... saying the store root does not exist, not that --db is needed" \
  bash -c 'grep -q "store root .\/nonexistent. does not exist" "$0" && ! grep -q -- "--db FILE is needed" "$0"' "$TMP/pub.out"
# --store is a root in every command (issue 13.6); publish's old form, the
# store directory itself, still works and says what to write instead
mkdir -p "$TMP/root/nix/store"
rc=0; pub --store "$TMP/root/nix/store" || rc=$?
sed 's/^/    | /' "$TMP/pub.out"
check "publish --store ROOT/nix/store (old form): deprecated, naming the root" \
  grep -q "a store directory is deprecated here; give its root, as fetch and challenge take it: --store '$TMP/root'" "$TMP/pub.out"
check "  ... and read as that root: its database is looked for under it" \
  grep -q "store database '$TMP/root/nix/var/nix/db/db.sqlite' does not exist" "$TMP/pub.out"
rc=0; pub --store "$TMP/root/nix/store/" || rc=$?
check "  ... with a trailing slash too" \
  grep -q "give its root, as fetch and challenge take it: --store '$TMP/root'" "$TMP/pub.out"
rc=0; pub --store "$TMP/root" || rc=$?
check "publish --store ROOT: no warning, the same database (exit $rc)" \
  bash -c '! grep -q deprecated "$0" && grep -q "store database .$1/nix/var/nix/db/db.sqlite. does not exist" "$0"' "$TMP/pub.out" "$TMP/root"
mkdir -p "$TMP/own/store"
rc=0; pub --store "$TMP/own/store" --db "$TMP/own/db.sqlite" || rc=$?
check "publish --store DIR --db FILE (old form, a store directory of its own): --store-dir" \
  grep -q "give it as --store-dir '$TMP/own/store'" "$TMP/pub.out"
rc=0; pub --store /etc/passwd || rc=$?
check "publish --store FILE: not a directory (exit $rc)" grep -q "'/etc/passwd' is not a directory" "$TMP/pub.out"
rc=0; pub --binary-cache "$TMP/no-such-cache" || rc=$?
sed 's/^/    | /' "$TMP/pub.out"
check "publish --binary-cache DIR missing: says it does not exist (exit $rc)" \
  bash -c '[ "$1" = 1 ] && grep -q "binary-cache directory .*no-such-cache. does not exist" "$0"' "$TMP/pub.out" "$rc"
# the default store: run where neither /nix/store nor /gnu/store exists,
# hiding them in a mount namespace of its own where they do
default_store() {
  if [ ! -e /nix/store ] && [ ! -e /gnu/store ]; then
    pub
  elif [ "$(id -u)" = 0 ] && command -v unshare > /dev/null &&
    unshare -m --propagation private true 2> /dev/null; then
    timeout 10 unshare -m --propagation private bash -c \
      'for d in /nix /gnu; do [ -d $d ] && mount -t tmpfs none $d; done; exec "$0" publish --listen 127.0.0.1:0' \
      "$CAIRN" > "$TMP/pub.out" 2>&1
  else
    return 77
  fi
}
rc=0; default_store || rc=$?
if [ "$rc" = 77 ]; then
  echo "# /nix/store or /gnu/store exists and cannot be hidden (not root): default store not tested"
else
  sed 's/^/    | /' "$TMP/pub.out"
  check "publish with no store here refuses to start (exit $rc)" test "$rc" = 1
  check "  ... saying there is no store and what to give" \
    bash -c 'grep -q "no store to serve: neither /nix/store nor /gnu/store exists" "$0" && grep -q -- "--store ROOT" "$0"' "$TMP/pub.out"
fi
finish
