@testable import InceptionCore
import XCTest

/// Training's convolution, input gradient and weight gradient (`ConvolutionGradient`, from HWIO
/// weights on slabs) against their definitions summed in Double:
/// - Z[n, oy, ox, o] = Σ X[n, oy·sh + kh − padTop, ox·sw + kw − padLeft, c] · W[kh, kw, c, o] + bias[o],
/// - dX[n, y, x, c] = Σ dZ[n, oy, ox, o] · W[kh, kw, c, o] over the (oy, ox, kh, kw) that reach (y, x),
/// - dW[kh, kw, c, o] = Σ X[n, oy·sh + kh − padTop, ox·sw + kw − padLeft, c] · dZ[n, oy, ox, o],
/// taps in the padding reading 0. Each case names the path it takes (padded bands read in place,
/// gathered receptive fields, a plain GEMM, a fully connected layer) and runs on every kernel
/// family this CPU has, on one and two threads. The weight gradient is read in place on every path
/// (`ik_gemm_transposed_a`).
final class ConvolutionGradientTests: XCTestCase {
    private enum Path { case paddedBands, gathered, plainGEMM, fullyConnected }

    private struct Case {
        var n, h, w, ci, co: Int
        var window: Window2D
        /// Floats per pixel of the buffers X (and dX) and Z (and dZ) are slices of (0: dense).
        var xStride = 0, zStride = 0
        var label: String {
            "\(window.kernelHeight)x\(window.kernelWidth)/\(window.strideHeight) \(window.padding) \(n)x\(h)x\(w) \(ci)→\(co)"
        }
    }

    /// With `bfloat16`, the products run in ``BFloat16Training``'s mixed precision and the
    /// definitions are summed over the operands rounded to bfloat16: each product is then exact
    /// in float32 too, so the same float32-summation tolerance holds and any misplaced element
    /// shows. Paths are then the mixed-precision ones (padded bands at any row length), so
    /// those cases name none (`path` nil).
    private func check(_ c: Case, _ path: Path?, bfloat16: Bool = false, file: StaticString = #filePath, line: UInt = #line) {
        guard let g = c.window.geometry(inputHeight: c.h, inputWidth: c.w) else { return XCTFail("does not fit", file: file, line: line) }
        let (oh, ow, kh, kw) = (g.outputHeight, g.outputWidth, c.window.kernelHeight, c.window.kernelWidth)
        let (sh, sw) = (c.window.strideHeight, c.window.strideWidth)
        let xs = max(c.xStride, c.ci), zs = max(c.zStride, c.co)
        var generator = SeededGenerator(seed: UInt64(c.h * 7919 + c.ci * 31 + c.co))
        var x = (0..<(c.n * c.h * c.w * xs)).map { _ in Float.random(in: -1...1, using: &generator) }
        var dz = (0..<(c.n * oh * ow * zs)).map { _ in Float.random(in: -1...1, using: &generator) }
        let weights = (0..<(kh * kw * c.ci * c.co)).map { _ in Float.random(in: -1...1, using: &generator) }
        let bias = (0..<c.co).map { _ in Float.random(in: -1...1, using: &generator) }

        let isPlain = c.window.isPointwise
        let isFullyConnected = x.withUnsafeMutableBufferPointer {
            ConvolutionGradient.fullyConnectedView(ActivationSlab(base: $0.baseAddress!, batch: c.n, height: c.h, width: c.w,
                                                                  channels: c.ci, stride: xs), g) != nil
        }
        let taken: Path = isFullyConnected ? .fullyConnected : isPlain ? .plainGEMM
            : ConvolutionGradient.readsPaddedBands(g) ? .paddedBands : .gathered
        if let path { XCTAssertEqual(taken, path, c.label, file: file, line: line) }
        let operand: (Float) -> Double = bfloat16 ? { Double(Self.roundedToBFloat16($0)) } : { Double($0) }

        // The definitions, with Σ|terms| for a rounding tolerance.
        var z = [Double](repeating: 0, count: c.n * oh * ow * c.co), zMagnitude = z
        var dx = [Double](repeating: 0, count: c.n * c.h * c.w * c.ci), dxMagnitude = dx
        var dw = [Double](repeating: 0, count: weights.count), dwMagnitude = dw
        for b in 0..<c.n { for oy in 0..<oh { for ox in 0..<ow { for i in 0..<kh { for j in 0..<kw {
            let iy = oy * sh + i - g.padTop, ix = ox * sw + j - g.padLeft
            guard iy >= 0, iy < c.h, ix >= 0, ix < c.w else { continue }
            let p = (b * c.h + iy) * c.w + ix, q = (b * oh + oy) * ow + ox
            for ch in 0..<c.ci { for o in 0..<c.co {
                let k = ((i * kw + j) * c.ci + ch) * c.co + o
                let wv = operand(weights[k]), xv = operand(x[p * xs + ch]), gv = operand(dz[q * zs + o])
                z[q * c.co + o] += xv * wv; zMagnitude[q * c.co + o] += abs(xv * wv)
                dx[p * c.ci + ch] += gv * wv; dxMagnitude[p * c.ci + ch] += abs(gv * wv)
                dw[k] += xv * gv; dwMagnitude[k] += abs(xv * gv)
            } }
        } } } } }
        for q in 0..<(c.n * oh * ow) { for o in 0..<c.co { z[q * c.co + o] += Double(bias[o]); zMagnitude[q * c.co + o] += abs(Double(bias[o])) } }

        for kernel in GEMM.Kernel.allCases {
            for threads in [1, 2] {
                withKernel(kernel) { withThreads(threads) {
                    let tag = "\(c.label) \(kernel) \(threads) thread(s)\(bfloat16 ? " bfloat16" : "")"
                    let wasEnabled = BFloat16Training.isEnabled
                    BFloat16Training.isEnabled = bfloat16
                    defer { BFloat16Training.isEnabled = wasEnabled }
                    // Z and dX go into slices of buffers full of NaN (Z) or ones (dX, accumulated
                    // into): the columns outside the slice must stay as they were.
                    var zOut = [Float](repeating: .nan, count: c.n * oh * ow * zs)
                    var dxOut = [Float](repeating: 1, count: c.n * c.h * c.w * xs)
                    var dwOut = [Float](repeating: .nan, count: weights.count)
                    x.withUnsafeMutableBufferPointer { xb in dz.withUnsafeMutableBufferPointer { db in
                    zOut.withUnsafeMutableBufferPointer { zb in dxOut.withUnsafeMutableBufferPointer { gb in
                    dwOut.withUnsafeMutableBufferPointer { wob in
                    weights.withUnsafeBufferPointer { wb in bias.withUnsafeBufferPointer { bb in
                        let xSlab = ActivationSlab(base: xb.baseAddress!, batch: c.n, height: c.h, width: c.w, channels: c.ci, stride: xs)
                        let dzSlab = ActivationSlab(base: db.baseAddress!, batch: c.n, height: oh, width: ow, channels: c.co, stride: zs)
                        let zSlab = ActivationSlab(base: zb.baseAddress!, batch: c.n, height: oh, width: ow, channels: c.co, stride: zs)
                        let dxSlab = ActivationSlab(base: gb.baseAddress!, batch: c.n, height: c.h, width: c.w, channels: c.ci, stride: xs)
                        ConvolutionGradient.forward(input: xSlab, hwio: wb.baseAddress!, window: c.window, bias: bb.baseAddress, into: zSlab)
                        if sh == 1 && sw == 1 {  // training never asks for a strided window's dX (the stem's input is the image)
                            ConvolutionGradient.inputGradient(outputGradient: dzSlab, hwio: wb.baseAddress!, window: c.window,
                                                              into: dxSlab, accumulate: true)
                        }
                        ConvolutionGradient.weightGradient(input: xSlab, outputGradient: dzSlab, window: c.window, into: wob.baseAddress!)
                        if bfloat16 { checkEpilogueMoments(xSlab, wb.baseAddress!, c, oh: oh, ow: ow, tag: tag, file: file, line: line) }
                    } }
                    } } }
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
                    if sh == 1 && sw == 1 {
                        for p in 0..<(c.n * c.h * c.w) {
                            for ch in 0..<c.ci { expect(dxOut[p * xs + ch], 1 + dx[p * c.ci + ch], 1 + dxMagnitude[p * c.ci + ch], "dX[\(p), \(ch)]") }
                            for ch in c.ci..<xs { expect(dxOut[p * xs + ch], 1, 0, "dX gap [\(p), \(ch)]") }
                        }
                    }
                    for k in 0..<dw.count { expect(dwOut[k], dw[k], dwMagnitude[k], "dW[\(k)]") }
                } }
            }
        }
    }

    /// Mixed_3b's 3x3 shape, smaller: SAME, channel counts that leave partial tiles and panels; the
    /// weight gradient's K blocks start inside output rows.
    func testThreeByThreeSameWithRaggedChannelCounts() {
        check(Case(n: 2, h: 28, w: 28, ci: 13, co: 37, window: Window2D(3)), .paddedBands)
    }

    /// Many channels: each image is cut into several bands of output rows (forward and weight
    /// gradient), whose halo rows are copied twice.
    func testSeveralBandsPerImage() {
        check(Case(n: 1, h: 30, w: 26, ci: 160, co: 20, window: Window2D(3)), .paddedBands)
    }

    /// The stem's 7x7 stride 2 on 3 channels (TF's SAME puts the extra padding after), a 3x3
    /// stride 2, a 1x1 stride 2 and a non-square window with different strides.
    func testStridedWindows() {
        check(Case(n: 2, h: 52, w: 50, ci: 3, co: 20, window: Window2D(7, stride: 2)), .paddedBands)
        check(Case(n: 1, h: 49, w: 50, ci: 6, co: 17, window: Window2D(3, stride: 2)), .paddedBands)
        check(Case(n: 2, h: 7, w: 7, ci: 8, co: 16, window: Window2D(1, stride: 2)), .gathered)
        check(Case(n: 1, h: 9, w: 11, ci: 5, co: 7, window: Window2D(kernel: (3, 2), stride: (2, 1))), .gathered)
    }

    /// VALID, PyTorch's symmetric padding of a 5x5 window (the paper's and torchvision's
    /// branches) and a non-square kernel, on long and on short rows.
    func testOtherPaddingsAndShapes() {
        check(Case(n: 1, h: 27, w: 27, ci: 5, co: 18, window: Window2D(3, padding: .valid)), .paddedBands)
        check(Case(n: 2, h: 25, w: 25, ci: 6, co: 17, window: Window2D(5, padding: .symmetric(2))), .paddedBands)
        check(Case(n: 1, h: 9, w: 30, ci: 5, co: 33, window: Window2D(kernel: (2, 3))), .paddedBands)
        check(Case(n: 2, h: 9, w: 8, ci: 7, co: 18, window: Window2D(3, padding: .valid)), .gathered)
        check(Case(n: 2, h: 7, w: 9, ci: 6, co: 17, window: Window2D(5, padding: .symmetric(2))), .gathered)
        check(Case(n: 2, h: 6, w: 7, ci: 5, co: 33, window: Window2D(kernel: (2, 3))), .gathered)
    }

    /// Small images (Mixed_5's 4x4 maps at 112x112), several to a weight-gradient chunk: their
    /// padded rows lie side by side in the chunk's copy and their dZ rows are packed output row
    /// by output row, image after image (batch 8+: two or more images per chunk on one and two
    /// threads). With SAME, symmetric and VALID padding, a non-square kernel, slices of wider
    /// buffers, and a batch that leaves a short last chunk.
    func testSmallImagesShareWeightGradientChunks() {
        check(Case(n: 8, h: 4, w: 4, ci: 12, co: 19, window: Window2D(3)), .gathered)
        check(Case(n: 9, h: 5, w: 6, ci: 7, co: 33, window: Window2D(5, padding: .symmetric(2)), xStride: 9, zStride: 40), .gathered)
        check(Case(n: 10, h: 6, w: 5, ci: 5, co: 17, window: Window2D(kernel: (2, 3), padding: .valid)), .gathered)
    }

    /// 1x1 from channel slices: a plain GEMM, and a weight gradient that reads X in place across
    /// images, in several chunks of pixels.
    func testOneByOneFromChannelSlicesOverSeveralChunks() {
        check(Case(n: 2, h: 50, w: 50, ci: 20, co: 33, window: Window2D(1), xStride: 27, zStride: 40), .plainGEMM)
    }

    /// Input and output are channel slices of wider buffers (an Inception block's concatenation).
    func testChannelSlices() {
        check(Case(n: 2, h: 24, w: 25, ci: 12, co: 16, window: Window2D(3), xStride: 30, zStride: 21), .paddedBands)
        check(Case(n: 2, h: 8, w: 8, ci: 12, co: 16, window: Window2D(3), xStride: 30, zStride: 17), .gathered)
    }

    /// A window covering its whole input (torchvision's auxiliary fc1: 4x4 VALID on a 4x4 map) runs
    /// as a 1x1 over KH·KW·CI channels on a dense input, as a window on a channel slice.
    func testWindowCoveringItsWholeInputIsAFullyConnectedLayer() {
        check(Case(n: 3, h: 4, w: 4, ci: 9, co: 21, window: Window2D(4, padding: .valid)), .fullyConnected)
        check(Case(n: 2, h: 3, w: 5, ci: 4, co: 7, window: Window2D(kernel: (3, 5), padding: .valid)), .fullyConnected)
        check(Case(n: 2, h: 4, w: 4, ci: 6, co: 5, window: Window2D(4, padding: .valid), xStride: 8), .gathered)
    }

    /// Every case above in bfloat16 products (`BFloat16Training`), on the AVX512-BF16 kernels where
    /// the CPU has them and on the portable loop (the float32 kernel families other than AVX-512).
    func testBFloat16ProductsMatchTheDefinitionsOnRoundedOperands() {
        let cases: [Case] = [
            Case(n: 2, h: 28, w: 28, ci: 13, co: 37, window: Window2D(3)),
            Case(n: 1, h: 30, w: 26, ci: 160, co: 20, window: Window2D(3)),
            Case(n: 2, h: 52, w: 50, ci: 3, co: 20, window: Window2D(7, stride: 2)),
            Case(n: 2, h: 7, w: 7, ci: 8, co: 16, window: Window2D(1, stride: 2)),
            Case(n: 1, h: 9, w: 11, ci: 5, co: 7, window: Window2D(kernel: (3, 2), stride: (2, 1))),
            Case(n: 2, h: 7, w: 9, ci: 6, co: 17, window: Window2D(5, padding: .symmetric(2))),
            Case(n: 2, h: 9, w: 8, ci: 7, co: 18, window: Window2D(3, padding: .valid)),
            Case(n: 2, h: 50, w: 50, ci: 20, co: 33, window: Window2D(1), xStride: 27, zStride: 40),
            Case(n: 2, h: 8, w: 8, ci: 12, co: 16, window: Window2D(3), xStride: 30, zStride: 17),
            Case(n: 3, h: 4, w: 4, ci: 9, co: 21, window: Window2D(4, padding: .valid)),
            // Small images, several to a product (forward, input gradient and weight gradient),
            // with a short last group.
            Case(n: 9, h: 5, w: 6, ci: 7, co: 18, window: Window2D(3)),
            Case(n: 7, h: 8, w: 7, ci: 5, co: 9, window: Window2D(3, stride: 2), zStride: 11),
        ]
        for c in cases { check(c, nil, bfloat16: true) }
    }

    /// With bfloat16 products the forward of a batch-normed convolution also returns Z's
    /// per-channel mean and biased variance, summed by the kernel as it stores Z: they must be
    /// those of the Z it stored (each path and kernel has its own epilogue).
    private func checkEpilogueMoments(_ x: ActivationSlab, _ w: UnsafePointer<Float>, _ c: Case, oh: Int, ow: Int, tag: String,
                                      file: StaticString, line: UInt) {
        let zs = max(c.zStride, c.co), pixels = c.n * oh * ow
        var z = [Float](repeating: .nan, count: pixels * zs)
        let sums = ColumnSums()
        for round in 0..<2 {  // the second reuses the working memory, which must start from zero again
            guard let (mean, variance) = z.withUnsafeMutableBufferPointer({
                ConvolutionGradient.forwardWithMoments(input: x, hwio: w, window: c.window,
                                                       into: ActivationSlab(base: $0.baseAddress!, batch: c.n, height: oh, width: ow,
                                                                            channels: c.co, stride: zs), sums: sums,
                                                       moments: ChannelMoments())
            }) else { return XCTFail("\(tag): no moments with bfloat16 products", file: file, line: line) }
            for o in 0..<c.co {
                let values = (0..<pixels).map { Double(z[$0 * zs + o]) }
                let m = values.reduce(0, +) / Double(pixels)
                let v = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(pixels)
                let scale = values.reduce(0) { $0 + $1 * $1 } / Double(pixels)
                XCTAssertEqual(Double(mean[o]), m, accuracy: 1e-6 * scale.squareRoot() + 1e-12, "\(tag) round \(round): mean of channel \(o)",
                               file: file, line: line)
                XCTAssertEqual(Double(variance[o]), v, accuracy: 1e-5 * scale + 1e-12, "\(tag) round \(round): variance of channel \(o)",
                               file: file, line: line)
            }
        }
    }

    /// bfloat16 rounding as the kernels do it: to nearest, ties to even.
    private static func roundedToBFloat16(_ x: Float) -> Float {
        let bits = x.bitPattern
        return Float(bitPattern: (bits &+ 0x7fff &+ ((bits >> 16) & 1)) & 0xffff_0000)
    }
}
