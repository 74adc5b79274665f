#!/bin/sh
# shm32 - build shm/ and tests/shm32.c with `$CC -m32` and run them: the size
# arithmetic of the snapshot and the ring on a 32-bit size_t (issue 8, item 9).
# Skips (exit 77) where the compiler cannot link a 32-bit program (on Debian
# amd64: apt-get install gcc-multilib).  Environment: TOP_SRCDIR, TOP_BUILDDIR
# (build_config.h), CC.
set -u
src=${TOP_SRCDIR:-.}
bld=${TOP_BUILDDIR:-.}
cc=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/personad-shm32.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

printf 'int main(void) { return sizeof(void *) == 4 ? 0 : 1; }\n' >"$tmp/probe.c"
if ! $cc -m32 -o "$tmp/probe" "$tmp/probe.c" >"$tmp/probe.log" 2>&1 || ! "$tmp/probe"; then
    echo "SKIP: $cc -m32 cannot build and run a 32-bit program (gcc-multilib missing?)"
    sed 's/^/  /' "$tmp/probe.log" | head -5
    exit 77
fi
# The same language and warnings as the shm/ library (-Wconversion included);
# -Wno-psabi: GCC notes that 64-bit atomics in structs got 8-byte alignment on
# i386 in GCC 11, which is what the layouts' static asserts rely on.
if ! $cc -m32 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wconversion -Wno-psabi -Werror \
    -O2 -I"$src" -I"$src/shm" -I"$bld" -o "$tmp/shm32" "$src/tests/shm32.c" "$src/shm/ring.c" \
    "$src/shm/snapshot.c" "$src/shm/shm_map.c" "$src/shm/stats.c" 2>&1; then
    echo "FAIL: the shm library does not build with $cc -m32"
    exit 1
fi
"$tmp/shm32"
