// GEMM throughput per Inception V1 shape through the Swift API (threads, planning, packing
// layout included). Built by run_gemm_bench.sh together with GEMM.swift and Parallel.swift.
// Usage: run_gemm_bench.sh [--batch N] [--threads 1,2] [--kernels avx2,avx512] [--seconds S] [--gather]
//        [--only NAME-SUBSTRING] [--cputime]
// --cputime measures the calling thread's CPU time instead of wall time: with --threads 1 it
// gives the single-core speed even while other processes share the machine.
import CInceptionKernels
import Foundation

struct Shape { let name: String; let m: Int; let k: Int; let n: Int; let window: Bool }
let baseShapes: [Shape] = [
    Shape(name: "Conv2d_1a_7x7", m: 12544, k: 147, n: 64, window: true),
    Shape(name: "Conv2d_2b_1x1", m: 3136, k: 64, n: 64, window: false),
    Shape(name: "Conv2d_2c_3x3", m: 3136, k: 576, n: 192, window: true),
    Shape(name: "Mixed_3b_1x1_64", m: 784, k: 192, n: 64, window: false),
    Shape(name: "Mixed_3b_1x1_96", m: 784, k: 192, n: 96, window: false),
    Shape(name: "Mixed_3b_1x1_16", m: 784, k: 192, n: 16, window: false),
    Shape(name: "Mixed_3b_3x3_128", m: 784, k: 864, n: 128, window: true),
    Shape(name: "Mixed_3b_3x3_32", m: 784, k: 144, n: 32, window: true),
    Shape(name: "Mixed_4b_1x1_192", m: 196, k: 480, n: 192, window: false),
    Shape(name: "Mixed_4f_1x1_256", m: 196, k: 528, n: 256, window: false),
    Shape(name: "Mixed_4b_3x3_208", m: 196, k: 864, n: 208, window: true),
    Shape(name: "Mixed_4f_3x3_320", m: 196, k: 1440, n: 320, window: true),
    Shape(name: "Mixed_5b_1x1_256", m: 49, k: 832, n: 256, window: false),
    Shape(name: "Mixed_5c_1x1_384", m: 49, k: 832, n: 384, window: false),
    Shape(name: "Mixed_5b_3x3_320", m: 49, k: 1440, n: 320, window: true),
    Shape(name: "Mixed_5c_3x3_384", m: 49, k: 1728, n: 384, window: true),
    Shape(name: "Logits", m: 1, k: 1024, n: 1001, window: false),
]

var batch = 1, threadCounts = [1, 2], seconds = 0.3, gather = false, only: String? = nil, cpuTime = false
var kernels: [GEMM.Kernel] = GEMM.Kernel.allCases.filter { $0 != .portable && GEMM.isSupported($0) }
var args = CommandLine.arguments.dropFirst()
while let flag = args.popFirst() {
    switch flag {
    case "--batch": batch = Int(args.popFirst()!)!
    case "--threads": threadCounts = args.popFirst()!.split(separator: ",").map { Int($0)! }
    case "--seconds": seconds = Double(args.popFirst()!)!
    case "--gather": gather = true
    case "--cputime": cpuTime = true  // time on the calling thread's CPU clock: for --threads 1 only
    case "--only": only = args.popFirst()!
    case "--kernels":
        kernels = args.popFirst()!.split(separator: ",").map { name in
            GEMM.Kernel.allCases.first { "\($0)" == name }!
        }
    default: fatalError("unknown flag \(flag)")
    }
}

func now() -> Double {
    var t = timespec()
    clock_gettime(cpuTime ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// Median and best GFLOP/s of `body` over samples of ~2 ms for `seconds`. On a machine shared with
/// other work the best sample approximates the uncontended speed; the median shows the typical one.
func measure(flops: Double, _ body: () -> Void) -> (median: Double, best: Double) {
    body()
    var reps = 0
    let t0 = now()
    while now() - t0 < 0.02 { body(); reps += 1 }
    let inner = max(1, reps / 10)
    var samples: [Double] = []
    let start = now()
    while samples.count < 7 || (now() - start < seconds && samples.count < 1000) {
        let t = now()
        for _ in 0..<inner { body() }
        samples.append((now() - t) / Double(inner))
    }
    samples.sort()
    return (flops / samples[samples.count / 2] / 1e9, flops / samples[0] / 1e9)
}

var header = String(format: "%-18@ %6@ %5@ %5@", "shape" as NSString, "M" as NSString, "K" as NSString, "N" as NSString)
for kernel in kernels { for t in threadCounts { header += String(format: " %15@", "\(kernel) \(t)T" as NSString) } }
print("batch \(batch), \(gather ? "gather variant for windowed convolutions" : "pointer variant"); GFLOP/s median (best)\(cpuTime ? " by thread CPU time" : "")")
print(header)
var totalFlops = 0.0
var totalTime = [String: Double]()
for shape in baseShapes where only.map({ shape.name.contains($0) }) ?? true {
    let m = shape.name == "Logits" ? batch : shape.m * batch, k = shape.k, n = shape.n
    var values = SystemRandomNumberGenerator()
    let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &values) }
    let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &values) }
    let bias = (0..<n).map { _ in Float.random(in: -1...1, using: &values) }
    let packed = GEMM.pack(b, rows: k, columns: n)
    var c = [Float](repeating: 0, count: m * n)
    let flops = 2.0 * Double(m * k * n)
    totalFlops += flops
    var line = String(format: "%-18@ %6d %5d %5d", shape.name as NSString, m, k, n)
    for kernel in kernels {
        GEMM.kernel = kernel
        for t in threadCounts {
            Parallel.threadCount = t
            let r = a.withUnsafeBufferPointer { ap in
                c.withUnsafeMutableBufferPointer { cp in
                    bias.withUnsafeBufferPointer { bp in
                        measure(flops: flops) {
                            if gather && shape.window {
                                let source = ap.baseAddress!
                                let address = Int(bitPattern: source)
                                GEMM.multiply(m: m, gatherRows: { start, count, buffer in
                                    let src = UnsafePointer<Float>(bitPattern: address)!
                                    buffer.update(from: src + start * k, count: count * k)
                                }, b: packed, c: cp.baseAddress!, ldc: n, bias: bp.baseAddress!, relu: true)
                                _ = source
                            } else {
                                GEMM.multiply(m: m, a: ap.baseAddress!, lda: k, b: packed, c: cp.baseAddress!, ldc: n,
                                              bias: bp.baseAddress!, relu: true)
                            }
                        }
                    }
                }
            }
            totalTime["\(kernel) \(t)T", default: 0] += flops / (r.median * 1e9)
            line += String(format: " %6.1f (%6.1f)", r.median, r.best)
        }
    }
    print(line)
}
var footer = String(format: "%-37@", "all shapes (sum of medians)" as NSString)
for kernel in kernels { for t in threadCounts {
    let key = "\(kernel) \(t)T"
    guard let time = totalTime[key] else { continue }
    footer += String(format: " %6.1f %8@", totalFlops / time / 1e9, String(format: "%.2fms", time * 1e3) as NSString)
} }
print(footer)
