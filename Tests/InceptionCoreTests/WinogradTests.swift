import Foundation
@testable import InceptionCore
import XCTest

/// Winograd F(2×2, 3×3) and F(4×4, 3×3) against the seven-loop direct convolution.
///
/// Tolerance. Both sides round in float32 (ε = 2⁻²³ ≈ 1.2e-7): the reference sums 9·CI products
/// in one order; the Winograd path rounds in the input transform (sums of 4 / up to 36 inputs
/// with coefficients up to 1 / 25), in the transformed weights (G g Gᵀ computed in double, rounded
/// once), in the CI-long dot products of the GEMMs and in the output transform (coefficients up
/// to 1 / 64). Each of those errors is a small multiple of ε times the magnitudes involved, and
/// all of them are bounded by the output's absolute sum
///     S = |bias| + Σ_taps Σ_ci |x|·|w|     (the same convolution on absolute values)
/// times constants that grow with the sizes of the transform coefficients (Barabasz et al.,
/// "Error analysis and improving the accuracy of Winograd convolution", 2020): small for F(2×2),
/// whose matrices hold 0, ±½, ±1, one to two orders larger for F(4×4). So each output is
/// checked as |ours − reference| ≤ tol·S. Observed maxima over the cases below and every kernel
/// family: 3.1e-7·S (2.6 ε) for F(2×2), 6.2e-6·S (52 ε) for F(4×4). The tolerances, 64 ε and
/// 1024 ε, leave a 20× margin for other data and compilers, yet stay far below what any indexing
/// mistake does: a wrong tap, tile, channel or edge moves outputs by whole terms |x·w|, which are
/// about S/(9·CI + 1) ≥ 2.7e-3·S here (CI ≤ 40), over 20× the F(4×4) tolerance.
final class WinogradTests: XCTestCase {
    private struct Case: CustomStringConvertible {
        var n: Int, h: Int, w: Int, ci: Int, co: Int
        var padding: Padding = .same
        var bias = true
        var relu = true
        /// Extra channels before and after the output slice (channelStride = co + before + after).
        var before = 0, after = 0
        var description: String {
            "n\(n) \(h)x\(w) \(ci)->\(co) \(padding) bias:\(bias) relu:\(relu) slice:+\(before)/+\(after)"
        }
    }

    /// Sizes: 1x1 spatial, odd and even H/W, the network's 7x7 / 14x14 / 28x28, channel counts off
    /// multiples of 8 and 16, batch 1 and 3, slices of a wider output, every padding a 3x3
    /// stride-1 window can have (including one so wide whole tiles read only padding), and
    /// enough tiles for both the per-thread-block and the split schedules.
    private let cases: [Case] = [
        Case(n: 1, h: 1, w: 1, ci: 5, co: 7),
        Case(n: 3, h: 1, w: 1, ci: 17, co: 16, bias: false, relu: false),
        Case(n: 1, h: 7, w: 7, ci: 32, co: 48, before: 3, after: 5),
        Case(n: 3, h: 7, w: 7, ci: 24, co: 40, relu: false),
        Case(n: 1, h: 14, w: 14, ci: 19, co: 33, padding: .symmetric(1), before: 16, after: 1),
        Case(n: 3, h: 14, w: 14, ci: 16, co: 64, bias: false),
        Case(n: 1, h: 28, w: 28, ci: 12, co: 20),
        Case(n: 2, h: 9, w: 13, ci: 8, co: 17, padding: .valid),
        Case(n: 1, h: 10, w: 5, ci: 3, co: 5, padding: .symmetric(2), before: 2, after: 0),
        Case(n: 1, h: 6, w: 11, ci: 33, co: 31, padding: .symmetricCeil(1), relu: false),
        Case(n: 3, h: 30, w: 31, ci: 40, co: 72, before: 4, after: 4),
    ]

    private static let sentinel: Float = -7777.25

    /// Output of `conv` on `input` through the raw-pointer entry point, in a buffer of
    /// `before + co + after` channels per pixel; checks the other channels are untouched and
    /// returns the slice.
    private func run(_ conv: Convolution2D, _ input: Tensor, _ c: Case, _ algorithm: Convolution2D.Algorithm,
                     file: StaticString = #filePath, line: UInt = #line) -> Tensor {
        let shape = conv.outputShape(for: input.shape)!
        let pixels = shape[0] * shape[1] * shape[2]
        let stride = c.before + c.co + c.after
        var buffer = [Float](repeating: Self.sentinel, count: pixels * stride)
        input.scalars.withUnsafeBufferPointer { x in
            buffer.withUnsafeMutableBufferPointer { y in
                conv.run(x.baseAddress!, batch: input.shape[0], height: input.shape[1], width: input.shape[2],
                         into: y.baseAddress! + c.before, channelStride: stride, algorithm: algorithm)
            }
        }
        var slice = [Float](repeating: 0, count: pixels * c.co)
        var outside = 0
        for p in 0..<pixels {
            for j in 0..<stride {
                let v = buffer[p * stride + j]
                if j < c.before || j >= c.before + c.co { if v != Self.sentinel { outside += 1 } }
                else { slice[p * c.co + j - c.before] = v }
            }
        }
        XCTAssertEqual(outside, 0, "\(c) \(algorithm): wrote outside its channel slice", file: file, line: line)
        return Tensor(shape: shape, scalars: slice)
    }

    /// Checks every case for `tile` with the active kernel family; returns the largest error / S.
    private func check(tile: Int, tolerance: Float, label: String) -> Float {
        var rng = SeededGenerator(seed: 11)
        var worst: Float = 0
        for c in cases {
            let input = Tensor(shape: [c.n, c.h, c.w, c.ci], scalars: (0..<(c.n * c.h * c.w * c.ci)).map { _ in rng.truncatedNormal() })
            let weights = Tensor(shape: [3, 3, c.ci, c.co], scalars: (0..<(9 * c.ci * c.co)).map { _ in rng.truncatedNormal() })
            let bias: [Float]? = c.bias ? (0..<c.co).map { _ in rng.truncatedNormal() } : nil
            let conv = Convolution2D(weights: weights, bias: bias, stride: 1, padding: c.padding, relu: c.relu)
            let reference = Convolution2D.reference(input, weights: weights, bias: bias, stride: 1, padding: c.padding, relu: c.relu)
            // S per output: the same convolution on absolute values.
            let scale = Convolution2D.reference(
                Tensor(shape: input.shape, scalars: input.scalars.map(abs)),
                weights: Tensor(shape: weights.shape, scalars: weights.scalars.map(abs)),
                bias: bias?.map(abs), stride: 1, padding: c.padding, relu: false)
            let ours = run(conv, input, c, .winograd(tile: tile))
            XCTAssertEqual(ours.shape, reference.shape, "\(label) \(c)")
            guard ours.shape == reference.shape else { continue }
            var caseWorst: Float = 0
            for i in 0..<ours.count {
                let error = abs(ours.scalars[i] - reference.scalars[i]) / max(scale.scalars[i], .leastNormalMagnitude)
                caseWorst = max(caseWorst, error.isNaN ? .infinity : error)
            }
            XCTAssertLessThanOrEqual(caseWorst, tolerance, "\(label) F(\(tile)x\(tile)) \(c)")
            worst = max(worst, caseWorst)
        }
        print("WinogradTests: \(label) F(\(tile)x\(tile),3x3): max |ours - reference| / S = \(worst)")
        return worst
    }

    private static let tolerance2: Float = 64 * .ulpOfOne
    private static let tolerance4: Float = 1024 * .ulpOfOne

    /// Runs `body` with `kernel` selected, restoring the previous one.
    private func withKernel(_ kernel: GEMM.Kernel, _ body: () throws -> Void) throws {
        try XCTSkipUnless(GEMM.isSupported(kernel), "CPU lacks \(kernel)")
        let saved = GEMM.kernel
        GEMM.kernel = kernel
        defer { GEMM.kernel = saved }
        XCTAssertEqual(GEMM.kernel, kernel)
        try body()
    }

    private func checkBothTiles(_ kernel: GEMM.Kernel) throws {
        try withKernel(kernel) {
            _ = check(tile: 2, tolerance: Self.tolerance2, label: "\(kernel)")
            _ = check(tile: 4, tolerance: Self.tolerance4, label: "\(kernel)")
        }
    }

    func testPortableKernelMatchesDirectConvolution() throws { try checkBothTiles(.portable) }
    func testAVX2KernelMatchesDirectConvolution() throws { try checkBothTiles(.avx2) }
    func testAVX512KernelMatchesDirectConvolution() throws { try checkBothTiles(.avx512) }

    /// The schedules depend on the thread count (one thread: always blocks of tiles; several:
    /// blocks when there are many tiles, otherwise transform-all then rectangles): run the
    /// cases on 1 and 3 threads too.
    func testThreadCountsMatchDirectConvolution() {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        for threads in [1, 3] {
            Parallel.threadCount = threads
            _ = check(tile: 2, tolerance: Self.tolerance2, label: "\(threads) threads")
            _ = check(tile: 4, tolerance: Self.tolerance4, label: "\(threads) threads")
        }
    }

    /// The documented policy on Inception V1's layers at 224×224.
    func testPolicyPicksTheMeasuredVariants() {
        func tile(_ batch: Int, _ side: Int, _ ci: Int, _ co: Int) -> Int? {
            Winograd.tileSize(batch: batch, outputHeight: side, outputWidth: side, inputChannels: ci, outputChannels: co)
        }
        XCTAssertEqual(tile(1, 56, 64, 192), 4)       // Conv2d_2c_3x3
        XCTAssertEqual(tile(8, 28, 128, 192), 4)      // Mixed_3c Branch_1
        XCTAssertEqual(tile(1, 28, 32, 96), 4)        // Mixed_3c Branch_2
        XCTAssertNil(tile(1, 28, 16, 32))             // Mixed_3b Branch_2: too few channels
        XCTAssertEqual(tile(1, 14, 160, 320), 2)      // Mixed_4f Branch_1, batch 1
        XCTAssertEqual(tile(8, 14, 160, 320), 4)      // ... batch 8
        XCTAssertNil(tile(1, 14, 32, 128))            // Mixed_4f Branch_2
        XCTAssertNil(tile(1, 7, 192, 384))            // Mixed_5c Branch_1, batch 1: 16 tiles
        XCTAssertEqual(tile(4, 7, 192, 384), 2)
        XCTAssertEqual(tile(8, 7, 192, 384), 4)
        XCTAssertNil(tile(8, 7, 48, 128))             // Mixed_5c Branch_2
    }

    /// The mode switch: off is exactly the direct path; forcing a tile size is exactly that
    /// variant; the tensor form stays direct whatever the mode (training uses it).
    func testModeSelectsThePath() {
        let saved = Winograd.mode
        defer { Winograd.mode = saved }
        var rng = SeededGenerator(seed: 3)
        let c = Case(n: 2, h: 14, w: 14, ci: 64, co: 160)
        let input = Tensor(shape: [c.n, c.h, c.w, c.ci], scalars: (0..<(c.n * c.h * c.w * c.ci)).map { _ in rng.truncatedNormal() })
        let weights = Tensor(shape: [3, 3, c.ci, c.co], scalars: (0..<(9 * c.ci * c.co)).map { _ in rng.truncatedNormal() })
        let conv = Convolution2D(weights: weights, bias: (0..<c.co).map { _ in rng.truncatedNormal() }, relu: true)
        let direct = run(conv, input, c, .direct)
        let f2 = run(conv, input, c, .winograd(tile: 2))
        let f4 = run(conv, input, c, .winograd(tile: 4))
        XCTAssertNotEqual(direct.scalars, f2.scalars)
        Winograd.mode = .off
        XCTAssertEqual(run(conv, input, c, .automatic).scalars, direct.scalars)
        Winograd.mode = .f2
        XCTAssertEqual(run(conv, input, c, .automatic).scalars, f2.scalars)
        XCTAssertEqual(conv(input).scalars, direct.scalars)
        Winograd.mode = .f4
        XCTAssertEqual(run(conv, input, c, .automatic).scalars, f4.scalars)
        // 14×14 at batch 2 is 392 pixels (CI·CO 10240): F(4×4) by default.
        Winograd.mode = .automatic
        XCTAssertEqual(run(conv, input, c, .automatic).scalars, f4.scalars)
        // Other windows ignore the Winograd request.
        let strided = Convolution2D(weights: weights, bias: nil, stride: 2, relu: false)
        XCTAssertEqual(strided(input, algorithm: .winograd(tile: 2)).scalars, strided(input).scalars)
    }
}

/// Per-layer timings behind the table in ``Winograd/tileSize(batch:outputHeight:outputWidth:inputChannels:outputChannels:mode:)``.
/// Runs only with INCEPTION_WINOGRAD_BENCH=1 (about a minute); optional INCEPTION_WINOGRAD_BENCH_BATCHES
/// (e.g. `1,8`), INCEPTION_WINOGRAD_BENCH_LAYERS (names below, comma-separated) and
/// INCEPTION_WINOGRAD_BENCH_ALGORITHMS (`direct,F2,F4`; the others then run direct, e.g. to profile one).
/// Example: `INCEPTION_WINOGRAD_BENCH=1 swift test -c release --filter WinogradBenchmarkTests`.
final class WinogradBenchmarkTests: XCTestCase {
    /// Every 3x3 stride-1 convolution of slim's Inception V1 at 224x224 (torchvision's GoogLeNet
    /// has the same shapes): output side, CI, CO.
    static let layers: [(name: String, side: Int, ci: Int, co: Int)] = [
        ("Conv2d_2c_3x3", 56, 64, 192),
        ("Mixed_3b/1", 28, 96, 128), ("Mixed_3b/2", 28, 16, 32),
        ("Mixed_3c/1", 28, 128, 192), ("Mixed_3c/2", 28, 32, 96),
        ("Mixed_4b/1", 14, 96, 208), ("Mixed_4b/2", 14, 16, 48),
        ("Mixed_4c/1", 14, 112, 224), ("Mixed_4c/2", 14, 24, 64),
        ("Mixed_4d/1", 14, 128, 256), ("Mixed_4d/2", 14, 24, 64),
        ("Mixed_4e/1", 14, 144, 288), ("Mixed_4e/2", 14, 32, 64),
        ("Mixed_4f/1", 14, 160, 320), ("Mixed_4f/2", 14, 32, 128),
        ("Mixed_5b/1", 7, 160, 320), ("Mixed_5b/2", 7, 32, 128),
        ("Mixed_5c/1", 7, 192, 384), ("Mixed_5c/2", 7, 48, 128),
    ]

    /// Times each layer once per round, the layers in network order and each algorithm over the
    /// whole sequence in turn, so that (as in a forward pass) a layer's weights have been pushed
    /// out of the caches by the other layers' when it runs: the Winograd weights of all these
    /// layers are 24 MB (F(2×2)) or 53 MB (F(4×4)), the direct ones 13 MB. Medians of 15 rounds.
    func testBenchmarkLayers() throws {
        let environment = ProcessInfo.processInfo.environment
        try XCTSkipUnless(environment["INCEPTION_WINOGRAD_BENCH"] != nil, "set INCEPTION_WINOGRAD_BENCH=1 to time the layers")
        let batches = (environment["INCEPTION_WINOGRAD_BENCH_BATCHES"] ?? "1,8").split(separator: ",").compactMap { Int($0) }
        let only = environment["INCEPTION_WINOGRAD_BENCH_LAYERS"]?.split(separator: ",").map(String.init)
        let layers = Self.layers.filter { only == nil || only!.contains($0.name) }
        var rng = SeededGenerator(seed: 5)
        let chosen = environment["INCEPTION_WINOGRAD_BENCH_ALGORITHMS"]?.split(separator: ",").map(String.init)
        let algorithms: [(String, Convolution2D.Algorithm)] = [("direct", .direct), ("F2", .winograd(tile: 2)), ("F4", .winograd(tile: 4))]
            .map { chosen == nil || chosen!.contains($0.0) ? $0 : ($0.0, .direct) }
        let convolutions = layers.map { layer in
            Convolution2D(weights: Tensor(shape: [3, 3, layer.ci, layer.co], scalars: (0..<(9 * layer.ci * layer.co)).map { _ in rng.truncatedNormal() }),
                          bias: (0..<layer.co).map { _ in rng.truncatedNormal() }, relu: true)
        }
        for batch in batches {
            let inputs = layers.map { layer in (0..<(batch * layer.side * layer.side * layer.ci)).map { _ in rng.truncatedNormal() } }
            var outputs = layers.map { layer in [Float](repeating: 0, count: batch * layer.side * layer.side * layer.co * 2) }
            var samples = [[[Double]]](repeating: [[Double]](repeating: [], count: layers.count), count: algorithms.count)
            for round in 0..<17 {
                for (a, algorithm) in algorithms.enumerated() {
                    for (l, layer) in layers.enumerated() {
                        inputs[l].withUnsafeBufferPointer { x in
                            outputs[l].withUnsafeMutableBufferPointer { y in
                                let start = DispatchTime.now().uptimeNanoseconds
                                convolutions[l].run(x.baseAddress!, batch: batch, height: layer.side, width: layer.side,
                                                    into: y.baseAddress! + layer.co, channelStride: 2 * layer.co, algorithm: algorithm.1)
                                let us = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3
                                if round > 1 { samples[a][l].append(us) }
                            }
                        }
                    }
                }
            }
            print("layer          batch   direct_us     F2_us     F4_us   F2/dir  F4/dir  best")
            var totals = [Double](repeating: 0, count: algorithms.count + 1)
            for (l, layer) in layers.enumerated() {
                let medians = (0..<algorithms.count).map { a in samples[a][l].sorted()[samples[a][l].count / 2] }
                let best = medians.indices.min { medians[$0] < medians[$1] }!
                for a in 0..<medians.count { totals[a] += medians[a] }
                totals[algorithms.count] += medians[best]
                print(String(format: "%-14@ %5d %11.1f %9.1f %9.1f %8.2f %7.2f  %@", layer.name as NSString, batch,
                             medians[0], medians[1], medians[2], medians[1] / medians[0], medians[2] / medians[0],
                             algorithms[best].0 as NSString))
            }
            print(String(format: "batch %d total: direct %.1f us, F2 %.1f us, F4 %.1f us, best of each %.1f us", batch,
                         totals[0], totals[1], totals[2], totals[3]))
        }
    }
}

/// Convolution weights are kept as given and each packed form is made on first use.
final class ConvolutionWeightFormTests: XCTestCase {
    func makeCase(seed: UInt64) -> (input: Tensor, weights: Tensor, scale: [Float]) {
        var rng = SeededGenerator(seed: seed)
        let input = Tensor(shape: [1, 14, 14, 32], scalars: (0..<(14 * 14 * 32)).map { _ in rng.truncatedNormal() })
        let weights = Tensor(shape: [3, 3, 32, 40], scalars: (0..<(9 * 32 * 40)).map { _ in rng.truncatedNormal() })
        return (input, weights, (0..<40).map { _ in Float.random(in: 0.5...2, using: &rng) })
    }

    /// A layer that only ever runs as Winograd (most 3×3 layers of an inference model) never
    /// holds its packed direct weights: that copy would be memory for nothing.
    func testWinogradOnlyConvolutionNeverPacksTheDirectWeights() {
        let (input, weights, _) = makeCase(seed: 1)
        let conv = Convolution2D(weights: weights, bias: nil, relu: false)
        _ = conv(input, algorithm: .winograd(tile: 4))
        XCTAssertFalse(conv.store.hasPackedDirect)
        _ = conv(input, algorithm: .direct)
        XCTAssertTrue(conv.store.hasPackedDirect)
    }

    /// An output scale (a folded batch norm) is the same as scaling the weights' output channels,
    /// on the direct and both Winograd paths.
    func testOutputScaleEqualsScaledWeights() {
        let (input, weights, scale) = makeCase(seed: 2)
        var scaled = weights
        for i in 0..<scaled.count { scaled.scalars[i] *= scale[i % 40] }
        let withScale = Convolution2D(weights: weights, outputScale: scale, bias: nil, relu: true)
        let prescaled = Convolution2D(weights: scaled, bias: nil, relu: true)
        for algorithm in [Convolution2D.Algorithm.direct, .winograd(tile: 2), .winograd(tile: 4)] {
            let a = withScale(input, algorithm: algorithm), b = prescaled(input, algorithm: algorithm)
            XCTAssertLessThanOrEqual(a.maxAbsDifference(b), 1e-5 * max(1, b.maxAbs), "\(algorithm)")
        }
    }
}

/// Training's 3×3 stride-1 convolutions as Winograd (``Winograd/inTraining``): the forward from
/// HWIO weights, and dX as the convolution of dZ with the turned, transposed kernel. Both against the direct path, on
/// slabs whose pixel stride is wider than their channels, with and without accumulation.
final class TrainingWinogradTests: XCTestCase {
    func testForwardAndInputGradientMatchTheDirectPath() {
        let saved = Winograd.mode, savedTraining = Winograd.inTraining
        defer { Winograd.mode = saved; Winograd.inTraining = savedTraining }
        Winograd.inTraining = true
        var rng = SeededGenerator(seed: 21)
        for (padding, h, w) in [(Padding.same, 14, 14), (.symmetric(1), 9, 11), (.same, 28, 28)] {
            let (n, ci, co) = (11, 24, 40)  // ≥ 1024 output pixels per call, where training uses Winograd
            let window = Window2D(kernel: (3, 3), stride: (1, 1), padding: padding)
            let g = window.geometry(inputHeight: h, inputWidth: w)!
            let weights = (0..<(9 * ci * co)).map { _ in rng.truncatedNormal() }
            let x = (0..<(n * h * w * (ci + 3))).map { _ in Float.random(in: -1...1, using: &rng) }
            let dz = (0..<(n * g.outputHeight * g.outputWidth * (co + 5))).map { _ in Float.random(in: -1...1, using: &rng) }
            let start = (0..<(n * h * w * (ci + 7))).map { _ in Float.random(in: -1...1, using: &rng) }
            func run(_ mode: Winograd.Mode, accumulate: Bool) -> (z: [Float], dx: [Float]) {
                Winograd.mode = mode
                var x = x, dz = dz, dx = start
                var z = [Float](repeating: 0, count: n * g.outputHeight * g.outputWidth * (co + 1))
                x.withUnsafeMutableBufferPointer { xp in dz.withUnsafeMutableBufferPointer { dzp in
                    z.withUnsafeMutableBufferPointer { zp in dx.withUnsafeMutableBufferPointer { dxp in weights.withUnsafeBufferPointer { wp in
                        let xs = ActivationSlab(base: xp.baseAddress!, batch: n, height: h, width: w, channels: ci, stride: ci + 3)
                        let zs = ActivationSlab(base: zp.baseAddress!, batch: n, height: g.outputHeight, width: g.outputWidth,
                                                channels: co, stride: co + 1)
                        let dzs = ActivationSlab(base: dzp.baseAddress!, batch: n, height: g.outputHeight, width: g.outputWidth,
                                                 channels: co, stride: co + 5)
                        let dxs = ActivationSlab(base: dxp.baseAddress!, batch: n, height: h, width: w, channels: ci, stride: ci + 7)
                        ConvolutionGradient.forward(input: xs, hwio: wp.baseAddress!, window: window, bias: nil, into: zs)
                        ConvolutionGradient.inputGradient(outputGradient: dzs, hwio: wp.baseAddress!, window: window, into: dxs,
                                                          accumulate: accumulate)
                    } } }
                } }
                return (z, dx)
            }
            for accumulate in [false, true] {
                let direct = run(.off, accumulate: accumulate), f4 = run(.f4, accumulate: accumulate), f2 = run(.f2, accumulate: accumulate)
                for (name, fast) in [("F(4x4)", f4), ("F(2x2)", f2)] {
                    let label = "\(name) \(padding) \(h)x\(w) accumulate: \(accumulate)"
                    // Differences relative to the largest value: Winograd's rounding, not a wrong tap.
                    let zScale = direct.z.map(abs).max()!, dxScale = direct.dx.map(abs).max()!
                    XCTAssertLessThanOrEqual(zip(fast.z, direct.z).map { abs($0 - $1) }.max()!, 1e-5 * zScale, "z " + label)
                    XCTAssertLessThanOrEqual(zip(fast.dx, direct.dx).map { abs($0 - $1) }.max()!, 1e-5 * dxScale, "dx " + label)
                    XCTAssertNotEqual(fast.z, direct.z, "the forward ran as Winograd (\(label))")
                    XCTAssertNotEqual(fast.dx, direct.dx, "the input gradient ran as Winograd (\(label))")
                }
            }
        }
    }

    /// The weight gradient as Winograd (dW = Gᵀ [Σ (A h Aᵀ) ⊙ (Bᵀ d B)] G) against the direct
    /// path: SAME, symmetric and VALID padding, edge tiles that stick out past the output, channel
    /// counts that are not whole vectors, strided slabs; the first three cases have few tiles (all
    /// transformed at once), the last many (chunks; with a tiny chunk budget, many per thread,
    /// summed in groups).
    func testWeightGradientMatchesTheDirectPath() {
        let saved = Winograd.mode, savedTraining = Winograd.inTraining, savedBudget = Winograd.gradientChunkFloats
        defer { Winograd.mode = saved; Winograd.inTraining = savedTraining; Winograd.gradientChunkFloats = savedBudget }
        Winograd.inTraining = true
        var rng = SeededGenerator(seed: 22)
        for (padding, h, w, budget) in [(Padding.same, 14, 14, 1 << 20), (.symmetric(1), 9, 11, 1 << 20),
                                        (.valid, 13, 10, 1 << 20), (.same, 28, 28, 1)] {
            let (n, ci, co) = (12, 24, 40)  // ≥ 1024 output pixels per call, where training uses Winograd
            Winograd.gradientChunkFloats = budget
            let window = Window2D(kernel: (3, 3), stride: (1, 1), padding: padding)
            let g = window.geometry(inputHeight: h, inputWidth: w)!
            let x = (0..<(n * h * w * (ci + 3))).map { _ in Float.random(in: -1...1, using: &rng) }
            let dz = (0..<(n * g.outputHeight * g.outputWidth * (co + 5))).map { _ in Float.random(in: -1...1, using: &rng) }
            func run(_ mode: Winograd.Mode) -> [Float] {
                Winograd.mode = mode
                var x = x, dz = dz
                var dw = [Float](repeating: .nan, count: 9 * ci * co)
                x.withUnsafeMutableBufferPointer { xp in dz.withUnsafeMutableBufferPointer { dzp in dw.withUnsafeMutableBufferPointer { dwp in
                    let xs = ActivationSlab(base: xp.baseAddress!, batch: n, height: h, width: w, channels: ci, stride: ci + 3)
                    let dzs = ActivationSlab(base: dzp.baseAddress!, batch: n, height: g.outputHeight, width: g.outputWidth,
                                             channels: co, stride: co + 5)
                    ConvolutionGradient.weightGradient(input: xs, outputGradient: dzs, window: window, into: dwp.baseAddress!)
                } } }
                return dw
            }
            let direct = run(.off), scale = direct.map(abs).max()!
            for (name, mode) in [("F(4x4)", Winograd.Mode.f4), ("F(2x2)", .f2)] {
                for kernel in GEMM.Kernel.allCases where GEMM.isSupported(kernel) {
                    var fast: [Float] = []
                    withKernel(kernel) { fast = run(mode) }
                    let label = "\(name) \(padding) \(h)x\(w) budget \(budget) \(kernel)"
                    // Differences relative to the largest value: Winograd's rounding, not a wrong tap.
                    XCTAssertLessThanOrEqual(zip(fast, direct).map { abs($0 - $1) }.max()!, 1e-5 * scale, label)
                    XCTAssertNotEqual(fast, direct, "the weight gradient ran as Winograd (\(label))")
                }
            }
        }
    }

    /// Training uses Winograd only from 1024 output pixels per call (it transforms the weights
    /// every call); below that, and with it off, the direct path.
    func testTrainingUsesWinogradFromAThousandPixelsPerCall() {
        let saved = Winograd.inTraining, savedMode = Winograd.mode
        defer { Winograd.inTraining = saved; Winograd.mode = savedMode }
        Winograd.mode = .automatic
        let g = Window2D(3).geometry(inputHeight: 4, inputWidth: 4)!
        Winograd.inTraining = true
        XCTAssertNil(Winograd.trainingTileSize(for: g, batch: 63, inputChannels: 192, outputChannels: 384))
        XCTAssertEqual(Winograd.trainingTileSize(for: g, batch: 64, inputChannels: 192, outputChannels: 384), 4)
        XCTAssertNil(Winograd.trainingTileSize(for: Window2D(3, stride: 2).geometry(inputHeight: 64, inputWidth: 64)!,
                                               batch: 64, inputChannels: 192, outputChannels: 384), "stride 2")
        Winograd.inTraining = false
        XCTAssertNil(Winograd.trainingTileSize(for: g, batch: 64, inputChannels: 192, outputChannels: 384))
    }
}
