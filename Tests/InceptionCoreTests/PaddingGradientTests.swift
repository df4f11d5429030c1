import Foundation
import InceptionCore
import XCTest

// The convolution and pooling gradients under PyTorch-style padding: `.symmetric(p)` (p on each
// side, floor rounding) and `.symmetricCeil(p)` (ceil_mode: an extra window that may hang over
// the end, dropped if it would start in the right padding). Checked against central finite
// differences of Double reference forwards written from PyTorch's definitions, not from
// `Window2D`, so the geometry is checked too.
//
// Tolerance: the kernels are float32, the references Double (numeric gradients accurate to
// ~1e-9 relative), so |analytic − numeric| ≤ 1e-4 · max|numeric| measures only the kernels' own
// rounding (~1e-6) with room for sums over K·CO terms. Convolution and average pooling are
// linear, so a large step (1e-2) is exact up to rounding; max pooling is piecewise linear and
// its inputs are spread further apart than the step, so no step changes an arg-max.
//
// The finite-difference helpers are in FiniteDifferences.swift.

/// `count` distinct values 0.25·g, 1.25·g, … (g = 2·range/count) shuffled and centred on `offset`:
/// neighbours are g apart, far more than a finite-difference step, so max pooling has no ties.
fileprivate func distinctValues(_ count: Int, range: Float = 1, offset: Float = 0, seed: UInt64) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    var values = (0..<count).map { Float($0) - Float(count) / 2 }
    values.shuffle(using: &rng)
    let gap = 2 * range / Float(max(count, 1))
    return values.map { ($0 + 0.25) * gap + offset }
}

/// A square PyTorch window: kernel, stride, padding p on each side, ceil_mode.
fileprivate struct TorchWindow {
    var kernel: Int, stride: Int, pad: Int, ceil: Bool

    var window: Window2D { Window2D(kernel, stride: stride, padding: ceil ? .symmetricCeil(pad) : .symmetric(pad)) }

    /// PyTorch's `pooling_output_shape` (and, without ceil, the convolution's output size).
    func output(_ input: Int) -> Int {
        let span = input + 2 * pad - kernel
        guard ceil else { return span / stride + 1 }
        var out = (span + stride - 1) / stride + 1
        if (out - 1) * stride >= input + pad { out -= 1 }  // the last window must start before the right padding
        return out
    }
}

final class PaddingGradientTests: XCTestCase {
    // MARK: Double references

    /// Z[n, oy, ox, o] = Σ X[n, oy·s + kh − p, ox·s + kw − p, c] · W[kh, kw, c, o], zero outside X.
    private func referenceConv(_ x: [Double], xShape: [Int], _ w: [Double], co: Int, _ t: TorchWindow) -> [Double] {
        let (n, h, wd, ci) = (xShape[0], xShape[1], xShape[2], xShape[3])
        let (oh, ow) = (t.output(h), t.output(wd))
        var out = [Double](repeating: 0, count: n * oh * ow * co)
        for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow { for kh in 0..<t.kernel { for kw in 0..<t.kernel {
            let iy = oy * t.stride + kh - t.pad, ix = ox * t.stride + kw - t.pad
            guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
            for c in 0..<ci {
                let v = x[((b * h + iy) * wd + ix) * ci + c]
                for o in 0..<co { out[((b * oh + oy) * ow + ox) * co + o] += v * w[((kh * t.kernel + kw) * ci + c) * co + o] }
            }
        } } } } }
        return out
    }

    /// Max (padding never wins) or mean over the window's real pixels.
    private func referencePool(_ kind: Pooling.Kind, _ x: [Double], shape: [Int], _ t: TorchWindow) -> [Double] {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let (oh, ow) = (t.output(h), t.output(w))
        var out = [Double](repeating: 0, count: n * oh * ow * c)
        for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow { for k in 0..<c {
            var acc = kind == .max ? -Double.infinity : 0, count = 0
            for iy in (oy * t.stride - t.pad)..<(oy * t.stride - t.pad + t.kernel) where iy >= 0 && iy < h {
                for ix in (ox * t.stride - t.pad)..<(ox * t.stride - t.pad + t.kernel) where ix >= 0 && ix < w {
                    let v = x[((b * h + iy) * w + ix) * c + k]
                    acc = kind == .max ? max(acc, v) : acc + v
                    count += 1
                }
            }
            out[((b * oh + oy) * ow + ox) * c + k] = kind == .max ? acc : acc / Double(count)
        } } } }
        return out
    }

    // MARK: Convolution

    private struct ConvCase {
        let t: TorchWindow, xShape: [Int], co: Int
        let x: Tensor, w: Tensor, r: [Float]
        var outShape: [Int] { [xShape[0], t.output(xShape[1]), t.output(xShape[2]), co] }
    }

    /// Random X, W and R (= dZ) for a convolution, after checking the forward's shape and values.
    private func convCase(_ t: TorchWindow, xShape: [Int], co: Int, seed: UInt64,
                          file: StaticString = #filePath, line: UInt = #line) -> ConvCase {
        let wShape = [t.kernel, t.kernel, xShape[3], co]
        let x = Tensor(shape: xShape, scalars: seededValues(xShape.reduce(1, *), seed: seed))
        let w = Tensor(shape: wShape, scalars: seededValues(wShape.reduce(1, *), seed: seed + 1))
        let outShape = [xShape[0], t.output(xShape[1]), t.output(xShape[2]), co]
        let c = ConvCase(t: t, xShape: xShape, co: co, x: x, w: w, r: seededValues(outShape.reduce(1, *), seed: seed + 2))
        let z = ConvolutionGradient.forward(x, weights: w, window: t.window)
        XCTAssertEqual(z.shape, outShape, "output shape", file: file, line: line)
        let zd = referenceConv(x.scalars.map(Double.init), xShape: xShape, w.scalars.map(Double.init), co: co, t)
        if z.shape == outShape {
            for i in zd.indices { XCTAssertEqual(Double(z.scalars[i]), zd[i], accuracy: 1e-4, "forward[\(i)]", file: file, line: line) }
        }
        return c
    }

    private func checkConvInputGradient(_ c: ConvCase, file: StaticString = #filePath, line: UInt = #line) {
        let dx = ConvolutionGradient.inputGradient(Tensor(shape: c.outShape, scalars: c.r), weights: c.w, window: c.t.window,
                                                   inputHeight: c.xShape[1], inputWidth: c.xShape[2])
        XCTAssertEqual(dx.shape, c.xShape, file: file, line: line)
        let xd = c.x.scalars.map(Double.init), wd = c.w.scalars.map(Double.init)
        assertMatchesCentralDifferences(dx.scalars, step: 1e-2, "conv dX", file: file, line: line) { i, d in
            var xp = xd; xp[i] += d
            return dot(c.r, referenceConv(xp, xShape: c.xShape, wd, co: c.co, c.t))
        }
    }

    private func checkConvWeightGradient(_ c: ConvCase, file: StaticString = #filePath, line: UInt = #line) {
        let dw = ConvolutionGradient.weightGradient(c.x, Tensor(shape: c.outShape, scalars: c.r), window: c.t.window)
        XCTAssertEqual(dw.shape, c.w.shape, file: file, line: line)
        let xd = c.x.scalars.map(Double.init), wd = c.w.scalars.map(Double.init)
        assertMatchesCentralDifferences(dw.scalars, step: 1e-2, "conv dW", file: file, line: line) { i, d in
            var wp = wd; wp[i] += d
            return dot(c.r, referenceConv(xd, xShape: c.xShape, wp, co: c.co, c.t))
        }
    }

    /// 3x3, stride 1, pad 1 on 5x7 (torchvision's Inception 3x3 convolutions): output 5x7.
    private func symmetric1Case() -> ConvCase {
        convCase(TorchWindow(kernel: 3, stride: 1, pad: 1, ceil: false), xShape: [2, 5, 7, 3], co: 4, seed: 10)
    }

    /// 7x7, stride 2, pad 3 on 9x11 (the stem, odd sizes): output 5x6.
    private func symmetric3Stride2Case() -> ConvCase {
        let c = convCase(TorchWindow(kernel: 7, stride: 2, pad: 3, ceil: false), xShape: [1, 9, 11, 3], co: 4, seed: 20)
        XCTAssertEqual(c.outShape, [1, 5, 6, 4])
        return c
    }

    func testConvolutionInputGradientWithSymmetricPadding1Kernel3Stride1() { checkConvInputGradient(symmetric1Case()) }
    func testConvolutionWeightGradientWithSymmetricPadding1Kernel3Stride1() { checkConvWeightGradient(symmetric1Case()) }
    func testConvolutionInputGradientWithSymmetricPadding3Kernel7Stride2() { checkConvInputGradient(symmetric3Stride2Case()) }
    func testConvolutionWeightGradientWithSymmetricPadding3Kernel7Stride2() { checkConvWeightGradient(symmetric3Stride2Case()) }

    // MARK: Pooling

    /// The pooled shape and values (both forwards) against the reference, then dX by finite differences.
    private func checkPoolGradient(_ kind: Pooling.Kind, _ t: TorchWindow, shape: [Int], expectedOutput: (Int, Int), offset: Float = 0,
                                   seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let count = shape.reduce(1, *)
        let x = Tensor(shape: shape, scalars: distinctValues(count, offset: offset, seed: seed))
        let xd = x.scalars.map(Double.init)
        let outShape = [shape[0], t.output(shape[1]), t.output(shape[2]), shape[3]]
        XCTAssertEqual([outShape[1], outShape[2]], [expectedOutput.0, expectedOutput.1], "PyTorch output size", file: file, line: line)
        let y = PoolingGradient.forward(kind, x, window: t.window)
        XCTAssertEqual(y.shape, outShape, "output shape", file: file, line: line)
        guard y.shape == outShape else { return }
        // Within rounding: the inference forward multiplies by 1/count, the training one divides by count.
        XCTAssertLessThan(Pooling.pool(kind, x, t.window).maxAbsDifference(y), 1e-6, "inference and training forwards agree",
                          file: file, line: line)
        let yd = referencePool(kind, xd, shape: shape, t)
        for i in yd.indices { XCTAssertEqual(Double(y.scalars[i]), yd[i], accuracy: 1e-6, "forward[\(i)]", file: file, line: line) }
        let r = seededValues(outShape.reduce(1, *), seed: seed + 1)
        let dy = Tensor(shape: outShape, scalars: r)
        let dx = kind == .max ? PoolingGradient.maxPoolInputGradient(x, dy, window: t.window)
            : PoolingGradient.averagePoolInputGradient(dy, window: t.window, inputShape: shape)
        // Max: inputs are 2/count apart, so a step of 1e-2/count never reorders them.
        let step = kind == .max ? 1e-2 / Double(count) : 1e-2
        assertMatchesCentralDifferences(dx.scalars, step: step, "\(kind) pool \(t) \(shape)", file: file, line: line) { i, d in
            var xp = xd; xp[i] += d
            return dot(r, referencePool(kind, xp, shape: shape, t))
        }
    }

    /// 3x3 stride 2 ceil mode on 7x7 (GoogLeNet's pools): the windows tile exactly, 3x3 out.
    func testMaxPoolGradientCeilMode3x3Stride2On7x7() {
        checkPoolGradient(.max, TorchWindow(kernel: 3, stride: 2, pad: 0, ceil: true), shape: [2, 7, 7, 3], expectedOutput: (3, 3), seed: 30)
    }

    /// 3x3 stride 2 ceil mode on 8x8: a fourth window [6, 9) hangs over the end, clipped to [6, 8).
    func testMaxPoolGradientCeilMode3x3Stride2On8x8() {
        checkPoolGradient(.max, TorchWindow(kernel: 3, stride: 2, pad: 0, ceil: true), shape: [2, 8, 8, 3], expectedOutput: (4, 4), seed: 40)
    }

    /// 3x3 stride 1 pad 1 ceil mode (torchvision's Inception pool branch) on 7x6, all inputs
    /// negative: a zero padding would win the border windows, the real pixels must.
    func testMaxPoolGradientCeilModePadding1Stride1IgnoresThePadding() {
        checkPoolGradient(.max, TorchWindow(kernel: 3, stride: 1, pad: 1, ceil: true), shape: [2, 7, 6, 3], expectedOutput: (7, 6),
                          offset: -3, seed: 50)
    }

    /// 3x3 stride 2 pad 1 ceil mode on 8x8: the fifth window starts at the last pixel (7) and
    /// covers it alone; on 5x5 with 2x2 stride 2 pad 1 a fourth window would start in the right
    /// padding and is dropped (3 windows).
    func testMaxPoolGradientCeilModeWithPaddingAtBothEnds() {
        checkPoolGradient(.max, TorchWindow(kernel: 3, stride: 2, pad: 1, ceil: true), shape: [1, 8, 8, 2], expectedOutput: (5, 5),
                          offset: -3, seed: 60)
        checkPoolGradient(.max, TorchWindow(kernel: 2, stride: 2, pad: 1, ceil: true), shape: [1, 5, 5, 2], expectedOutput: (3, 3),
                          offset: -3, seed: 61)
    }

    /// Average pooling keeps this project's (TF SAME) convention under symmetric padding too: the
    /// mean over the real pixels only, in forward and gradient alike (PyTorch's default
    /// count_include_pad=True would divide by the full 3x3 instead).
    func testAveragePoolGradientWithSymmetricPaddingCountsOnlyRealPixels() {
        checkPoolGradient(.average, TorchWindow(kernel: 3, stride: 1, pad: 1, ceil: true), shape: [2, 7, 6, 3], expectedOutput: (7, 6), seed: 70)
        checkPoolGradient(.average, TorchWindow(kernel: 3, stride: 2, pad: 1, ceil: false), shape: [1, 8, 7, 2], expectedOutput: (4, 4), seed: 71)
        checkPoolGradient(.average, TorchWindow(kernel: 3, stride: 2, pad: 0, ceil: true), shape: [1, 8, 8, 2], expectedOutput: (4, 4), seed: 72)
    }
}
