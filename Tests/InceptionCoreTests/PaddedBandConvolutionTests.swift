@testable import InceptionCore
import XCTest

/// Training's convolution and input gradient on zero-padded bands read in place
/// (`ConvolutionGradient.convolvePaddedBands`, taken for output rows of 24 pixels or more), and
/// as fully connected layers (`fullyConnectedView`), against their definitions summed in Double:
/// Z[n, oy, ox, o] = Σ X[n, oy·sh + kh − padTop, ox·sw + kw − padLeft, c] · W[kh, kw, c, o] (+ bias), and
/// dX[n, y, x, c] = Σ over (oy, ox, kh, kw) with oy·sh + kh − padTop = y, ox·sw + kw − padLeft = x of
/// dZ[n, oy, ox, o] · W[kh, kw, c, o]. Every case runs on every kernel family this CPU has, on one
/// and two threads.
final class PaddedBandConvolutionTests: XCTestCase {
    private struct Case {
        var n, h, w, ci, co: Int
        var window: Window2D
        /// Floats per pixel of the buffers X (and dX) and Z (and dZ) are slices of (0: dense).
        var xStride = 0, zStride = 0
        var label: String { "\(window.kernelHeight)x\(window.kernelWidth)/\(window.strideHeight) \(window.padding) \(n)x\(h)x\(w) \(ci)→\(co)" }
    }

    private func check(_ c: Case, fullyConnected: Bool = false, file: StaticString = #filePath, line: UInt = #line) {
        guard let g = c.window.geometry(inputHeight: c.h, inputWidth: c.w) else { return XCTFail("does not fit", file: file, line: line) }
        if fullyConnected {
            let probe = ActivationSlab(base: UnsafeMutablePointer(bitPattern: 64)!, batch: c.n, height: c.h, width: c.w,
                                       channels: c.ci, stride: max(c.xStride, c.ci))
            XCTAssertEqual(ConvolutionGradient.fullyConnectedView(probe, g) != nil, c.xStride == 0,
                           "\(c.label) should run as a fully connected layer when dense", file: file, line: line)
        } else {
            XCTAssertTrue(ConvolutionGradient.readsPaddedBands(g), "\(c.label) should take the band path", file: file, line: line)
        }
        let (oh, ow, kh, kw) = (g.outputHeight, g.outputWidth, c.window.kernelHeight, c.window.kernelWidth)
        let (sh, sw) = (c.window.strideHeight, c.window.strideWidth)
        let xs = max(c.xStride, c.ci), zs = max(c.zStride, c.co)
        var generator = SeededGenerator(seed: UInt64(c.h * 7919 + c.ci * 31 + c.co))
        var x = (0..<(c.n * c.h * c.w * xs)).map { _ in Float.random(in: -1...1, using: &generator) }
        var dz = (0..<(c.n * oh * ow * zs)).map { _ in Float.random(in: -1...1, using: &generator) }
        let weights = (0..<(kh * kw * c.ci * c.co)).map { _ in Float.random(in: -1...1, using: &generator) }
        let bias = (0..<c.co).map { _ in Float.random(in: -1...1, using: &generator) }
        // The definitions, with Σ|terms| for a rounding tolerance.
        var z = [Double](repeating: 0, count: c.n * oh * ow * c.co), zMagnitude = z
        var dx = [Double](repeating: 0, count: c.n * c.h * c.w * c.ci), dxMagnitude = dx
        for b in 0..<c.n { for oy in 0..<oh { for ox in 0..<ow { for i in 0..<kh { for j in 0..<kw {
            let iy = oy * sh + i - g.padTop, ix = ox * sw + j - g.padLeft
            guard iy >= 0, iy < c.h, ix >= 0, ix < c.w else { continue }
            let p = (b * c.h + iy) * c.w + ix, q = (b * oh + oy) * ow + ox
            for ch in 0..<c.ci { for o in 0..<c.co {
                let wv = Double(weights[((i * kw + j) * c.ci + ch) * c.co + o])
                let zt = Double(x[p * xs + ch]) * wv, dt = Double(dz[q * zs + o]) * wv
                z[q * c.co + o] += zt; zMagnitude[q * c.co + o] += abs(zt)
                dx[p * c.ci + ch] += dt; dxMagnitude[p * c.ci + ch] += abs(dt)
            } }
        } } } } }
        for q in 0..<(c.n * oh * ow) { for o in 0..<c.co { z[q * c.co + o] += Double(bias[o]); zMagnitude[q * c.co + o] += abs(Double(bias[o])) } }

        for kernel in GEMM.Kernel.allCases {
            for threads in [1, 2] {
                withKernel(kernel) { withThreads(threads) {
                    let tag = "\(c.label) \(kernel) \(threads) thread(s)"
                    // Outputs go into slices of buffers full of NaN (Z) or ones (dX, accumulated into):
                    // the columns outside the slice must stay as they were.
                    var zOut = [Float](repeating: .nan, count: c.n * oh * ow * zs)
                    var dxOut = [Float](repeating: 1, count: c.n * c.h * c.w * xs)
                    x.withUnsafeMutableBufferPointer { xb in dz.withUnsafeMutableBufferPointer { db in
                    zOut.withUnsafeMutableBufferPointer { zb in dxOut.withUnsafeMutableBufferPointer { gb in
                    weights.withUnsafeBufferPointer { wb in bias.withUnsafeBufferPointer { bb in
                        let xSlab = ActivationSlab(base: xb.baseAddress!, batch: c.n, height: c.h, width: c.w, channels: c.ci, stride: xs)
                        let dzSlab = ActivationSlab(base: db.baseAddress!, batch: c.n, height: oh, width: ow, channels: c.co, stride: zs)
                        let zSlab = ActivationSlab(base: zb.baseAddress!, batch: c.n, height: oh, width: ow, channels: c.co, stride: zs)
                        let dxSlab = ActivationSlab(base: gb.baseAddress!, batch: c.n, height: c.h, width: c.w, channels: c.ci, stride: xs)
                        ConvolutionGradient.forward(input: xSlab, hwio: wb.baseAddress!, window: c.window, bias: bb.baseAddress, into: zSlab)
                        ConvolutionGradient.inputGradient(outputGradient: dzSlab, hwio: wb.baseAddress!, window: c.window, into: dxSlab, accumulate: true)
                    } }
                    } }
                    } }
                    var failures = 0
                    func expect(_ got: Float, _ want: Double, _ magnitude: Double, _ what: String) {
                        guard !(abs(Double(got) - want) <= 1e-5 * magnitude + 1e-30), failures < 3 else { return }
                        failures += 1
                        XCTFail("\(tag): \(what) = \(got), expected \(want)", file: file, line: line)
                    }
                    for q in 0..<(c.n * oh * ow) {
                        for o in 0..<c.co { expect(zOut[q * zs + o], z[q * c.co + o], zMagnitude[q * c.co + o], "Z[\(q), \(o)]") }
                        for o in c.co..<zs where !zOut[q * zs + o].isNaN { expect(zOut[q * zs + o], .nan, 0, "Z gap [\(q), \(o)]") }
                    }
                    if sh == 1 && sw == 1 {  // training never asks for a strided window's dX (the stem's input is the image)
                        for p in 0..<(c.n * c.h * c.w) {
                            for ch in 0..<c.ci { expect(dxOut[p * xs + ch], 1 + dx[p * c.ci + ch], 1 + dxMagnitude[p * c.ci + ch], "dX[\(p), \(ch)]") }
                            for ch in c.ci..<xs { expect(dxOut[p * xs + ch], 1, 0, "dX gap [\(p), \(ch)]") }
                        }
                    }
                } }
            }
        }
    }

    /// Mixed_3b's 3x3 shape, smaller: SAME, channel counts that leave partial tiles and panels.
    func testThreeByThreeSame() {
        check(Case(n: 2, h: 28, w: 28, ci: 13, co: 37, window: Window2D(3)))
    }

    /// Many channels: each image is cut into several bands of output rows, whose halo rows are
    /// copied twice.
    func testThreeByThreeOverSeveralBandsPerImage() {
        check(Case(n: 1, h: 30, w: 26, ci: 160, co: 20, window: Window2D(3)))
    }

    /// The stem's 7x7 stride 2 on 3 channels (TF's SAME puts the extra padding after), and a
    /// 3x3 stride 2.
    func testStridedWindows() {
        check(Case(n: 2, h: 52, w: 50, ci: 3, co: 20, window: Window2D(7, stride: 2)))
        check(Case(n: 1, h: 49, w: 50, ci: 6, co: 17, window: Window2D(3, stride: 2)))
    }

    /// VALID, PyTorch's symmetric padding of a 5x5 window, and a non-square kernel.
    func testOtherPaddingsAndShapes() {
        check(Case(n: 1, h: 27, w: 27, ci: 5, co: 18, window: Window2D(3, padding: .valid)))
        check(Case(n: 2, h: 25, w: 25, ci: 6, co: 17, window: Window2D(5, padding: .symmetric(2))))
        check(Case(n: 1, h: 9, w: 30, ci: 5, co: 33, window: Window2D(kernel: (2, 3))))
    }

    /// A window covering its whole input (torchvision's auxiliary fc1: 4x4 VALID on a 4x4 map) runs
    /// as a 1x1 over KH·KW·CI channels on a dense input, as a window on a channel slice; and the
    /// weight gradient too (these are the same products as the definition's).
    func testWindowCoveringItsWholeInputIsAFullyConnectedLayer() {
        check(Case(n: 3, h: 4, w: 4, ci: 9, co: 21, window: Window2D(4, padding: .valid)), fullyConnected: true)
        check(Case(n: 2, h: 3, w: 5, ci: 4, co: 7, window: Window2D(kernel: (3, 5), padding: .valid)), fullyConnected: true)
        check(Case(n: 2, h: 4, w: 4, ci: 6, co: 5, window: Window2D(4, padding: .valid), xStride: 8), fullyConnected: true)
    }

    /// Input and output are channel slices of wider buffers (an Inception block's concatenation).
    func testChannelSlices() {
        check(Case(n: 2, h: 24, w: 25, ci: 12, co: 16, window: Window2D(3), xStride: 30, zStride: 21))
    }
}
