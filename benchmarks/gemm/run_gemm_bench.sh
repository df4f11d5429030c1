#!/bin/sh
# Builds the GEMM benchmark (GEMMBenchmark.swift + InceptionCore's GEMM.swift and Parallel.swift +
# the CInceptionKernels C sources, compiled as SwiftPM compiles them in release: -O2, no -m flags)
# and runs it. No Package.swift target needed. Arguments are passed to the benchmark, e.g.
#   benchmarks/gemm/run_gemm_bench.sh --threads 1,2 --kernels avx2,avx512 --batch 1 [--gather]
set -e
here=$(cd "$(dirname "$0")" && pwd)
root="$here/../.."
src="$root/Sources/CInceptionKernels"
out=${TMPDIR:-/tmp}/inception_gemm_bench
mkdir -p "$out/include"
cp "$src"/include/*.h "$out/include/"
printf 'module CInceptionKernels {\n  header "inception_kernels.h"\n  export *\n}\n' > "$out/include/module.modulemap"
for f in "$src"/*.c; do
  clang -O2 -fno-omit-frame-pointer -I "$src/include" -c "$f" -o "$out/$(basename "$f").o"
done
cp "$here/GEMMBenchmark.swift" "$out/main.swift"
swiftc -O -I "$out/include" "$out/main.swift" "$root/Sources/InceptionCore/GEMM.swift" \
  "$root/Sources/InceptionCore/Parallel.swift" "$out"/*.c.o -o "$out/gemm_bench"
exec "$out/gemm_bench" "$@"
