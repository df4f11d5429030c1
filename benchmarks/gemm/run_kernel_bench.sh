#!/bin/sh
# Builds the C kernels exactly as SwiftPM does in release (-O2, no -m flags) plus the driver,
# then runs it. Usage: run_kernel_bench.sh [portable|avx2|avx512] [seconds-per-shape]
set -e
here=$(cd "$(dirname "$0")" && pwd)
src="$here/../../Sources/CInceptionKernels"
out=${TMPDIR:-/tmp}/inception_kernel_bench
clang -O2 -fno-omit-frame-pointer -I "$src/include" "$src"/*.c "$here/kernel_bench.c" -lm -o "$out"
exec "$out" "$@"
