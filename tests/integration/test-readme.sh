#!/usr/bin/env bash
# The README's "Use it" commands work as written: every line of its sh
# block runs, from the repository's top, with only the fixed ports and
# /tmp directories swapped for free ports and the test's own directory.
. "$SRCDIR/tests/integration/lib.sh"
skip_unless curl nix

block=$(awk '/^## Use it/{on=1} on && /^```sh/{inblk=1; next} inblk && /^```/{exit} inblk' "$SRCDIR/README.md")
[ -n "$block" ] || { not_ok "README has a 'Use it' sh block"; finish; exit 1; }
# (the README names fixed ports: free ones here, racy but all there is)
p1=$(free_port)
p2=$(free_port)
bin=$(dirname "$CAIRN")
n=0
while IFS= read -r line; do
  case $line in ''|'#'*) continue ;; esac
  # /tmp/ first: $CAIRN and $TMP may themselves be under /tmp
  cmd=${line//\/tmp\//$TMP\/}
  cmd=${cmd//build\/src\/cairn/$CAIRN}
  cmd=${cmd//127.0.0.1:8080/127.0.0.1:$p1}
  cmd=${cmd//127.0.0.1:8081/127.0.0.1:$p2}
  n=$((n + 1))
  case $cmd in
    *" publish "*|*" mirror "*)
      (cd "$SRCDIR" && exec bash -c "exec $cmd") >"$TMP/srv$n.log" 2>&1 &
      cleanup_hooks+=("kill $! 2>/dev/null")
      port=${p1}; case $cmd in *" mirror "*) port=$p2 ;; esac
      wait_for 5 curl -fs "http://127.0.0.1:$port/nix-cache-info" -o /dev/null || true
      check "README line $n starts a server: ${line%% --*}" curl -fs "http://127.0.0.1:$port/nix-cache-info" -o /dev/null
      ;;
    *)
      rc=0
      (cd "$SRCDIR" && env -i PATH="$PATH" HOME="$TMP/home" bash -c "$cmd") >"$TMP/out$n" 2>&1 || rc=$?
      sed 's/^/    | /' "$TMP/out$n" | tail -5
      # challenge exits 0 when the servers agree
      check "README line $n works as written (exit $rc): ${line:0:60}" test "$rc" = 0
      ;;
  esac
done <<<"$block"
check "the fetched closure is in the store" test -e "$TMP/cairn-root/nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0"
check "nix copied it too" test -e "$TMP/cairn-nix-copy/nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0"
finish
