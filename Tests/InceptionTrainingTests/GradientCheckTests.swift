import Foundation
@testable import InceptionTraining
import Inception
import XCTest

/// Every backward kernel against central finite differences of the Double reference forward.
/// Loss L = Σ R ⊙ f(inputs) with a fixed random R, so ∂L/∂f = R is the output gradient fed in.
/// Tolerance: |analytic − numeric| ≤ 1e-4 · max|numeric| (float32 kernels; measured errors are
/// ~1e-6, the bound leaves room for accumulation over K·CO terms).
final class GradientCheckTests: XCTestCase {
    private func dot(_ r: [Double], _ y: DT) -> Double { zip(r, y.v).reduce(0) { $0 + $1.0 * $1.1 } }

    private func checkConvolution(n: Int, h: Int, w: Int, ci: Int, co: Int, kernel: (Int, Int), stride: (Int, Int),
                                  padding: Padding, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let window = Window2D(kernel: kernel, stride: stride, padding: padding)
        guard let g = window.geometry(inputHeight: h, inputWidth: w) else { return XCTFail("window does not fit", file: file, line: line) }
        let x = Tensor(shape: [n, h, w, ci], scalars: randomValues(n * h * w * ci, seed: seed))
        let wt = Tensor(shape: [kernel.0, kernel.1, ci, co], scalars: randomValues(kernel.0 * kernel.1 * ci * co, seed: seed + 1))
        let outShape = [n, g.outputHeight, g.outputWidth, co]
        let r = Tensor(shape: outShape, scalars: randomValues(outShape.reduce(1, *), seed: seed + 2))
        let rd = r.scalars.map(Double.init)
        let label = "conv \(kernel) s\(stride) \(padding) \(h)x\(w) \(ci)→\(co)"
        // Forward against the reference.
        let z = ConvolutionGradient.forward(x, weights: wt, window: window)
        XCTAssertLessThan(z.maxAbsDifference(Ref.conv(DT(x), DT(wt), window: window).tensor), 1e-4, label, file: file, line: line)
        let dx = ConvolutionGradient.inputGradient(r, weights: wt, window: window, inputHeight: h, inputWidth: w)
        let dw = ConvolutionGradient.weightGradient(x, r, window: window)
        XCTAssertEqual(dx.shape, x.shape, file: file, line: line)
        XCTAssertEqual(dw.shape, wt.shape, file: file, line: line)
        let xd = DT(x), wd = DT(wt)
        // Linear in each argument: a larger step is exact up to rounding.
        checkGradient(label + " dX", analytic: dx.scalars, samples: 80, step: 1e-3, file: file, line: line) { i, d in
            var xp = xd; xp.v[i] += d
            return dot(rd, Ref.conv(xp, wd, window: window))
        }
        checkGradient(label + " dW", analytic: dw.scalars, samples: 80, step: 1e-3, file: file, line: line) { i, d in
            var wp = wd; wp.v[i] += d
            return dot(rd, Ref.conv(xd, wp, window: window))
        }
        // Bias: Σ over pixels.
        var rr = r
        let db = rr.withSlab { BatchNormTraining.channelSums($0) }
        checkGradient(label + " dBias", analytic: db, step: 1e-3, file: file, line: line) { i, d in
            var b = [Double](repeating: 0, count: co); b[i] = d
            return dot(rd, Ref.conv(xd, wd, window: window, bias: b))
        }
    }

    func testConvolutionGradients1x1() {
        checkConvolution(n: 2, h: 5, w: 4, ci: 7, co: 5, kernel: (1, 1), stride: (1, 1), padding: .same, seed: 10)
        checkConvolution(n: 2, h: 5, w: 4, ci: 32, co: 40, kernel: (1, 1), stride: (1, 1), padding: .same, seed: 11)
        checkConvolution(n: 1, h: 5, w: 5, ci: 4, co: 3, kernel: (1, 1), stride: (2, 2), padding: .same, seed: 12)
    }

    func testConvolutionGradients3x3SameAndValid() {
        checkConvolution(n: 2, h: 6, w: 5, ci: 16, co: 20, kernel: (3, 3), stride: (1, 1), padding: .same, seed: 20)
        checkConvolution(n: 2, h: 7, w: 6, ci: 5, co: 6, kernel: (3, 3), stride: (2, 2), padding: .same, seed: 21)
        checkConvolution(n: 1, h: 8, w: 7, ci: 24, co: 9, kernel: (3, 3), stride: (1, 1), padding: .valid, seed: 22)
        checkConvolution(n: 2, h: 7, w: 7, ci: 3, co: 4, kernel: (2, 2), stride: (2, 2), padding: .valid, seed: 23)
    }

    /// The stem's 7x7 stride 2 on even and odd sizes (TF's asymmetric SAME padding), and a
    /// non-square kernel with different strides.
    func testConvolutionGradients7x7Stride2AndNonSquare() {
        checkConvolution(n: 1, h: 12, w: 11, ci: 3, co: 8, kernel: (7, 7), stride: (2, 2), padding: .same, seed: 30)
        checkConvolution(n: 2, h: 9, w: 10, ci: 3, co: 5, kernel: (7, 7), stride: (2, 2), padding: .same, seed: 31)
        checkConvolution(n: 1, h: 7, w: 9, ci: 6, co: 5, kernel: (3, 2), stride: (2, 1), padding: .same, seed: 32)
    }

    /// Many output pixels: the weight gradient is cut into several blocks whose partial sums are added.
    func testWeightGradientOverManyBlocksMatchesReference() {
        let window = Window2D(3, stride: 1)
        let x = Tensor(shape: [3, 40, 40, 16], scalars: randomValues(3 * 1600 * 16, seed: 40))
        let r = Tensor(shape: [3, 40, 40, 32], scalars: randomValues(3 * 1600 * 32, seed: 41))
        // 4800 output pixels: at least two blocks per thread, each block's partial sum added in order.
        let dw = ConvolutionGradient.weightGradient(x, r, window: window)
        // Reference: dW[kh,kw,c,o] = Σ X[n, oh+kh−1, ow+kw−1, c]·R[n, oh, ow, o].
        let xd = DT(x), rd = DT(r)
        var worst = 0.0, scale = 0.0
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<200 {
            let i = Int.random(in: 0..<dw.count, using: &rng)
            let o = i % 32, c = (i / 32) % 16, kw = (i / 512) % 3, kh = i / 1536
            var s = 0.0
            for b in 0..<3 { for oy in 0..<40 { for ox in 0..<40 {
                let iy = oy + kh - 1, ix = ox + kw - 1
                if iy < 0 || iy >= 40 || ix < 0 || ix >= 40 { continue }
                s += xd.v[((b * 40 + iy) * 40 + ix) * 16 + c] * rd.v[((b * 40 + oy) * 40 + ox) * 32 + o]
            } } }
            worst = max(worst, abs(Double(dw.scalars[i]) - s)); scale = max(scale, abs(s))
        }
        XCTAssertLessThan(worst, 1e-5 * scale)
    }

    /// Slabs: reading a channel slice of a wider buffer and writing (or adding) into one gives
    /// the same numbers as dense tensors.
    func testConvolutionOnChannelSlicesAndAccumulation() {
        let window = Window2D(3, stride: 1)
        let (n, h, w, ci, co) = (2, 5, 6, 8, 12)
        let x = Tensor(shape: [n, h, w, ci], scalars: randomValues(n * h * w * ci, seed: 50))
        let wt = Tensor(shape: [3, 3, ci, co], scalars: randomValues(9 * ci * co, seed: 51))
        let dz = Tensor(shape: [n, h, w, co], scalars: randomValues(n * h * w * co, seed: 52))
        let dense = ConvolutionGradient.forward(x, weights: wt, window: window)
        let denseDx = ConvolutionGradient.inputGradient(dz, weights: wt, window: window, inputHeight: h, inputWidth: w)
        let denseDw = ConvolutionGradient.weightGradient(x, dz, window: window)
        // x in columns 3..<11 of a 20-wide buffer; z in columns 5..<17 of a 30-wide one.
        var wideX = [Float](repeating: .nan, count: n * h * w * 20)
        var wideZ = [Float](repeating: .nan, count: n * h * w * 30)
        var wideDx = [Float](repeating: 1, count: n * h * w * 20)
        for p in 0..<(n * h * w) {
            for c in 0..<ci { wideX[p * 20 + 3 + c] = x.scalars[p * ci + c] }
            for c in 0..<co { wideZ[p * 30 + 5 + c] = dz.scalars[p * co + c] }
        }
        let packed = GEMM.pack(wt.scalars, rows: 9 * ci, columns: co)
        let wtT = wt.scalars.withUnsafeBufferPointer {
            ConvolutionGradient.packTransposedWeights($0.baseAddress!, kernelHeight: 3, kernelWidth: 3, inputChannels: ci, outputChannels: co)
        }
        var out = [Float](repeating: .nan, count: n * h * w * 30)
        var dw = [Float](repeating: 0, count: 9 * ci * co)
        wideX.withUnsafeMutableBufferPointer { xb in wideZ.withUnsafeMutableBufferPointer { zb in
        out.withUnsafeMutableBufferPointer { ob in wideDx.withUnsafeMutableBufferPointer { db in
            let xs = ActivationSlab(base: xb.baseAddress! + 3, batch: n, height: h, width: w, channels: ci, stride: 20)
            let zs = ActivationSlab(base: zb.baseAddress! + 5, batch: n, height: h, width: w, channels: co, stride: 30)
            let os = ActivationSlab(base: ob.baseAddress! + 5, batch: n, height: h, width: w, channels: co, stride: 30)
            let ds = ActivationSlab(base: db.baseAddress! + 3, batch: n, height: h, width: w, channels: ci, stride: 20)
            ConvolutionGradient.forward(input: xs, weights: packed, window: window, bias: nil, into: os)
            ConvolutionGradient.inputGradient(outputGradient: zs, transposedWeights: wtT, window: window, into: ds, accumulate: true)
            dw.withUnsafeMutableBufferPointer { ConvolutionGradient.weightGradient(input: xs, outputGradient: zs, window: window, into: $0.baseAddress!) }
        } } } }
        var worstZ: Float = 0, worstDx: Float = 0
        for p in 0..<(n * h * w) {
            for c in 0..<co { worstZ = max(worstZ, abs(out[p * 30 + 5 + c] - dense.scalars[p * co + c])) }
            XCTAssertTrue(out[p * 30].isNaN && out[p * 30 + 17].isNaN, "columns outside the slice untouched")
            for c in 0..<ci { worstDx = max(worstDx, abs(wideDx[p * 20 + 3 + c] - (1 + denseDx.scalars[p * ci + c]))) }
            XCTAssertEqual(wideDx[p * 20 + 2], 1)
        }
        XCTAssertLessThan(worstZ, 1e-5)
        XCTAssertLessThan(worstDx, 1e-5)
        XCTAssertLessThan(Tensor(shape: wt.shape, scalars: dw).maxAbsDifference(denseDw), 1e-5)
    }

    func testMaxPoolGradient() {
        for (h, w, k, s, padding) in [(7, 6, 3, 2, Padding.same), (5, 5, 3, 1, .same), (6, 7, 2, 2, .valid), (5, 7, 2, 2, .same)] {
            let window = Window2D(k, stride: s, padding: padding)
            let g = window.geometry(inputHeight: h, inputWidth: w)!
            let x = Tensor(shape: [2, h, w, 3], scalars: spacedValues(2 * h * w * 3, seed: UInt64(h * 10 + w)))
            let r = randomValues(2 * g.outputHeight * g.outputWidth * 3, seed: 3).map(Double.init)
            let dy = Tensor(shape: [2, g.outputHeight, g.outputWidth, 3], scalars: r.map(Float.init))
            let dx = PoolingGradient.maxPoolInputGradient(x, dy, window: window)
            let xd = DT(x)
            checkGradient("maxpool \(k)s\(s) \(padding) \(h)x\(w)", analytic: dx.scalars, samples: 1000, step: 1e-5) { i, d in
                var xp = xd; xp.v[i] += d
                return dot(r, Ref.pool(.max, xp, window: window))
            }
        }
    }

    /// Ties go to the first maximum in window (row-major) order, as TF's CPU MaxPoolGrad.
    func testMaxPoolGradientTiesGoToTheFirstMaximumInWindowOrder() {
        // 1 image, 3x3, 1 channel, all equal: a 2x2 stride-1 VALID pool has four windows, each
        // sends its gradient to its top-left pixel.
        let x = Tensor(repeating: 0.5, shape: [1, 3, 3, 1])
        let dy = Tensor(shape: [1, 2, 2, 1], scalars: [1, 2, 3, 4])
        let dx = PoolingGradient.maxPoolInputGradient(x, dy, window: Window2D(2, stride: 1, padding: .valid))
        XCTAssertEqual(dx.scalars, [1, 2, 0, 3, 4, 0, 0, 0, 0])
        // A tie between two later pixels: the earlier in row-major order wins.
        let y = Tensor(shape: [1, 2, 2, 1], scalars: [0, 2, 2, 1])
        let dy1 = Tensor(shape: [1, 1, 1, 1], scalars: [5])
        XCTAssertEqual(PoolingGradient.maxPoolInputGradient(y, dy1, window: Window2D(2, stride: 2, padding: .valid)).scalars, [0, 5, 0, 0])
    }

    func testAveragePoolGradientCountsOnlyRealPixels() {
        for (h, w, k, s, padding) in [(7, 6, 3, 2, Padding.same), (5, 5, 3, 1, .same), (7, 7, 7, 1, .valid), (9, 8, 7, 1, .valid)] {
            let window = Window2D(k, stride: s, padding: padding)
            let g = window.geometry(inputHeight: h, inputWidth: w)!
            let x = Tensor(shape: [2, h, w, 4], scalars: randomValues(2 * h * w * 4, seed: 60))
            let r = randomValues(2 * g.outputHeight * g.outputWidth * 4, seed: 61).map(Double.init)
            let dy = Tensor(shape: [2, g.outputHeight, g.outputWidth, 4], scalars: r.map(Float.init))
            let dx = PoolingGradient.averagePoolInputGradient(dy, window: window, inputShape: x.shape)
            let xd = DT(x)
            checkGradient("avgpool \(k)s\(s) \(padding) \(h)x\(w)", analytic: dx.scalars, samples: 1000, step: 1e-3) { i, d in
                var xp = xd; xp.v[i] += d
                return dot(r, Ref.pool(.average, xp, window: window))
            }
        }
    }

    func testGlobalAverageGradient() {
        let x = Tensor(shape: [3, 4, 5, 6], scalars: randomValues(360, seed: 70))
        var xx = x
        var y = Tensor(zeros: [3, 1, 1, 6])
        xx.withSlab { xs in y.withSlab { PoolingGradient.globalAverage(input: xs, into: $0) } }
        XCTAssertLessThan(y.maxAbsDifference(Ref.globalMean(DT(x)).tensor), 1e-6)
        let r = randomValues(18, seed: 71).map(Double.init)
        let dx = PoolingGradient.globalAverageInputGradient(Tensor(shape: [3, 1, 1, 6], scalars: r.map(Float.init)), inputShape: x.shape)
        let xd = DT(x)
        checkGradient("global mean", analytic: dx.scalars, samples: 400, step: 1e-3) { i, d in
            var xp = xd; xp.v[i] += d
            return dot(r, Ref.globalMean(xp))
        }
    }

    /// Training batch norm (+ ReLU), with and without gamma: dZ, dβ, dγ; and the batch statistics.
    func testBatchNormTrainingGradients() {
        for (useGamma, relu) in [(false, true), (true, true), (true, false), (false, false)] {
            let shape = [3, 4, 3, 5]
            let count = shape.reduce(1, *)
            // A mean well away from zero and unequal scales per channel.
            let z = Tensor(shape: shape, scalars: randomValues(count, range: 2, seed: 80).enumerated().map { $1 * Float(1 + $0 % 5) + 3 })
            let beta = randomValues(5, range: 0.5, seed: 81)
            let gamma: [Float]? = useGamma ? randomValues(5, seed: 82).map { 1 + 0.5 * $0 } : nil
            let r = randomValues(count, seed: 83).map(Double.init)
            let dy = Tensor(shape: shape, scalars: r.map(Float.init))
            let (y, mean, variance) = BatchNormTraining.forward(z, beta: beta, gamma: gamma, epsilon: 0.001, relu: relu)
            let zd = DT(z)
            let ref = Ref.batchNorm(zd, beta: beta.map(Double.init), gamma: gamma?.map(Double.init), epsilon: 0.001, relu: relu)
            XCTAssertLessThan(y.maxAbsDifference(ref.tensor), 1e-5)
            for c in 0..<5 {
                let values = (0..<(count / 5)).map { zd.v[$0 * 5 + c] }
                let m = values.reduce(0, +) / Double(values.count)
                XCTAssertEqual(Double(mean[c]), m, accuracy: 1e-5 * abs(m))
                XCTAssertEqual(Double(variance[c]), values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count), accuracy: 1e-5)
            }
            let (dz, dBeta, dGamma) = BatchNormTraining.backward(z, dy, beta: beta, gamma: gamma, epsilon: 0.001, relu: relu)
            let label = "batch norm gamma \(useGamma) relu \(relu)"
            func loss(_ zz: DT, _ b: [Double], _ g: [Double]?) -> Double {
                dot(r, Ref.batchNorm(zz, beta: b, gamma: g, epsilon: 0.001, relu: relu))
            }
            let bd = beta.map(Double.init), gd = gamma?.map(Double.init)
            checkGradient(label + " dZ", analytic: dz.scalars, samples: 180, step: 1e-6) { i, d in
                var zp = zd; zp.v[i] += d
                return loss(zp, bd, gd)
            }
            checkGradient(label + " dBeta", analytic: dBeta, step: 1e-6) { i, d in
                var b = bd; b[i] += d
                return loss(zd, b, gd)
            }
            checkGradient(label + " dGamma", analytic: dGamma, step: 1e-6) { i, d in
                var g = gd ?? [Double](repeating: 1, count: 5); g[i] += d
                return loss(zd, bd, g)
            }
        }
    }

    /// A convolution with biases and no batch norm: ReLU gradient (zero at exactly 0) and Σ for the bias.
    func testReluWithBiasGradient() {
        var z = Tensor(shape: [2, 3, 3, 4], scalars: spacedValues(72, seed: 90))
        z.scalars[5] = 0  // TF's ReluGrad: no gradient at exactly zero
        var dy = Tensor(shape: z.shape, scalars: randomValues(72, seed: 91))
        var dz = Tensor(zeros: z.shape)
        let db = z.withSlab { zs in dy.withSlab { ds in dz.withSlab { BatchNormTraining.reluBackward(z: zs, outputGradient: ds, into: $0) } } }
        for i in 0..<72 { XCTAssertEqual(dz.scalars[i], z.scalars[i] > 0 ? dy.scalars[i] : 0) }
        for c in 0..<4 {
            let expected = (0..<18).reduce(Float(0)) { $0 + dz.scalars[$1 * 4 + c] }
            XCTAssertEqual(db[c], expected, accuracy: 1e-5)
        }
    }

    func testSoftmaxCrossEntropyGradientWithLabelSmoothing() {
        for smoothing in [Float(0), 0.1] {
            let logits = Tensor(shape: [4, 7], scalars: randomValues(28, range: 3, seed: 100))
            let labels = [0, 6, 3, 3]
            let (loss, gradient) = SoftmaxCrossEntropy.evaluate(logits, labels: labels, labelSmoothing: smoothing)
            let ld = DT(logits)
            // The targets are float32 as in TF (ls/K rounded), hence 1e-7 and not 1e-12.
            XCTAssertEqual(loss, Ref.crossEntropy(ld, labels: labels, smoothing: Double(smoothing)), accuracy: 1e-7 * loss)
            checkGradient("cross-entropy ls \(smoothing)", analytic: gradient.scalars, step: 1e-6) { i, d in
                var lp = ld; lp.v[i] += d
                return Ref.crossEntropy(lp, labels: labels, smoothing: Double(smoothing))
            }
        }
    }

    func testDropoutMaskIsReproducibleInvertedAndItsOwnGradient() {
        var a = SeededGenerator(seed: 5), b = SeededGenerator(seed: 5)
        let m1 = DropoutMask.generate(count: 10_000, keep: 0.8, using: &a)!
        let m2 = DropoutMask.generate(count: 10_000, keep: 0.8, using: &b)!
        XCTAssertEqual(m1, m2)
        XCTAssertTrue(m1.allSatisfy { $0 == 0 || $0 == 1 / Float(0.8) })
        let kept = Double(m1.filter { $0 > 0 }.count) / 10_000
        XCTAssertEqual(kept, 0.8, accuracy: 0.02)
        var c = SeededGenerator(seed: 5)
        XCTAssertNil(DropoutMask.generate(count: 10, keep: 1, using: &c))
        XCTAssertEqual(c.state, SeededGenerator(seed: 5).state, "keep 1 draws nothing")
        // Y = X ⊙ mask is linear: its gradient is the mask (the same mask Ops.dropout would draw).
        var d = SeededGenerator(seed: 9), e = SeededGenerator(seed: 9)
        let x = Tensor(shape: [1, 1, 1, 64], scalars: randomValues(64, seed: 1))
        let viaOps = Ops.dropout(x, keep: 0.8, using: &d)
        let mask = DropoutMask.generate(count: 64, keep: 0.8, using: &e)!
        for i in 0..<64 { XCTAssertEqual(viaOps.scalars[i], x.scalars[i] * mask[i], accuracy: 1e-6) }
    }

    /// 100 values (one chunk) and 200,003 (four parallel chunks, the last partial).
    func testWeightDecayLossAndGradient() {
        for count in [100, 200_003] {
            let w = randomValues(count, seed: 110)
            let loss = w.withUnsafeBufferPointer { WeightDecay.loss($0, decay: 4e-5) }
            XCTAssertEqual(loss, Double(Float(4e-5)) * w.reduce(0.0) { $0 + Double($1) * Double($1) } / 2, accuracy: 1e-9 * loss)
            var g = [Float](repeating: 1, count: count)
            w.withUnsafeBufferPointer { wb in g.withUnsafeMutableBufferPointer { WeightDecay.addGradient(wb, decay: 4e-5, to: $0) } }
            XCTAssertEqual((0..<count).filter { abs(g[$0] - (1 + 4e-5 * w[$0])) > 1e-7 }.prefix(5), [], "\(count) values")
        }
    }

    func testConcatGradientIsTheMatchingSlice() {
        let parts = [Tensor(shape: [2, 2, 2, 3], scalars: randomValues(24, seed: 1)),
                     Tensor(shape: [2, 2, 2, 5], scalars: randomValues(40, seed: 2))]
        let joined = Ops.concatChannels(parts)
        let split = ConcatGradient.split(joined, channels: [3, 5])
        XCTAssertEqual(split, parts)
    }
}
