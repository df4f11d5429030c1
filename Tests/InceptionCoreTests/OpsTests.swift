import InceptionCore
import XCTest

final class OpsTests: XCTestCase {
    func testSoftmaxRowsSumToOneEvenForHugeLogits() {
        let out = Ops.softmax(Tensor(shape: [2, 3], scalars: [1000, 1001, 1002, 0, 0, 0]))
        XCTAssertEqual(out.scalars[0..<3].reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(out.scalars[3], 1.0 / 3, accuracy: 1e-6)
        XCTAssertGreaterThan(out.scalars[2], out.scalars[1])
    }

    /// y = gamma·(x − mean)/sqrt(var + eps) + beta, with gamma 1 when absent (slim's default).
    func testBatchNormUsesEpsilonAndOptionalGamma() {
        let x = Tensor(shape: [1, 1, 1, 2], scalars: [3, 3])
        let withoutGamma = Ops.batchNorm(x, mean: [1, 1], variance: [3.999, 0.999], beta: [0.5, 0], gamma: nil, epsilon: 0.001)
        XCTAssertEqual(withoutGamma.scalars[0], 1.5, accuracy: 1e-5)
        XCTAssertEqual(withoutGamma.scalars[1], 2, accuracy: 1e-5)
        let withGamma = Ops.batchNorm(x, mean: [1, 1], variance: [3.999, 0.999], beta: [0, 0], gamma: [2, 3], epsilon: 0.001)
        XCTAssertEqual(withGamma.scalars[0], 2, accuracy: 1e-5)
        XCTAssertEqual(withGamma.scalars[1], 6, accuracy: 1e-5)
    }

    func testConcatenationKeepsBranchOrderPerPixel() {
        let a = Tensor(shape: [1, 1, 2, 1], scalars: [1, 2])
        let b = Tensor(shape: [1, 1, 2, 2], scalars: [10, 11, 20, 21])
        XCTAssertEqual(Ops.concatChannels([a, b]).scalars, [1, 10, 11, 2, 20, 21])
    }

    func testReluClampsOnlyNegatives() {
        XCTAssertEqual(Ops.relu(Tensor(shape: [3], scalars: [-1, 0, 2])).scalars, [0, 0, 2])
    }

    /// Inverted dropout keeps the expectation: about `keep` of the elements survive, scaled by 1/keep.
    func testDropoutKeepsAboutKeepFractionScaledUp() {
        var rng = SeededGenerator(seed: 1)
        let out = Ops.dropout(Tensor(repeating: 1, shape: [10000]), keep: 0.8, using: &rng)
        let kept = out.scalars.filter { $0 != 0 }
        XCTAssertEqual(Double(kept.count) / 10000, 0.8, accuracy: 0.02)
        XCTAssertTrue(kept.allSatisfy { abs($0 - 1.25) < 1e-6 })
        XCTAssertEqual(Ops.dropout(out, keep: 1, using: &rng), out)
    }

    func testChannelMomentsAreBiasedMeanAndVariance() {
        let (mean, variance) = Ops.channelMoments(Tensor(shape: [2, 1, 1, 2], scalars: [1, 10, 3, 10]))
        XCTAssertEqual(mean, [2, 10])
        XCTAssertEqual(variance, [1, 0])
    }
}

final class LocalResponseNormTests: XCTestCase {
    /// Caffe's formula by hand: b = a / (1 + alpha/5 · Σ window a²)^0.75, window clipped at the ends.
    func testAcrossChannelNormalizationMatchesTheFormula() {
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        let lrn = LocalResponseNorm(size: 5, alpha: 0.5, beta: 0.75, k: 1)
        let out = lrn(Tensor(shape: [1, 1, 1, 6], scalars: a))
        for i in 0..<6 {
            let window = a[max(0, i - 2)...min(5, i + 2)].reduce(0) { $0 + $1 * $1 }
            XCTAssertEqual(out.scalars[i], a[i] / powf(1 + 0.5 / 5 * window, 0.75), accuracy: 1e-5)
        }
    }
}

final class AdaptivePoolingTests: XCTestCase {
    /// 14 → 4 bins of 4 (overlapping): rows 0-3, 3-6, 7-10, 10-13, as PyTorch's AdaptiveAvgPool2d.
    func testAdaptiveAverageUsesPyTorchsOverlappingBins() {
        let input = Tensor(shape: [1, 14, 1, 1], scalars: (0..<14).map(Float.init))
        let out = Pooling.adaptiveAverage(input, outputHeight: 4, outputWidth: 1)
        XCTAssertEqual(out.scalars, [1.5, 4.5, 8.5, 11.5])
    }
}
