#!/usr/bin/env bash
# `make run` (scripts/demo.sh): publish, a mirror in front of it and a fetch
# through the mirror; the `nix copy` line it prints works as printed with
# the Nix Debian ships; Ctrl-C stops everything and the script exits 0.
. "$SRCDIR/tests/integration/lib.sh"
skip_unless nix-build nix curl

D=$TMP/demo
copy=/tmp/cairn-demo-copy
rm -rf "$copy"
cleanup_hooks+=("rm -rf '$copy'")

# Job control: the demo runs in a process group of its own and, as from a
# terminal, does not start with SIGINT ignored.
set -m
CAIRN_DEMO_DIR=$D CAIRN_DEMO_MIRROR_PORT=0 "$SRCDIR/scripts/demo.sh" "$CAIRN" 0 >"$TMP/out" 2>&1 &
pid=$!
set +m
cleanup_hooks+=("kill -KILL -$pid 2>/dev/null")

for _ in $(seq 600); do
  grep -q "Ctrl-C stops them" "$TMP/out" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
sed 's/^/    | /' "$TMP/out"
check "the demo reaches its end and keeps serving" grep -q "Ctrl-C stops them" "$TMP/out"
check "publish, mirror and fetch each ran" \
  bash -c 'grep -q "^== 1. cairn publish" "$0" && grep -q "^== 2. cairn mirror" "$0" && grep -c "^fetched /nix/store/" "$0" | grep -qx 3' "$TMP/out"
check "the fetch went through the mirror, which verified what it cached" \
  bash -c 'grep -q "cairn_mirror_nar_misses_total 3" "$0" && grep -q "cairn_mirror_verify_failures_total 0" "$0"' "$TMP/out"

# The printed command, verbatim, in a clean environment (no NIX_CONFIG).
line=$(grep -m1 '^  nix ' "$TMP/out" | sed 's/^  //')
top=$(cat "$D/top")
rc=0
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$TMP/home" bash -c "$line" >"$TMP/copy.log" 2>&1 || rc=$?
sed 's/^/    | /' "$TMP/copy.log"
check "the printed 'nix copy' line works as printed (exit $rc)" test "$rc" = 0
check "  ... and the copied closure is valid for Nix" \
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$TMP/home" \
  nix --extra-experimental-features nix-command path-info --store "$copy" -r "$top"

# Ctrl-C: SIGINT to the whole process group, as a terminal sends it.
kill -INT -- -"$pid"
rc=0
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid" || rc=$?
check "Ctrl-C ends the demo with exit 0 (got $rc)" test "$rc" = 0
check "  ... saying so" grep -q "demo: stopped" "$TMP/out"
# ("[-]" keeps the pattern from matching the command that runs pgrep.)
check "  ... and no server is left running" bash -c '! pgrep -f -- "[-]-port-file $0/" >/dev/null' "$D"
finish
