#!/bin/sh
# tests/packaging/shellcheck.sh: every shell script of the tree passes
# ShellCheck: the firmware recipes' init scripts (contrib/buildroot,
# contrib/openwrt), the cross-build and CI scripts, the tests.  Found by their
# #! line, so a new script is checked without being listed here.  Skips (77)
# where ShellCheck is missing (Debian package: shellcheck).  Environment:
# TOP_SRCDIR.
set -u
src=${TOP_SRCDIR:-.}
command -v shellcheck >/dev/null 2>&1 || {
    echo "SKIP: shellcheck not installed (Debian: shellcheck)"
    exit 77
}
cd "$src" || exit 99
scripts=$(find contrib tests .ci -type f -size -200k 2>/dev/null | sort | while read -r f; do
    case "$(head -c 64 "$f" 2>/dev/null | tr -d '\000' | head -n 1)" in
    '#!/bin/sh'* | '#!/bin/bash'* | '#!/usr/bin/env sh'* | '#!/usr/bin/env bash'*) echo "$f" ;;
    esac
done)
[ -n "$scripts" ] || {
    echo "FAIL: no shell scripts found under $src"
    exit 1
}
n=$(echo "$scripts" | wc -l)
echo "shellcheck.sh: $n scripts: $(echo "$scripts" | tr "\n" " ")"
# shellcheck disable=SC2086 # one word per file (no spaces in the tree's names)
shellcheck $scripts || exit 1
echo "PASS: $n scripts"
