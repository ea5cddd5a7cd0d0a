#!/usr/bin/env bash
# Install a build into a scratch directory and check what a user gets:
# the program runs and prints the project's version, every man page
# renders without a warning and `man NAME` finds it, systemd accepts the
# units (and finds their man pages), the bash completion loads.
# usage: scripts/check-install.sh BUILDDIR        (CI runs it; needs man-db, systemd)
set -euo pipefail
build=${1:?usage: $0 BUILDDIR}
dest=$(mktemp -d "${TMPDIR:-/tmp}/cairn-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); echo "ok - $*"; }
not_ok() { fails=$((fails + 1)); echo "not ok - $*"; }

meson install -C "$build" --destdir "$dest" >"$dest.log" 2>&1 || { cat "$dest.log"; exit 1; }
rm -f "$dest.log"
info() { meson introspect "$build" "$1" | python3 -c "import json, sys; print(json.load(sys.stdin)$2)"; }
version=$(info --projectinfo "['version']")
prefix=$(meson introspect "$build" --buildoptions | python3 -c \
    "import json, sys; print([o['value'] for o in json.load(sys.stdin) if o['name'] == 'prefix'][0])")
root=$dest$prefix

bin=$root/bin/cairn
if [ "$("$bin" --version)" = "cairn $version" ]; then ok "installed cairn --version says $version"
else not_ok "installed cairn --version: '$("$bin" --version)', want 'cairn $version'"; fi

mandir=$(find "$dest" -type d -name man1 -path '*/man/man1')
for page in cairn cairn-publish cairn-mirror cairn-fetch cairn-challenge cairn-weather \
            cairn-nar cairn-narinfo cairn-key cairn-hash; do
  f=$mandir/$page.1
  if [ ! -f "$f" ]; then not_ok "$page(1) is installed"; continue; fi
  # groff warnings on stderr (--warnings turns them on) for a UTF-8 and an
  # ASCII terminal, 80 columns
  w=$( { MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$f" 2>&1 >/dev/null
         MANWIDTH=80 LC_ALL=C man --warnings -l "$f" 2>&1 >/dev/null; } )
  if [ -z "$w" ]; then ok "$page(1) renders without warnings"
  else not_ok "$page(1) renders without warnings:"; echo "$w" | sed 's/^/#   /'; fi
  # `man NAME` through the man path, and a NAME line that whatis/apropos read
  if MANWIDTH=80 man -M "${mandir%/man1}" "$page" 2>/dev/null | grep -q "^NAME"; then ok "man $page finds it"
  else not_ok "man $page finds it"; fi
  if lexgrog "$f" | grep -q "\"$page - [a-z]"; then ok "$page(1) has a NAME line"
  else not_ok "$page(1) has a NAME line: $(lexgrog "$f")"; fi
done

# systemd checks that ExecStart= exists: verify copies that point at the
# installed program; MANPATH lets it check Documentation=man:... too
units=$(find "$dest" -path '*/systemd/system/*' -type f)
[ -n "$units" ] || not_ok "systemd units are installed"
mkdir "$dest/units"
for u in $units; do
  sed "s|$prefix/bin/cairn|$bin|g" "$u" >"$dest/units/${u##*/}"
done
if out=$(MANPATH=${mandir%/man1} systemd-analyze verify "$dest"/units/* 2>&1) && [ -z "$out" ]; then
  ok "systemd-analyze verify accepts $(cd "$dest/units" && echo *)"
else
  not_ok "systemd-analyze verify accepts the units:"; echo "$out" | sed 's/^/#   /'
fi

comp=$(find "$dest" -path '*/bash-completion/completions/cairn' -type f)
if [ -n "$comp" ] && bash -c ". '$comp' && complete -p cairn" >/dev/null; then ok "bash completion loads"
else not_ok "bash completion loads"; fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
