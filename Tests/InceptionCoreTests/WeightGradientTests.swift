@testable import InceptionCore
import XCTest

/// The weight gradient read in place (`ik_gemm_transposed_a`: the input seen column by column,
/// no im2col copy) against the definition, dW[kh, kw, c, o] =
/// Σ X[n, oh·sh + kh − padTop, ow·sw + kw − padLeft, c] · dZ[n, oh, ow, o] (taps in the padding
/// read 0), summed in Double. Every case runs on every kernel family this CPU has, on one and two
/// threads.
final class WeightGradientTests: XCTestCase {
    private struct Case {
        var n, h, w, ci, co: Int
        var window: Window2D
        /// Floats per pixel of the buffers X and dZ are slices of (0: dense), so the band copy's
        /// strided branch and the strided dZ packing are covered too.
        var xStride = 0, dzStride = 0
        var label: String { "\(window.kernelHeight)x\(window.kernelWidth) \(window.padding) \(n)x\(h)x\(w) \(ci)→\(co)" }
    }

    private func check(_ c: Case, file: StaticString = #filePath, line: UInt = #line) {
        guard let g = c.window.geometry(inputHeight: c.h, inputWidth: c.w) else { return XCTFail("does not fit", file: file, line: line) }
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let xs = max(c.xStride, c.ci), zs = max(c.dzStride, c.co)
        var generator = SeededGenerator(seed: UInt64(c.h * 1000 + c.ci * 10 + c.co))
        var x = (0..<(c.n * c.h * c.w * xs)).map { _ in Float.random(in: -1...1, using: &generator) }
        var dz = (0..<(c.n * oh * ow * zs)).map { _ in Float.random(in: -1...1, using: &generator) }
        let (kh, kw) = (c.window.kernelHeight, c.window.kernelWidth)
        let count = kh * kw * c.ci * c.co
        // The definition, with Σ|terms| for a rounding tolerance.
        var expected = [Double](repeating: 0, count: count), magnitude = [Double](repeating: 0, count: count)
        for b in 0..<c.n { for y in 0..<oh { for xx in 0..<ow {
            let zRow = ((b * oh + y) * ow + xx) * zs
            for i in 0..<kh { for j in 0..<kw {
                let iy = y * c.window.strideHeight + i - g.padTop, ix = xx * c.window.strideWidth + j - g.padLeft
                guard iy >= 0, iy < c.h, ix >= 0, ix < c.w else { continue }
                let xRow = ((b * c.h + iy) * c.w + ix) * xs
                for ch in 0..<c.ci {
                    let xv = Double(x[xRow + ch]), base = ((i * kw + j) * c.ci + ch) * c.co
                    for o in 0..<c.co {
                        let term = xv * Double(dz[zRow + o])
                        expected[base + o] += term; magnitude[base + o] += abs(term)
                    }
                }
            } }
        } } }
        for kernel in GEMM.Kernel.allCases {
            for threads in [1, 2] {
                withKernel(kernel) { withThreads(threads) {
                    var dw = [Float](repeating: .nan, count: count)
                    x.withUnsafeMutableBufferPointer { xb in dz.withUnsafeMutableBufferPointer { zb in dw.withUnsafeMutableBufferPointer { wb in
                        let xSlab = ActivationSlab(base: xb.baseAddress!, batch: c.n, height: c.h, width: c.w, channels: c.ci, stride: xs)
                        let zSlab = ActivationSlab(base: zb.baseAddress!, batch: c.n, height: oh, width: ow, channels: c.co, stride: zs)
                        ConvolutionGradient.weightGradient(input: xSlab, outputGradient: zSlab, window: c.window, into: wb.baseAddress!)
                    } } }
                    var failures = 0
                    for i in 0..<count where !(abs(Double(dw[i]) - expected[i]) <= 1e-5 * magnitude[i] + 1e-30) && failures < 3 {
                        failures += 1
                        XCTFail("\(c.label) \(kernel) \(threads) thread(s): dW[\(i)] = \(dw[i]), expected \(expected[i])", file: file, line: line)
                    }
                } }
            }
        }
    }

    /// One band per image; a K block of 870 pixels split in blocks that start inside output rows.
    func testThreeByThreeSameWithRaggedChannelCounts() {
        check(Case(n: 2, h: 30, w: 29, ci: 13, co: 37, window: Window2D(3)))
    }

    /// Wide input rows: each image is cut into several bands of output rows.
    func testThreeByThreeOverSeveralBandsPerImage() {
        check(Case(n: 1, h: 20, w: 40, ci: 200, co: 20, window: Window2D(3)))
    }

    /// VALID (no padding: the band is the input rows themselves) and PyTorch's symmetric padding of
    /// a 5x5 window (the paper's and torchvision's branches).
    func testValidAndSymmetricPadding() {
        check(Case(n: 2, h: 9, w: 8, ci: 7, co: 18, window: Window2D(3, padding: .valid)))
        check(Case(n: 2, h: 7, w: 9, ci: 6, co: 17, window: Window2D(5, padding: .symmetric(2))))
    }

    /// A non-square kernel: TF's SAME puts the odd padding column after the input.
    func testNonSquareKernel() {
        check(Case(n: 2, h: 6, w: 7, ci: 5, co: 33, window: Window2D(kernel: (2, 3))))
    }

    /// 1x1 reads X in place across images, in chunks of pixels, from channel slices.
    func testOneByOneFromChannelSlicesOverSeveralChunks() {
        check(Case(n: 2, h: 50, w: 50, ci: 20, co: 33, window: Window2D(1), xStride: 27, dzStride: 40))
    }

    /// Strided windows: the stem's 7x7 stride 2 on 3 channels (TF's SAME puts the extra padding
    /// after), a 3x3 stride 2, and a 1x1 stride 2 (which cannot read X directly).
    func testStridedWindows() {
        check(Case(n: 2, h: 23, w: 22, ci: 3, co: 64, window: Window2D(7, stride: 2)))
        check(Case(n: 2, h: 9, w: 10, ci: 10, co: 19, window: Window2D(3, stride: 2)))
        check(Case(n: 2, h: 7, w: 7, ci: 8, co: 16, window: Window2D(1, stride: 2)))
        check(Case(n: 1, h: 9, w: 11, ci: 5, co: 7, window: Window2D(kernel: (3, 2), stride: (2, 1))))
    }

    /// A window covering its whole input (a fully connected layer): one GEMM over the batch when
    /// dense, bands of one row per image on a channel slice.
    func testWindowCoveringItsWholeInput() {
        check(Case(n: 3, h: 4, w: 4, ci: 9, co: 21, window: Window2D(4, padding: .valid)))
        check(Case(n: 2, h: 4, w: 4, ci: 6, co: 5, window: Window2D(4, padding: .valid), xStride: 8))
    }

    /// 3x3 from channel slices (the band copy gathers pixel by pixel).
    func testThreeByThreeFromChannelSlices() {
        check(Case(n: 2, h: 8, w: 8, ci: 12, co: 16, window: Window2D(3), xStride: 30, dzStride: 17))
    }
}
