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

# <errno.h> needs the kernel's <asm/errno.h>.  Debian's gcc-multilib is only
# the link /usr/include/asm -> x86_64-linux-gnu/asm, and it conflicts with the
# cross compilers (contrib/cross/build): without it, the same link in a
# private include dir (the x86 uapi headers serve -m32 as well).
printf '#include <errno.h>\nint main(void) { return sizeof(void *) == 4 && errno == 0 ? 0 : 1; }\n' \
    >"$tmp/probe.c"
m32="-m32"
if ! $cc $m32 -o "$tmp/probe" "$tmp/probe.c" >/dev/null 2>&1 && [ -d /usr/include/x86_64-linux-gnu/asm ]; then
    mkdir "$tmp/inc" && ln -s /usr/include/x86_64-linux-gnu/asm "$tmp/inc/asm"
    m32="-m32 -idirafter $tmp/inc"
fi
# shellcheck disable=SC2086 # $m32: several words
if ! $cc $m32 -o "$tmp/probe" "$tmp/probe.c" >"$tmp/probe.log" 2>&1 || ! "$tmp/probe"; then
    echo "SKIP: $cc -m32 cannot build and run a 32-bit program (gcc-multilib missing?)"
    sed 's/^/  /' "$tmp/probe.log" | head -5
    exit 77
fi
# The same language and warnings as the shm/ library (-Wconversion included);
# -Wno-psabi: GCC notes that 64-bit atomics in structs got 8-byte alignment on
# i386 in GCC 11, which is what the layouts' static asserts rely on.
# shellcheck disable=SC2086
if ! $cc $m32 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wconversion -Wno-psabi -Werror \
    -O2 -I"$src" -I"$src/shm" -I"$bld" -o "$tmp/shm32" "$src/tests/shm32.c" "$src/shm/ring.c" \
    "$src/shm/snapshot.c" "$src/shm/shm_map.c" "$src/shm/stats.c" 2>&1; then
    echo "FAIL: the shm library does not build with $cc -m32"
    exit 1
fi
"$tmp/shm32"
