import Foundation
import XCTest
import InceptionCore

/// A reproducible source of test values in -1...1 (xorshift64*).
private struct Values {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        let bits = (state &* 0x2545_F491_4F6C_DD1D) >> 40  // 24 random bits
        return Float(bits) / Float(1 << 23) - 1
    }
    mutating func array(_ count: Int) -> [Float] { (0..<count).map { _ in next() } }
}

/// One multiplication problem with its inputs, laid out with the given strides.
/// Padding of A (columns ≥ K) is NaN, so reading it would poison the result; padding of C
/// (columns ≥ N) holds a sentinel that must survive.
private struct Problem {
    static let sentinel: Float = -12345.5
    let m: Int, k: Int, n: Int, lda: Int, ldc: Int
    let a: [Float]        // m × lda
    let b: [Float]        // k × n, row-major
    let bias: [Float]?
    let relu: Bool
    let packed: PackedMatrix

    init(m: Int, k: Int, n: Int, lda: Int? = nil, ldc: Int? = nil, bias: Bool = true, relu: Bool = false, seed: UInt64 = 1) {
        var values = Values(seed: seed &+ UInt64(m * 1_000_003 + k * 1_009 + n))
        self.m = m; self.k = k; self.n = n
        self.lda = lda ?? k; self.ldc = ldc ?? n
        var a = [Float](repeating: .nan, count: m * self.lda)
        for i in 0..<m { for p in 0..<k { a[i * self.lda + p] = values.next() } }
        self.a = a
        b = values.array(k * n)
        self.bias = bias ? values.array(n) : nil
        self.relu = relu
        packed = GEMM.pack(b, rows: k, columns: n)
    }

    /// C filled with the sentinel.
    func emptyC() -> [Float] { [Float](repeating: Problem.sentinel, count: m * ldc) }

    /// The fast product through the pointer variant.
    func multiply() -> [Float] {
        var c = emptyC()
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                withBias { bias in
                    GEMM.multiply(m: m, a: a.baseAddress!, lda: lda, b: packed, c: c.baseAddress!, ldc: ldc,
                                  bias: bias, relu: relu)
                }
            }
        }
        return c
    }

    /// The fast product through the gather variant (rows copied out of `a`).
    func multiplyGathering() -> [Float] {
        var c = emptyC()
        let a = self.a, k = self.k, lda = self.lda
        c.withUnsafeMutableBufferPointer { c in
            withBias { bias in
                GEMM.multiply(m: m, gatherRows: { start, count, buffer in
                    for r in 0..<count {
                        for p in 0..<k { buffer[r * k + p] = a[(start + r) * lda + p] }
                    }
                }, b: packed, c: c.baseAddress!, ldc: ldc, bias: bias, relu: relu)
            }
        }
        return c
    }

    /// `GEMM.referenceMultiply`.
    func referenceMultiply() -> [Float] {
        var c = emptyC()
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                withBias { bias in
                    GEMM.referenceMultiply(m: m, a: a.baseAddress!, lda: lda, b: packed, c: c.baseAddress!, ldc: ldc,
                                           bias: bias, relu: relu)
                }
            }
        }
        return c
    }

    private func withBias<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        if let bias { return bias.withUnsafeBufferPointer { body($0.baseAddress!) } }
        return body(nil)
    }

    /// Checks `c` against a float64 product of the unpacked inputs: each element within 1e-4 of
    /// the sum of magnitudes of its terms (float32 rounding), sentinels untouched.
    func verify(_ c: [Float], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(c.count, m * ldc, file: file, line: line)
        var failures = 0
        for i in 0..<m {
            for j in 0..<ldc {
                let got = c[i * ldc + j]
                if j >= n {
                    if got != Problem.sentinel, failures < 5 {
                        failures += 1
                        XCTFail("\(label): C[\(i), \(j)] beyond N = \(n) was overwritten with \(got)", file: file, line: line)
                    }
                    continue
                }
                var sum = Double(bias?[j] ?? 0), magnitude = abs(sum)
                for p in 0..<k {
                    let term = Double(a[i * lda + p]) * Double(b[p * n + j])
                    sum += term; magnitude += abs(term)
                }
                if relu { sum = max(sum, 0) }
                let tolerance = 1e-4 * magnitude + 1e-30
                if !(abs(Double(got) - sum) <= tolerance), failures < 5 {
                    failures += 1
                    XCTFail("\(label): C[\(i), \(j)] = \(got), expected \(sum) ± \(tolerance)", file: file, line: line)
                }
            }
        }
    }

    var label: String { "M=\(m) K=\(k) N=\(n) lda=\(lda) ldc=\(ldc) bias=\(bias != nil) relu=\(relu)" }
}

/// Runs `body` with `kernel` selected (skipping kernels this CPU lacks), restoring the previous one.
func withKernel(_ kernel: GEMM.Kernel, _ body: () throws -> Void) rethrows {
    guard GEMM.isSupported(kernel) else { return }
    let saved = GEMM.kernel
    GEMM.kernel = kernel
    defer { GEMM.kernel = saved }
    XCTAssertEqual(GEMM.kernel, kernel)
    try body()
}

/// Runs `body` with `Parallel.threadCount = threads`, restoring the previous value.
func withThreads(_ threads: Int, _ body: () throws -> Void) rethrows {
    let saved = Parallel.threadCount
    Parallel.threadCount = threads
    defer { Parallel.threadCount = saved }
    try body()
}

final class GEMMTests: XCTestCase {
    private static let edgeSizes = [1, 5, 6, 7, 15, 16, 17, 33]

    /// Every M, N, K in `edgeSizes`, bias and ReLU alternating, for one kernel.
    private func checkEdgeShapes(kernel: GEMM.Kernel) {
        withKernel(kernel) {
            var index = 0
            for m in Self.edgeSizes {
                for n in Self.edgeSizes {
                    for k in Self.edgeSizes {
                        let problem = Problem(m: m, k: k, n: n, bias: index % 2 == 0, relu: index % 3 == 0)
                        problem.verify(problem.multiply(), "\(kernel) \(problem.label)")
                        index += 1
                    }
                }
            }
        }
    }

    func testMultiplyMatchesFloat64ProductOnEdgeShapesWithTheDefaultKernel() {
        checkEdgeShapes(kernel: GEMM.kernel)
    }

    func testPortableKernelMatchesFloat64ProductOnEdgeShapes() {
        checkEdgeShapes(kernel: .portable)
    }

    func testAVX2KernelMatchesFloat64ProductOnEdgeShapes() throws {
        try XCTSkipUnless(GEMM.isSupported(.avx2), "CPU lacks AVX2+FMA")
        checkEdgeShapes(kernel: .avx2)
    }

    func testAVX512KernelMatchesFloat64ProductOnEdgeShapes() throws {
        try XCTSkipUnless(GEMM.isSupported(.avx512), "CPU lacks AVX-512")
        checkEdgeShapes(kernel: .avx512)
    }

    func testBiasAndReluCombinationsMatchFloat64Product() {
        for bias in [false, true] {
            for relu in [false, true] {
                let problem = Problem(m: 37, k: 29, n: 45, bias: bias, relu: relu)
                problem.verify(problem.multiply(), problem.label)
            }
        }
    }

    func testColumnsOfCBeyondNAreNeverWritten() {
        for kernel in GEMM.Kernel.allCases {
            withKernel(kernel) {
                for n in [1, 7, 16, 17, 33, 40] {
                    let problem = Problem(m: 25, k: 19, n: n, ldc: n + 9, relu: true)
                    problem.verify(problem.multiply(), "\(kernel) \(problem.label)")
                    problem.verify(problem.multiplyGathering(), "\(kernel) gather \(problem.label)")
                }
            }
        }
    }

    func testRowStrideOfALargerThanKIsHonoured() {
        for kernel in GEMM.Kernel.allCases {
            withKernel(kernel) {
                let problem = Problem(m: 31, k: 17, n: 35, lda: 24)
                problem.verify(problem.multiply(), "\(kernel) \(problem.label)")
            }
        }
    }

    func testDeepKSpanningSeveralCacheBlocksAppliesBiasOnceAndReluAtTheEnd() {
        for kernel in GEMM.Kernel.allCases {
            withKernel(kernel) {
                for k in [255, 257, 600, 1001] {
                    let problem = Problem(m: 29, k: k, n: 37, ldc: 41, relu: true)
                    problem.verify(problem.multiply(), "\(kernel) \(problem.label)")
                }
            }
        }
    }

    func testEmptyKGivesBiasThroughRelu() {
        let problem = Problem(m: 7, k: 0, n: 19, ldc: 21, relu: true)
        problem.verify(problem.multiply(), problem.label)
        problem.verify(problem.multiplyGathering(), "gather " + problem.label)
    }

    func testMultiplyMatchesReferenceMultiply() {
        let problem = Problem(m: 50, k: 70, n: 90, lda: 75, ldc: 100, relu: true)
        let fast = problem.multiply(), reference = problem.referenceMultiply()
        problem.verify(reference, "reference " + problem.label)
        var worst: Float = 0, scale: Float = 0
        for (x, y) in zip(fast, reference) { worst = max(worst, abs(x - y)); scale = max(scale, abs(y)) }
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale)
    }

    func testLargeShapesMatchFloat64ProductWithOneAndTwoThreads() {
        for threads in [1, 2] {
            withThreads(threads) {
                for (m, k, n) in [(400, 147, 64), (49, 832, 384), (1, 1024, 1001), (196, 300, 80)] {
                    let problem = Problem(m: m, k: k, n: n, ldc: n + 3, relu: true)
                    problem.verify(problem.multiply(), "threads=\(threads) \(problem.label)")
                }
            }
        }
    }

    func testGatherVariantEqualsPointerVariant() {
        // M from one row to many gather blocks, K deep enough for small blocks.
        for (m, k, n) in [(1, 9, 5), (13, 27, 17), (49, 1440, 48), (300, 576, 40), (1000, 64, 33)] {
            for threads in [1, 2] {
                withThreads(threads) {
                    let problem = Problem(m: m, k: k, n: n, ldc: n + 5, relu: true)
                    XCTAssertEqual(problem.multiplyGathering(), problem.multiply(),
                                   "threads=\(threads) \(problem.label)")
                }
            }
        }
    }

    func testResultsAreIdenticalForOneTwoAndThreeThreads() {
        let shapes = [(12544 / 16, 147, 64), (49, 1728, 384), (196, 480, 192), (1, 1024, 1001), (97, 33, 17),
                      (392, 832, 112), (25, 300, 1001), (11, 500, 70)]
        for (m, k, n) in shapes {
            let problem = Problem(m: m, k: k, n: n, ldc: n + 1)
            var one: [Float] = []
            withThreads(1) { one = problem.multiply() }
            for threads in [2, 3] {
                var many: [Float] = []
                withThreads(threads) { many = problem.multiply() }
                XCTAssertEqual(one, many, "threads=\(threads) \(problem.label)")
            }
        }
    }

    func testPortableKernelAgreesWithAVX2Kernel() throws {
        try XCTSkipUnless(GEMM.isSupported(.avx2), "CPU lacks AVX2+FMA")
        let problem = Problem(m: 123, k: 300, n: 70, ldc: 75, relu: true)
        var portable: [Float] = [], avx2: [Float] = []
        withKernel(.portable) { portable = problem.multiply() }
        withKernel(.avx2) { avx2 = problem.multiply() }
        var worst: Float = 0, scale: Float = 0
        for (x, y) in zip(portable, avx2) { worst = max(worst, abs(x - y)); scale = max(scale, abs(y)) }
        XCTAssertLessThanOrEqual(worst, 1e-5 * scale)
    }

    func testAVX512KernelAgreesWithAVX2Kernel() throws {
        try XCTSkipUnless(GEMM.isSupported(.avx512), "CPU lacks AVX-512")
        let problem = Problem(m: 123, k: 300, n: 70, ldc: 75, relu: true)
        var avx512: [Float] = [], avx2: [Float] = []
        withKernel(.avx512) { avx512 = problem.multiply() }
        withKernel(.avx2) { avx2 = problem.multiply() }
        var worst: Float = 0, scale: Float = 0
        for (x, y) in zip(avx512, avx2) { worst = max(worst, abs(x - y)); scale = max(scale, abs(y)) }
        XCTAssertLessThanOrEqual(worst, 1e-5 * scale)
    }

    func testSelectingAnUnsupportedKernelFallsBackToASupportedOne() {
        let saved = GEMM.kernel
        defer { GEMM.kernel = saved }
        GEMM.kernel = .avx512
        XCTAssertTrue(GEMM.isSupported(GEMM.kernel))
        GEMM.kernel = .portable
        XCTAssertEqual(GEMM.kernel, .portable)
    }

    func testZeroColumnsWritesNothing() {
        let problem = Problem(m: 3, k: 5, n: 0)
        XCTAssertEqual(problem.multiply(), [])
    }
}

/// Counters shared by test threads that each write their own elements.
private final class Counts: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int>
    init(_ count: Int) {
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
    }
    deinit { pointer.deallocate() }
}

final class ParallelTests: XCTestCase {
    func testForEachVisitsEveryIndexExactlyOnce() {
        for threads in [1, 2, 3] {
            withThreads(threads) {
                for count in [0, 1, 2, 7, 1000] {
                    let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
                    hits.initialize(repeating: 0, count: max(count, 1))
                    defer { hits.deallocate() }
                    Parallel.forEach(count: count) { hits[$0] += 1 }
                    XCTAssertEqual((0..<count).filter { hits[$0] != 1 }, [], "threads=\(threads) count=\(count)")
                }
            }
        }
    }

    /// The caller claims indices from the front and the worker from the back, so each runs one
    /// contiguous part (locality between consecutive loops over the same rows; see parallel.c).
    func testCallerRunsALeadingRunOfIndicesAndTheWorkerTheRest() {
        withThreads(2) {
            for _ in 0..<20 {
                let count = 400
                let byCaller = UnsafeMutablePointer<Bool>.allocate(capacity: count)
                byCaller.initialize(repeating: false, count: count)
                defer { byCaller.deallocate() }
                let caller = pthread_self()
                Parallel.forEach(count: count) { i in
                    byCaller[i] = pthread_equal(pthread_self(), caller) != 0
                    var x = 0.0
                    for k in 0..<200 { x += Double(k) }  // a little work, so the worker joins
                    if x < 0 { print(x) }
                }
                let lead = (0..<count).prefix { byCaller[$0] }.count
                XCTAssertEqual(Array((lead..<count).filter { byCaller[$0] }.prefix(8)), [], "caller ran indices after the worker's first")
            }
        }
    }

    func testNestedForEachCompletesAndVisitsEveryPair() {
        withThreads(2) {
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: 64)
            hits.initialize(repeating: 0, count: 64)
            defer { hits.deallocate() }
            Parallel.forEach(count: 8) { i in
                Parallel.forEach(count: 8) { j in hits[i * 8 + j] += 1 }
            }
            XCTAssertEqual((0..<64).filter { hits[$0] != 1 }, [])
        }
    }

    func testForEachFromSeveralThreadsAtOnceCompletes() {
        withThreads(2) {
            let results = Counts(400)
            DispatchQueue.concurrentPerform(iterations: 4) { caller in
                for _ in 0..<50 {
                    Parallel.forEach(count: 100) { results.pointer[caller * 100 + $0] += 1 }
                }
            }
            XCTAssertEqual((0..<400).filter { results.pointer[$0] != 50 }, [])
        }
    }

    func testThreadCountDefaultsToActiveProcessorsAndCanBeSet() {
        XCTAssertGreaterThanOrEqual(Parallel.threadCount, 1)
        withThreads(3) { XCTAssertEqual(Parallel.threadCount, 3) }
    }
}
