# bench/closure-lib.sh - the one benchmark closure (sourced by fetch.sh,
# sync.sh and far.sh, so their figures are about the same paths):
#
#   bench_closure DIR N KIB     # prints the top store path
#
# nix-builds N derivations into the chroot store local?root=DIR/src: each
# refers to the two before it and holds KIB KiB of base64 text in four
# files (compressible like real files, unlike random bytes).  Needs
# NIX_CONFIG set for building without a daemon (the callers set it).
bench_closure() {
  local dir=$1 n=$2 kib=$3
  cat > "$dir/closure.nix" << EOF
let
  mk = i: deps: derivation {
    name = "bench-\${toString i}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    inherit deps;
    args = [ "-c" ''
      mkdir -p \$out/bin \$out/share
      for d in \$deps; do echo "\$d" >> \$out/refs; done
      printf '#!/bin/sh\necho bench-\${toString i}\n' > \$out/bin/bench-\${toString i}
      chmod +x \$out/bin/bench-\${toString i}
      for f in a b c d; do
        head -c \$(( $kib * 1024 * 3 / 16 )) /dev/urandom | base64 > \$out/share/\$f
      done
    '' ];
  };
  go = i: if i == 1 then [ (mk 1 []) ]
          else let prev = go (i - 1);
                   d = [ (builtins.head prev) ] ++ (if i > 2 then [ (builtins.elemAt prev 1) ] else []);
               in [ (mk i d) ] ++ prev;
in builtins.head (go $n)
EOF
  echo "building $n paths..." >&2
  nix-build --store "local?root=$dir/src" --no-out-link --quiet -j2 "$dir/closure.nix"
}
