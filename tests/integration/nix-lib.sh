# shellcheck shell=bash
# Helpers for integration tests that need real Nix store paths, binary caches
# and substitution: build a closure, `nix copy` it to a file:// cache, fetch it
# back from an HTTP cache.  Source it after lib.sh:
#     . "$SRCDIR/tests/integration/lib.sh"
#     . "$SRCDIR/tests/integration/nix-lib.sh"
#     nix_lib_init                      # skips (77) when Nix is missing
#     store=$TMP/store1
#     top=$(nix_build_closure "$store" 5)
#     nix_gen_key test-1 "$TMP/key"     # -> $TMP/key.sec, $TMP/key.pub
#     nix_copy_to_file "$store" "$top" "$TMP/cache" zstd "$TMP/key.sec"
#     nix_http_serve "$TMP/cache"       # sets NIX_HTTP_PORT
#     nix_copy_from "http://127.0.0.1:$NIX_HTTP_PORT" "$TMP/store2" "$top" "$(cat "$TMP/key.pub")"
#     nix_substitute "http://127.0.0.1:$NIX_HTTP_PORT" "$TMP/store3" "$top" "$(cat "$TMP/key.pub")"
#
# How the stores work (Nix 2.8 as root, no daemon):
#   Every store here is a "chroot store", `local?root=DIR`: its paths are
#   /nix/store/... (so they are substitutable from any cache and hash like the
#   real thing) but the files live under DIR/nix/store and the database under
#   DIR/nix/var/nix.  Nothing is written to the real /nix, nothing outlives
#   $TMP, and two tests never see each other's paths.
#
# Pitfalls met on the way:
#   - Building into a chroot store forces the build sandbox, whatever
#     `sandbox = false` says (Nix refuses to build a diverted store without
#     it).  The sandbox is empty, so `/bin/sh` is "No such file or directory"
#     unless `sandbox-paths = /bin /usr /lib /lib64` bind-mounts the host's
#     (Debian's /bin, /lib, /lib64 are symlinks into /usr, so /usr is needed
#     too).  The sandbox needs mount (and pid, ipc,
#     uts) namespaces: fine as root on this VM; an unprivileged container
#     would make every build fail (not tried here).
#   - Builders see only what the derivation passes: PATH must be set, $out
#     must be created, and a reference exists only if the output contains the
#     dependency's /nix/store path as text (Nix scans for the hash part).
#   - The narinfo disk cache: Nix caches narinfo lookups of http(s) caches
#     (positive for 30 days, negative for 1 hour by default) in
#     ~/.cache/nix/binary-cache-v6.sqlite, keyed by cache URL.  A test that
#     reuses a port, or serves a path it first said was missing, would get
#     stale answers.  nix_lib_init points XDG_CACHE_HOME into $TMP and sets
#     both TTLs to 0.  file:// caches are not disk-cached.
#   - `substituters` defaults to https://cache.nixos.org: empty it, or
#     nix-build tries the network before building.  `nix copy --from URL`
#     does not need URL in `substituters`.
#   - Signatures: `require-sigs` is true by default and `trusted-public-keys`
#     holds only cache.nixos.org's key, so `nix copy --from` a cache signed by
#     our key fails with "lacks a valid signature" until the key is passed as
#     --option trusted-public-keys.  Passing it replaces the default list.
#   - `nix copy --to file://DIR?secret-key=F` signs the narinfo; F is a
#     `NAME:base64` secret key file.  Make it with `nix key generate-secret`:
#     `nix-store --generate-binary-cache-key` opens (and creates) the real
#     /nix/var/nix/db although it needs no store.  Compression: none, xz
#     (the default), bzip2, zstd, br.
#   - Store files are read-only (0444/0555); root can still remove them, but
#     the cleanup hook makes them writable first so a non-root run is clean.
#   - Nix 2.8 needs `experimental-features = nix-command` for `nix copy`,
#     `nix path-info`, `nix store verify`.

: "${TMP:?source lib.sh first}"

# Settings for every Nix command run by these helpers (and the test).
nix_lib_init() {
  skip_unless nix nix-build nix-store python3
  export NIX_CONFIG="sandbox = false
build-users-group =
substituters =
narinfo-cache-negative-ttl = 0
narinfo-cache-positive-ttl = 0
experimental-features = nix-command
sandbox-paths = /bin /usr /lib /lib64
require-sigs = true
"
  export XDG_CACHE_HOME=$TMP/nix-xdg/cache XDG_CONFIG_HOME=$TMP/nix-xdg/config \
    XDG_DATA_HOME=$TMP/nix-xdg/data XDG_STATE_HOME=$TMP/nix-xdg/state
  # Anything a helper leaves read-only must still be removable.
  cleanup_hooks+=("chmod -R u+w '$TMP' 2>/dev/null")
}

# nix_store_uri ROOT: the store URI of the chroot store at ROOT
nix_store_uri() { echo "local?root=$1"; }

# nix_build_closure ROOT N [NAME [BYTES]]: build N >= 1 derivations into the
# store at ROOT and print the top one's store path.  Path i (1..N) is
# NAME-i, holds bin/NAME-i (an executable script), a file of BYTES (default
# 0) bytes of random data (so compression has real work; it differs between
# two builds of the same path, as with a non-reproducible package), and
# refers to paths i-1 and i-2; the top path NAME-N has all N in its closure.
# NAME defaults to "p"; different NAMEs give disjoint closures.
nix_build_closure() {
  local root=$1 n=$2 name=${3:-p} bytes=${4:-0} expr=$TMP/closure-$RANDOM.nix
  [ "$n" -ge 1 ] || { echo "nix_build_closure: N must be >= 1" >&2; return 2; }
  cat > "$expr" <<EOF
let
  mk = i: deps: derivation {
    name = "$name-\${toString i}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    deps = deps;
    args = [ "-c" ''
      mkdir -p \$out/bin
      echo "$name-\${toString i}" > \$out/name
      for d in \$deps; do echo "\$d" >> \$out/refs; done
      printf '#!/bin/sh\necho $name-\${toString i}\n' > \$out/bin/$name-\${toString i}
      chmod +x \$out/bin/$name-\${toString i}
      head -c $bytes /dev/urandom > \$out/data
    '' ];
  };
  go = i: if i == 1 then [ (mk 1 []) ]
          else let prev = go (i - 1);
                   d = [ (builtins.head prev) ] ++ (if i > 2 then [ (builtins.elemAt prev 1) ] else []);
               in [ (mk i d) ] ++ prev;
in builtins.head (go $n)
EOF
  nix-build --store "$(nix_store_uri "$root")" --no-out-link --quiet "$expr"
}

# nix_closure ROOT PATH: the closure of PATH in the store at ROOT, one a line
nix_closure() { nix path-info --store "$(nix_store_uri "$1")" -r "$2"; }

# nix_path_info ROOT PATH...: Nix's JSON about PATHs (narHash, narSize,
# references, signatures...) in the store at ROOT, for comparing with cairn
nix_path_info() { local root=$1; shift; nix path-info --store "$(nix_store_uri "$root")" --json "$@"; }

# nix_has_paths ROOT PATH...: each PATH is valid in the store at ROOT, its
# files exist under ROOT, and its contents still match its NAR hash
nix_has_paths() {
  local root=$1 p; shift
  for p in "$@"; do
    [ -e "$root$p" ] || { echo "nix_has_paths: $root$p missing" >&2; return 1; }
  done
  nix path-info --store "$(nix_store_uri "$root")" "$@" > /dev/null &&
    nix store verify --quiet --store "$(nix_store_uri "$root")" --no-trust "$@"
}

# nix_gen_key NAME PREFIX: a signing key pair, PREFIX.sec and PREFIX.pub
nix_gen_key() {
  nix key generate-secret --key-name "$1" > "$2.sec" &&
    nix key convert-secret-to-public < "$2.sec" > "$2.pub"
}

# nix_copy_to_file ROOT PATH DIR [COMPRESSION [SECRET_KEY_FILE]]: copy the
# closure of PATH from the store at ROOT into the binary cache directory DIR
# (created), compressed with COMPRESSION (default xz), signed with the key
nix_copy_to_file() {
  local root=$1 path=$2 dir=$3 comp=${4:-xz} key=${5:-} url
  url="file://$dir?compression=$comp"
  [ -z "$key" ] || url="$url&secret-key=$key"
  nix copy --quiet --from "$(nix_store_uri "$root")" --to "$url" "$path"
}

# nix_copy_from URL ROOT PATH [TRUSTED_KEY...]: substitute the closure of PATH
# from the binary cache at URL (http://, file://...) into the store at ROOT,
# accepting only narinfos signed by one of the TRUSTED_KEYs (NAME:base64);
# with no key, signatures are not checked at all.
nix_copy_from() {
  local url=$1 root=$2 path=$3; shift 3
  local sig=(--no-check-sigs)
  [ "$#" -eq 0 ] || sig=(--option trusted-public-keys "$*")
  nix copy --quiet "${sig[@]}" --from "$url" --to "$(nix_store_uri "$root")" "$path"
}

# nix_substitute URL ROOT PATH [TRUSTED_KEY...]: make PATH (and its closure)
# valid in the store at ROOT the way a Nix client does, with URL as its only
# substituter: `nix-store --realise` reads URL/nix-cache-info (StoreDir must
# be /nix/store), then narinfos and NARs, and checks signatures against the
# TRUSTED_KEYs (none given: nothing is trusted, so a signed cache is refused).
nix_substitute() {
  local url=$1 root=$2 path=$3; shift 3
  # (its warning about --add-root is noise: the store goes away with $TMP)
  nix-store --store "$(nix_store_uri "$root")" --realise "$path" --quiet \
    --option substituters "$url" --option trusted-public-keys "$*" \
    2> >(grep -v "did not specify '--add-root'" >&2) > /dev/null
}

# nix_http_serve DIR: serve DIR on 127.0.0.1 with a plain static HTTP server
# and set NIX_HTTP_PORT to its port; it is stopped when the test exits.  Not
# in $(...): the stop hook must be registered in the test's own shell.  For checking what Nix
# itself does with a cache; cairn's own server is tested on its own.
nix_http_serve() {
  local dir=$1 portfile=$TMP/http-port-$RANDOM pid
  python3 - "$dir" "$portfile" > "$TMP/http-$RANDOM.log" 2>&1 <<'EOF' &
import functools, http.server, os, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
tmp = sys.argv[2] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, sys.argv[2])
srv.serve_forever()
EOF
  pid=$!
  cleanup_hooks+=("kill $pid 2>/dev/null")
  for _ in $(seq 100); do
    [ -s "$portfile" ] && { NIX_HTTP_PORT=$(cat "$portfile"); return 0; }
    sleep 0.05
  done
  echo "nix_http_serve: server did not start" >&2
  return 1
}
