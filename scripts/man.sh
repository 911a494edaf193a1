#!/usr/bin/env bash
# scripts/man.sh BIN INCLUDE OUT: the manual page runbook(1), made by
# help2man from the binary's own --help and --version, so that the page
# and the help cannot disagree. help2man (Debian's) is the tool because the
# help text is the one source: scdoc or pandoc would need a second copy of
# it in their own markup. Each command's help (`runbook help CMD`) becomes
# a section after the overview; INCLUDE adds what --help does not say
# (files, environment, see also).
set -eu
bin=$1 include=$2 out=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$include" "$tmp/runbook.h2m"
{
  echo
  echo "[COMMANDS]"
  for cmd in run plan check list test world version completion; do
    echo ".SS \"runbook $cmd\""
    echo ".nf"
    # the usage lines and the text as --help prints them; a leading dot or
    # quote would read as a roff request, backslashes as escapes
    "$bin" help "$cmd" | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
    echo ".fi"
  done
} >>"$tmp/runbook.h2m"
help2man --no-info --no-discard-stderr --section=1 \
  --name="run operational runbooks written in Lua, with rehearsal" \
  --include="$tmp/runbook.h2m" --output="$out.tmp" "$bin"
mv "$out.tmp" "$out"
