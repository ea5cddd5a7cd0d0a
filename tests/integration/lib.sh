# Shared helpers for integration tests.  Source it: . "$SRCDIR/tests/integration/lib.sh"
set -euo pipefail

: "${CAIRN:?CAIRN must point at the cairn binary}"
: "${SRCDIR:?}"
: "${VECTORS_DIR:=$SRCDIR/tests/vectors}"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-test.XXXXXX")
cleanup_hooks=()
cleanup() {
  local h
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

passes=0
fails=0

ok() { passes=$((passes + 1)); echo "ok - $*"; }
not_ok() { fails=$((fails + 1)); echo "not ok - $*"; }

# check DESCRIPTION COMMAND...: passes when the command succeeds
check() {
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# skip_unless TOOL...: exit 77 (skipped) when a tool is missing, but fail in CI
skip_unless() {
  local t
  for t in "$@"; do
    if ! command -v "$t" >/dev/null 2>&1; then
      if [ "${CI:-}" = true ]; then
        echo "error: $t is required in CI" >&2
        exit 1
      fi
      echo "skip: $t not found"
      exit 77
    fi
  done
}

# Nix without a daemon, as root, with no network substituters.
nix_env() {
  export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
narinfo-cache-negative-ttl = 0
experimental-features = nix-command
"
}

finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}
