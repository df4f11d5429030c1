import InceptionCore
import XCTest

final class PoolingTests: XCTestCase {
    /// TF pads max pooling with −∞: with all-negative inputs the border must not become 0.
    func testSameMaxPoolNeverPicksThePadding() {
        let input = Tensor(shape: [1, 2, 2, 1], scalars: [-4, -3, -2, -1])
        let out = Pooling.pool(.max, input, Window2D(3, stride: 1))
        XCTAssertEqual(out.scalars, [-1, -1, -1, -1])
    }

    /// SAME average pooling divides by the real pixels under the window, so a constant stays constant.
    func testSameAveragePoolCountsOnlyRealPixels() {
        let out = Pooling.pool(.average, Tensor(repeating: 3, shape: [1, 5, 4, 2]), Window2D(3, stride: 2))
        XCTAssertEqual(out.shape, [1, 3, 2, 2])
        XCTAssertTrue(out.scalars.allSatisfy { abs($0 - 3) < 1e-6 })
    }

    func testMaxPoolStrideTwoPicksEachWindowsMaximum() {
        let input = Tensor(shape: [1, 4, 4, 1], scalars: (1...16).map(Float.init))
        XCTAssertEqual(Pooling.pool(.max, input, Window2D(2, stride: 2)).scalars, [6, 8, 14, 16])
        XCTAssertEqual(Pooling.pool(.max, input, Window2D(3, stride: 2)).scalars, [11, 12, 15, 16])
    }

    func testValidAveragePoolOverTheWholeMap() {
        let input = Tensor(shape: [1, 2, 2, 2], scalars: [1, 10, 2, 20, 3, 30, 4, 40])
        XCTAssertEqual(Pooling.pool(.average, input, Window2D(2, stride: 1, padding: .valid)).scalars, [2.5, 25])
    }

    func testGlobalAverageIsTheMeanOverHeightAndWidth() {
        let input = Tensor(shape: [2, 1, 2, 1], scalars: [1, 3, 10, 20])
        let out = Pooling.globalAverage(input)
        XCTAssertEqual(out.shape, [2, 1, 1, 1])
        XCTAssertEqual(out.scalars, [2, 15])
    }
}

/// The vectorised kernel (`pool.c`) against a plain per-element reference, on every instruction
/// set this CPU has: channel counts around the 16- and 64-channel vector blocks (the tails take
/// other code), every padding kind, several threads, and an output that is a channel slice of a
/// wider tensor (as an Inception branch writes it), whose other channels must stay untouched.
final class PoolingKernelTests: XCTestCase {
    func testKernelMatchesThePlainDefinitionOnEveryInstructionSet() {
        let windows: [Window2D] = [
            Window2D(3, stride: 1), Window2D(3, stride: 2), Window2D(2, stride: 2),
            Window2D(kernel: (3, 2), stride: (2, 1), padding: .valid),
            Window2D(kernel: (3, 3), stride: (2, 2), padding: .symmetricCeil(0)),
            Window2D(kernel: (3, 3), stride: (1, 1), padding: .symmetric(1)),
            Window2D(kernel: (7, 7), stride: (1, 1), padding: .valid),
        ]
        var rng = SeededGenerator(seed: 7)
        let savedKernel = GEMM.kernel, savedThreads = Parallel.threadCount
        defer { GEMM.kernel = savedKernel; Parallel.threadCount = savedThreads }
        for kernel in GEMM.Kernel.allCases where GEMM.isSupported(kernel) {
            GEMM.kernel = kernel
            for (threads, channels) in [(1, 3), (2, 16), (3, 83), (2, 64), (1, 130)] {
                Parallel.threadCount = threads
                let input = Tensor(shape: [2, 9, 7, channels],
                                   scalars: (0..<(2 * 9 * 7 * channels)).map { _ in Float.random(in: -1...1, using: &rng) })
                for window in windows {
                    for kind in [Pooling.Kind.max, .average] {
                        let label = "\(kernel) \(kind) \(window) C=\(channels) threads=\(threads)"
                        let shape = Pooling.outputShape(window, input: input.shape)!
                        let expected = Self.reference(kind, input, window)
                        // Written into channels 5..<5+C of a C+9-channel buffer filled with a sentinel.
                        let stride = channels + 9, pixels = shape[0] * shape[1] * shape[2]
                        var out = [Float](repeating: 42, count: pixels * stride)
                        out.withUnsafeMutableBufferPointer { buffer in
                            Pooling.pool(kind, input, window, into: buffer.baseAddress! + 5, channelStride: stride)
                        }
                        var worst: Float = 0, sentinelsKept = true
                        for p in 0..<pixels {
                            for c in 0..<stride {
                                let value = out[p * stride + c]
                                if c < 5 || c >= 5 + channels { sentinelsKept = sentinelsKept && value == 42; continue }
                                worst = max(worst, abs(value - expected[p * channels + c - 5]))
                            }
                        }
                        XCTAssertTrue(sentinelsKept, "\(label): wrote outside its channel slice")
                        XCTAssertLessThanOrEqual(worst, kind == .max ? 0 : 1e-6, label)
                    }
                }
            }
        }
    }

    /// Max pooling's input gradient (`pool.c`) against a per-element reference, on every
    /// instruction set: inputs rounded to a few values so windows hold ties (the gradient must go
    /// to the first maximum in row-major window order only), slabs with pixel strides wider than
    /// their channels, accumulation into dX or overwriting it, and the three ways of finding the maximum: recomputed
    /// from X, read from the forward output, or the window positions the forward recorded (which
    /// training uses; the forward that records them must still give the same Y).
    func testMaxPoolGradientKernelMatchesThePlainDefinitionOnEveryInstructionSet() {
        let windows: [Window2D] = [
            Window2D(3, stride: 1), Window2D(3, stride: 2), Window2D(2, stride: 2),
            Window2D(kernel: (3, 3), stride: (2, 2), padding: .symmetricCeil(0)),
            // No window reaches the last row and column (they get no gradient, and are zeroed all the same).
            Window2D(kernel: (2, 2), stride: (2, 2), padding: .valid),
        ]
        var rng = SeededGenerator(seed: 9)
        let savedKernel = GEMM.kernel
        defer { GEMM.kernel = savedKernel }
        for kernel in GEMM.Kernel.allCases where GEMM.isSupported(kernel) {
            GEMM.kernel = kernel
            for channels in [3, 16, 83, 130] {
                let (n, h, w) = (2, 9, 7)
                let x = (0..<(n * h * w * channels)).map { _ in Float(Int.random(in: -2...2, using: &rng)) }
                for window in windows {
                    let g = window.geometry(inputHeight: h, inputWidth: w)!
                    let outPixels = n * g.outputHeight * g.outputWidth
                    let dy = (0..<(outPixels * channels)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let y = Self.reference(.max, Tensor(shape: [n, h, w, channels], scalars: x), window)
                    let start = (0..<(n * h * w * channels)).map { _ in Float.random(in: -1...1, using: &rng) }
                    var added = start, overwritten = [Float](repeating: 0, count: start.count)
                    Self.referenceMaxGradient(x: x, dy: dy, shape: [n, h, w, channels], window: window, into: &added)
                    Self.referenceMaxGradient(x: x, dy: dy, shape: [n, h, w, channels], window: window, into: &overwritten)
                    for route in ["recomputed", "output given", "recorded positions"] { for accumulate in [true, false] {
                        let expected = accumulate ? added : overwritten
                        // Every slab with a pixel stride of channels + 5.
                        let stride = channels + 5
                        func widened(_ a: [Float], _ pixels: Int) -> [Float] {
                            var out = [Float](repeating: .nan, count: pixels * stride)
                            for p in 0..<pixels { for c in 0..<channels { out[p * stride + c] = a[p * channels + c] } }
                            return out
                        }
                        var xs = widened(x, n * h * w), dys = widened(dy, outPixels), ys = widened(y, outPixels)
                        var dxs = widened(start, n * h * w)
                        xs.withUnsafeMutableBufferPointer { xp in dys.withUnsafeMutableBufferPointer { dyp in
                            ys.withUnsafeMutableBufferPointer { yp in dxs.withUnsafeMutableBufferPointer { dxp in
                                let slab = { (p: UnsafeMutableBufferPointer<Float>, hh: Int, ww: Int) in
                                    ActivationSlab(base: p.baseAddress!, batch: n, height: hh, width: ww, channels: channels, stride: stride)
                                }
                                let dySlab = slab(dyp, g.outputHeight, g.outputWidth)
                                guard route == "recorded positions" else {
                                    PoolingGradient.maxPoolInputGradient(
                                        input: slab(xp, h, w), outputGradient: dySlab, window: window, into: slab(dxp, h, w),
                                        accumulate: accumulate, output: route == "output given" ? slab(yp, g.outputHeight, g.outputWidth) : nil)
                                    return
                                }
                                var recorded = [Float](repeating: .nan, count: outPixels * stride)
                                var argmax = [UInt8](repeating: 0, count: outPixels * channels)
                                recorded.withUnsafeMutableBufferPointer { rp in argmax.withUnsafeMutableBufferPointer { ap in
                                    PoolingGradient.forward(.max, input: slab(xp, h, w), window: window,
                                                            into: slab(rp, g.outputHeight, g.outputWidth), argmax: ap.baseAddress!)
                                    PoolingGradient.maxPoolInputGradient(argmax: ap.baseAddress!, outputGradient: dySlab, window: window,
                                                                         into: slab(dxp, h, w), accumulate: accumulate)
                                } }
                                for p in 0..<outPixels {
                                    for c in 0..<channels where recorded[p * stride + c] != y[p * channels + c] {
                                        XCTFail("\(kernel) \(window) C=\(channels): the recording forward's Y differs at pixel \(p), channel \(c)")
                                        return
                                    }
                                }
                            } }
                        } }
                        var worst: Float = 0
                        for p in 0..<(n * h * w) {
                            for c in 0..<channels { worst = max(worst, abs(dxs[p * stride + c] - expected[p * channels + c])) }
                        }
                        XCTAssertLessThanOrEqual(worst, 1e-6, "\(kernel) \(window) C=\(channels), maximum \(route), accumulate \(accumulate)")
                        // Columns past the channels are neither read nor written.
                        XCTAssert((0..<(n * h * w)).allSatisfy { p in (channels..<stride).allSatisfy { dxs[p * stride + $0].isNaN } })
                    } }
                }
            }
        }
    }

    /// Adds each dY to the first position of its window (row-major) holding the window's maximum.
    static func referenceMaxGradient(x: [Float], dy: [Float], shape: [Int], window: Window2D, into dx: inout [Float]) {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let g = window.geometry(inputHeight: h, inputWidth: w)!
        for b in 0..<n {
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    for ch in 0..<c {
                        var best = -Float.infinity, at = -1
                        for ky in 0..<window.kernelHeight {
                            for kx in 0..<window.kernelWidth {
                                let y = oy * window.strideHeight - g.padTop + ky, xx = ox * window.strideWidth - g.padLeft + kx
                                guard y >= 0 && y < h && xx >= 0 && xx < w else { continue }
                                let i = ((b * h + y) * w + xx) * c + ch
                                if x[i] > best { best = x[i]; at = i }
                            }
                        }
                        dx[at] += dy[((b * g.outputHeight + oy) * g.outputWidth + ox) * c + ch]
                    }
                }
            }
        }
    }

    /// Max or mean over the real pixels under each window, one output element at a time.
    static func reference(_ kind: Pooling.Kind, _ input: Tensor, _ window: Window2D) -> [Float] {
        let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let g = window.geometry(inputHeight: h, inputWidth: w)!
        var out: [Float] = []
        for b in 0..<n {
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    for ch in 0..<c {
                        var values: [Float] = []
                        for ky in 0..<window.kernelHeight {
                            for kx in 0..<window.kernelWidth {
                                let y = oy * window.strideHeight - g.padTop + ky, x = ox * window.strideWidth - g.padLeft + kx
                                if y >= 0 && y < h && x >= 0 && x < w { values.append(input.scalars[((b * h + y) * w + x) * c + ch]) }
                            }
                        }
                        out.append(kind == .max ? values.max()! : values.reduce(0, +) / Float(values.count))
                    }
                }
            }
        }
        return out
    }
}
