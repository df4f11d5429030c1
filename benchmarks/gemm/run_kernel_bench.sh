#!/bin/sh
# Builds the C kernels exactly as SwiftPM does in release (-O2, no -m flags) plus the driver,
# then runs it. Usage: run_kernel_bench.sh [portable|avx2|avx512] [seconds-per-shape]
#
# run_kernel_bench.sh --arm64 [seconds-per-shape] cross-compiles the same sources for arm64
# (the baseline target there: NEON) and runs them under qemu-aarch64, to check the kernels'
# results on arm64 from an x86-64 machine (emulated: the GFLOP/s mean nothing). It needs
#   apt-get install qemu-user libc6-dev-arm64-cross libgcc-12-dev-arm64-cross
# and the Swift toolchain's clang and lld.
set -e
here=$(cd "$(dirname "$0")" && pwd)
src="$here/../../Sources/CInceptionKernels"
out=${TMPDIR:-/tmp}/inception_kernel_bench
if [ "$1" = "--arm64" ]; then
    shift
    gcc_lib=$(ls -d /usr/lib/gcc-cross/aarch64-linux-gnu/* | tail -n 1)
    clang --target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu -fuse-ld=lld -B"$gcc_lib" -L"$gcc_lib" \
        -L/usr/aarch64-linux-gnu/lib -static -O2 -I "$src/include" "$src"/*.c "$here/kernel_bench.c" -lm -lpthread \
        -o "$out-arm64"
    exec qemu-aarch64 "$out-arm64" portable "${1:-0.05}"
fi
clang -O2 -fno-omit-frame-pointer -I "$src/include" "$src"/*.c "$here/kernel_bench.c" -lm -o "$out"
exec "$out" "$@"
