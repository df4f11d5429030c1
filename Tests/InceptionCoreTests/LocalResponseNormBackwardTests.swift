import Foundation
import InceptionCore
import XCTest

// Gradient checks for the slab kernels of local response normalization and adaptive average
// pooling, against central finite differences of plain Double-precision reference forwards.
//
// Loss L = Σ R ⊙ f(X) with a fixed random R, so ∂L/∂f = R is the output gradient fed to the kernel.
// The reference is Double and the step small, so the numeric gradient is accurate to ~1e-9
// relative and the check measures the float32 kernel's own error (~1e-6 here); the tolerance
// 1e-4 · max|numeric| leaves room for that without letting a wrong term through (a missing or
// mis-scaled term shows up at the 1e-2 level or more with the parameters below).
//
// The finite-difference helpers are in FiniteDifferences.swift.

// MARK: - Local response normalization

final class LocalResponseNormBackwardTests: XCTestCase {
    /// Caffe's LRN in Double, the window summed directly (no sliding sum): b[c] = a[c] / s[c]^β,
    /// s[c] = k + α/size · Σ_{|c′ − c| ≤ size/2} a[c′]².
    private func referenceLRN(_ x: [Double], channels c: Int, _ lrn: LocalResponseNorm) -> [Double] {
        let half = lrn.size / 2
        let (alpha, beta, k) = (Double(lrn.alpha), Double(lrn.beta), Double(lrn.k))
        var out = x
        for p in 0..<(x.count / c) {
            for i in 0..<c {
                var sum = 0.0
                for j in max(0, i - half)...min(c - 1, i + half) { sum += x[p * c + j] * x[p * c + j] }
                out[p * c + i] = x[p * c + i] * pow(k + alpha / Double(lrn.size) * sum, -beta)
            }
        }
        return out
    }

    /// The forward against the reference and dX against finite differences over every element.
    /// α is large enough that the normalization (and so the second gradient term) matters.
    private func checkGradient(channels c: Int, size: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let lrn = LocalResponseNorm(size: size, alpha: 1.5, beta: 0.75, k: 2)
        let shape = [2, 3, 2, c]
        let count = shape.reduce(1, *)
        let x = Tensor(shape: shape, scalars: seededValues(count, range: 2, seed: seed))
        let r = seededValues(count, seed: seed + 1)
        let xd = x.scalars.map(Double.init)
        let y = lrn.forward(x)
        let yd = referenceLRN(xd, channels: c, lrn)
        for i in 0..<count { XCTAssertEqual(Double(y.scalars[i]), yd[i], accuracy: 1e-6, "forward[\(i)]", file: file, line: line) }
        let dx = lrn.inputGradient(x, Tensor(shape: shape, scalars: r))
        XCTAssertEqual(dx.shape, shape, file: file, line: line)
        assertMatchesCentralDifferences(dx.scalars, step: 1e-5, "LRN size \(size) C=\(c)", file: file, line: line) { i, d in
            var xp = xd; xp[i] += d
            return dot(r, referenceLRN(xp, channels: c, lrn))
        }
    }

    func testGradientMatchesFiniteDifferencesWithSevenChannels() {
        checkGradient(channels: 7, size: 5, seed: 10)
    }

    /// Three channels under a window of 5 (and of 7): every window is clipped on both sides.
    func testGradientWhenTheWindowIsWiderThanTheChannels() {
        checkGradient(channels: 3, size: 5, seed: 20)
        checkGradient(channels: 3, size: 7, seed: 21)
    }

    /// GoogLeNet's parameters (α = 1e-4, β = 0.75, k = 1) at a realistic channel count: the
    /// cross-channel term is small but must still be right.
    func testGradientWithGoogLeNetParameters() {
        let lrn = LocalResponseNorm()
        let shape = [1, 2, 2, 64]
        let count = shape.reduce(1, *)
        let x = Tensor(shape: shape, scalars: seededValues(count, range: 30, seed: 30))
        let r = seededValues(count, seed: 31)
        let xd = x.scalars.map(Double.init)
        let dx = lrn.inputGradient(x, Tensor(shape: shape, scalars: r))
        assertMatchesCentralDifferences(dx.scalars, step: 1e-4, "LRN GoogLeNet") { i, d in
            var xp = xd; xp[i] += d
            return dot(r, referenceLRN(xp, channels: 64, lrn))
        }
    }

    /// The slab forward is the existing forward, bit for bit.
    func testSlabForwardEqualsTheTensorForward() {
        let lrn = LocalResponseNorm(size: 5, alpha: 1.5, beta: 0.75, k: 2)
        let x = Tensor(shape: [3, 4, 5, 19], scalars: seededValues(3 * 4 * 5 * 19, range: 2, seed: 40))
        XCTAssertEqual(lrn.forward(x), lrn(x))
    }

    /// Input, output gradient and input gradient as channel slices of wider buffers (three
    /// different strides): the same numbers as dense tensors, and the columns around the slices untouched.
    func testStridedSlabsGiveTheContiguousResult() {
        let lrn = LocalResponseNorm(size: 5, alpha: 1.5, beta: 0.75, k: 2)
        let (n, h, w, c) = (2, 3, 4, 7)
        let pixels = n * h * w
        let x = Tensor(shape: [n, h, w, c], scalars: seededValues(pixels * c, range: 2, seed: 50))
        let dy = Tensor(shape: [n, h, w, c], scalars: seededValues(pixels * c, seed: 51))
        let denseY = lrn.forward(x)
        let denseDx = lrn.inputGradient(x, dy)
        // x in columns 3..<10 of 16, dy in 1..<8 of 11, y and dx in 5..<12 of 20.
        var wideX = [Float](repeating: .nan, count: pixels * 16)
        var wideDy = [Float](repeating: .nan, count: pixels * 11)
        var wideY = [Float](repeating: .nan, count: pixels * 20)
        var wideDx = [Float](repeating: .nan, count: pixels * 20)
        for p in 0..<pixels {
            for i in 0..<c {
                wideX[p * 16 + 3 + i] = x.scalars[p * c + i]
                wideDy[p * 11 + 1 + i] = dy.scalars[p * c + i]
            }
        }
        wideX.withUnsafeMutableBufferPointer { xb in wideDy.withUnsafeMutableBufferPointer { gb in
        wideY.withUnsafeMutableBufferPointer { yb in wideDx.withUnsafeMutableBufferPointer { db in
            let xs = ActivationSlab(base: xb.baseAddress! + 3, batch: n, height: h, width: w, channels: c, stride: 16)
            let gs = ActivationSlab(base: gb.baseAddress! + 1, batch: n, height: h, width: w, channels: c, stride: 11)
            let ys = ActivationSlab(base: yb.baseAddress! + 5, batch: n, height: h, width: w, channels: c, stride: 20)
            let ds = ActivationSlab(base: db.baseAddress! + 5, batch: n, height: h, width: w, channels: c, stride: 20)
            lrn.forward(input: xs, into: ys)
            lrn.inputGradient(input: xs, outputGradient: gs, into: ds, accumulate: false)
        } } } }
        for p in 0..<pixels {
            for i in 0..<c {
                XCTAssertEqual(wideY[p * 20 + 5 + i], denseY.scalars[p * c + i], "y pixel \(p) channel \(i)")
                XCTAssertEqual(wideDx[p * 20 + 5 + i], denseDx.scalars[p * c + i], "dx pixel \(p) channel \(i)")
            }
            for j in Array(0..<5) + Array(12..<20) {
                XCTAssertTrue(wideY[p * 20 + j].isNaN && wideDx[p * 20 + j].isNaN, "column \(j) outside the slice written")
            }
        }
    }

    /// accumulate: true adds the gradient to what `dx` holds; false replaces it.
    func testAccumulateAddsToTheExistingGradient() {
        let lrn = LocalResponseNorm(size: 5, alpha: 1.5, beta: 0.75, k: 2)
        let shape = [2, 2, 3, 9]
        let count = shape.reduce(1, *)
        var x = Tensor(shape: shape, scalars: seededValues(count, range: 2, seed: 60))
        var dy = Tensor(shape: shape, scalars: seededValues(count, seed: 61))
        let gradient = lrn.inputGradient(x, dy)
        let prior = seededValues(count, seed: 62)
        var added = Tensor(shape: shape, scalars: prior)
        var replaced = Tensor(shape: shape, scalars: prior)
        x.withSlab { xs in dy.withSlab { gs in
            added.withSlab { lrn.inputGradient(input: xs, outputGradient: gs, into: $0, accumulate: true) }
            replaced.withSlab { lrn.inputGradient(input: xs, outputGradient: gs, into: $0, accumulate: false) }
        } }
        for i in 0..<count { XCTAssertEqual(added.scalars[i], prior[i] + gradient.scalars[i], "element \(i)") }
        XCTAssertEqual(replaced, gradient)
    }

    /// dX may overwrite dY (the documented in-place use): same result as a separate buffer.
    func testGradientCanOverwriteTheOutputGradientInPlace() {
        let lrn = LocalResponseNorm(size: 5, alpha: 1.5, beta: 0.75, k: 2)
        let shape = [1, 3, 3, 11]
        var x = Tensor(shape: shape, scalars: seededValues(99, range: 2, seed: 70))
        var buffer = Tensor(shape: shape, scalars: seededValues(99, seed: 71))
        let expected = lrn.inputGradient(x, buffer)
        x.withSlab { xs in buffer.withSlab { lrn.inputGradient(input: xs, outputGradient: $0, into: $0, accumulate: false) } }
        XCTAssertEqual(buffer, expected)
    }
}

// MARK: - Adaptive average pooling

final class AdaptiveAveragePoolingGradientTests: XCTestCase {
    /// PyTorch's adaptive average pooling in Double: bin i covers [floor(i·H/OH), ceil((i+1)·H/OH)).
    private func referenceAdaptive(_ x: [Double], shape: [Int], outputHeight oh: Int, outputWidth ow: Int) -> [Double] {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        var out = [Double](repeating: 0, count: n * oh * ow * c)
        for b in 0..<n { for i in 0..<oh { for j in 0..<ow { for k in 0..<c {
            let y0 = Int((Double(i * h) / Double(oh)).rounded(.down)), y1 = Int((Double((i + 1) * h) / Double(oh)).rounded(.up))
            let x0 = Int((Double(j * w) / Double(ow)).rounded(.down)), x1 = Int((Double((j + 1) * w) / Double(ow)).rounded(.up))
            var sum = 0.0
            for y in y0..<y1 { for xx in x0..<x1 { sum += x[((b * h + y) * w + xx) * c + k] } }
            out[((b * oh + i) * ow + j) * c + k] = sum / Double((y1 - y0) * (x1 - x0))
        } } } }
        return out
    }

    /// Forward against the reference (and the existing tensor forward), dX by finite differences.
    /// The map is linear, so a large step is exact up to rounding.
    private func checkGradient(shape: [Int], outputHeight oh: Int, outputWidth ow: Int, seed: UInt64,
                               file: StaticString = #filePath, line: UInt = #line) {
        let count = shape.reduce(1, *), outCount = shape[0] * oh * ow * shape[3]
        let x = Tensor(shape: shape, scalars: seededValues(count, seed: seed))
        let xd = x.scalars.map(Double.init)
        let y = PoolingGradient.adaptiveAverage(x, outputHeight: oh, outputWidth: ow)
        XCTAssertEqual(y, Pooling.adaptiveAverage(x, outputHeight: oh, outputWidth: ow), "slab forward = tensor forward", file: file, line: line)
        let yd = referenceAdaptive(xd, shape: shape, outputHeight: oh, outputWidth: ow)
        for i in 0..<outCount { XCTAssertEqual(Double(y.scalars[i]), yd[i], accuracy: 1e-6, "forward[\(i)]", file: file, line: line) }
        let r = seededValues(outCount, seed: seed + 1)
        let dx = PoolingGradient.adaptiveAverageInputGradient(Tensor(shape: [shape[0], oh, ow, shape[3]], scalars: r), inputShape: shape)
        XCTAssertEqual(dx.shape, shape, file: file, line: line)
        assertMatchesCentralDifferences(dx.scalars, step: 1e-2, "adaptive \(shape) → \(oh)x\(ow)", file: file, line: line) { i, d in
            var xp = xd; xp[i] += d
            return dot(r, referenceAdaptive(xp, shape: shape, outputHeight: oh, outputWidth: ow))
        }
    }

    /// 14 → 4 (torchvision's auxiliary heads): bins [0,4), [3,7), [7,11), [10,14) overlap.
    func testGradient14To4AddsUpOverOverlappingBins() {
        checkGradient(shape: [2, 14, 14, 3], outputHeight: 4, outputWidth: 4, seed: 100)
        // Along one axis with dY = 1: rows 3 and 10 lie in two bins of 4 and get 1/4 twice.
        let dx = PoolingGradient.adaptiveAverageInputGradient(Tensor(repeating: 1, shape: [1, 4, 1, 1]), inputShape: [1, 14, 1, 1])
        XCTAssertEqual(dx.scalars, [0.25, 0.25, 0.25, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.5, 0.25, 0.25, 0.25])
    }

    /// 7 → 3: bins [0,3), [2,5), [4,7); and a non-square 7x5 → 3x2 (bins [0,3), [2,5) across).
    func testGradient7To3() {
        checkGradient(shape: [2, 7, 7, 4], outputHeight: 3, outputWidth: 3, seed: 110)
        checkGradient(shape: [1, 7, 5, 2], outputHeight: 3, outputWidth: 2, seed: 111)
    }

    /// 5 → 5: every bin is one pixel, so forward and gradient are the identity.
    func testSameSizeIsTheIdentity() {
        let x = Tensor(shape: [2, 5, 5, 3], scalars: seededValues(150, seed: 120))
        XCTAssertEqual(PoolingGradient.adaptiveAverage(x, outputHeight: 5, outputWidth: 5), x)
        XCTAssertEqual(PoolingGradient.adaptiveAverageInputGradient(x, inputShape: x.shape), x)
    }

    /// accumulate: true adds the gradient to what `dx` holds.
    func testAccumulateAddsToTheExistingGradient() {
        var dy = Tensor(shape: [2, 4, 4, 3], scalars: seededValues(96, seed: 130))
        let gradient = PoolingGradient.adaptiveAverageInputGradient(dy, inputShape: [2, 14, 14, 3])
        let prior = seededValues(2 * 14 * 14 * 3, seed: 131)
        var dx = Tensor(shape: [2, 14, 14, 3], scalars: prior)
        dy.withSlab { gs in dx.withSlab { PoolingGradient.adaptiveAverageInputGradient(outputGradient: gs, into: $0, accumulate: true) } }
        for i in 0..<prior.count { XCTAssertEqual(dx.scalars[i], prior[i] + gradient.scalars[i], accuracy: 1e-6, "element \(i)") }
    }
}
