import InceptionCore
import XCTest

final class ConvolutionTests: XCTestCase {
    /// 4x4 input holding 1…16, a 3x3 kernel of ones, stride 2, SAME: one padded row/column after.
    func testSameStrideTwoOnEvenInputSumsTheRightWindows() {
        let input = Tensor(shape: [1, 4, 4, 1], scalars: (1...16).map(Float.init))
        let conv = Convolution2D(weights: Tensor(repeating: 1, shape: [3, 3, 1, 1]), bias: nil, stride: 2, relu: false)
        // Windows: rows 0-2 × cols 0-2, rows 0-2 × cols 2-3, rows 2-3 × cols 0-2, rows 2-3 × cols 2-3.
        XCTAssertEqual(conv(input).scalars, [54, 45, 72, 54])
    }

    /// 5x5 input, 3x3 ones, stride 2, SAME: one padded row/column on each side.
    func testSameStrideTwoOnOddInputPadsBothSides() {
        let input = Tensor(repeating: 1, shape: [1, 5, 5, 1])
        let conv = Convolution2D(weights: Tensor(repeating: 1, shape: [3, 3, 1, 1]), bias: nil, stride: 2, relu: false)
        XCTAssertEqual(conv(input).scalars, [4, 6, 4, 6, 9, 6, 4, 6, 4])
    }

    func testBiasIsAddedAndReluClampsNegatives() {
        let input = Tensor(shape: [1, 1, 2, 1], scalars: [1, -3])
        let conv = Convolution2D(weights: Tensor(shape: [1, 1, 1, 2], scalars: [1, 2]), bias: [0.5, 0], relu: true)
        XCTAssertEqual(conv(input).scalars, [1.5, 2, 0, 0])
    }

    /// The GEMM path (1x1 in place, K×K gathered) against the plain seven-loop convolution, over the
    /// kernel sizes and strides of the network and odd sizes where SAME padding is uneven.
    func testFastPathMatchesDirectConvolution() {
        var rng = SeededGenerator(seed: 7)
        let cases: [(h: Int, w: Int, ci: Int, co: Int, k: Int, s: Int, p: Padding)] = [
            (9, 11, 3, 8, 7, 2, .same), (8, 8, 5, 7, 3, 1, .same), (7, 6, 4, 20, 1, 1, .same),
            (10, 13, 6, 3, 3, 2, .same), (9, 9, 2, 5, 5, 1, .same), (9, 8, 3, 4, 3, 1, .valid), (5, 5, 3, 3, 1, 2, .same),
        ]
        for c in cases {
            let input = Tensor(shape: [2, c.h, c.w, c.ci], scalars: (0..<(2 * c.h * c.w * c.ci)).map { _ in rng.truncatedNormal() })
            let weights = Tensor(shape: [c.k, c.k, c.ci, c.co], scalars: (0..<(c.k * c.k * c.ci * c.co)).map { _ in rng.truncatedNormal() })
            let bias = (0..<c.co).map { _ in rng.truncatedNormal() }
            let fast = Convolution2D(weights: weights, bias: bias, stride: c.s, padding: c.p, relu: true)(input)
            let reference = Convolution2D.reference(input, weights: weights, bias: bias, stride: c.s, padding: c.p, relu: true)
            XCTAssertEqual(fast.shape, reference.shape, "\(c)")
            XCTAssertLessThan(fast.maxAbsDifference(reference), 1e-4, "\(c)")
        }
    }

    /// The gather copies each kernel row's in-bounds taps as one run: check it where rows are cut
    /// on the left, on the right, on both sides, and lie wholly in the padding (wide padding on
    /// inputs narrower than the kernel).
    func testGatherWithPaddingWiderThanTheInput() {
        var rng = SeededGenerator(seed: 9)
        let cases: [(h: Int, w: Int, ci: Int, co: Int, k: Int, s: Int, p: Padding)] = [
            (2, 3, 3, 4, 3, 1, .symmetric(3)), (3, 2, 2, 5, 5, 2, .symmetric(4)), (1, 1, 5, 3, 7, 1, .same),
            (4, 9, 3, 2, 7, 2, .symmetric(3)),
        ]
        for c in cases {
            let input = Tensor(shape: [2, c.h, c.w, c.ci], scalars: (0..<(2 * c.h * c.w * c.ci)).map { _ in rng.truncatedNormal() })
            let weights = Tensor(shape: [c.k, c.k, c.ci, c.co], scalars: (0..<(c.k * c.k * c.ci * c.co)).map { _ in rng.truncatedNormal() })
            let fast = Convolution2D(weights: weights, bias: nil, stride: c.s, padding: c.p, relu: false)(input)
            let reference = Convolution2D.reference(input, weights: weights, bias: nil, stride: c.s, padding: c.p, relu: false)
            XCTAssertEqual(fast.shape, reference.shape, "\(c)")
            XCTAssertLessThan(fast.maxAbsDifference(reference), 1e-4, "\(c)")
        }
    }

    func testBranchWritesIntoItsChannelSliceOnly() {
        let input = Tensor(repeating: 1, shape: [1, 2, 2, 1])
        let conv = Convolution2D(weights: Tensor(repeating: 2, shape: [1, 1, 1, 2]), bias: nil, relu: false)
        var out = [Float](repeating: -1, count: 4 * 5)
        out.withUnsafeMutableBufferPointer { conv.run(input, into: $0.baseAddress! + 1, channelStride: 5) }
        for pixel in 0..<4 { XCTAssertEqual(Array(out[(pixel * 5)..<(pixel * 5 + 5)]), [-1, 2, 2, -1, -1]) }
    }
}
