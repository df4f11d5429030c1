@testable import InceptionCore
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

    /// The padded-input path (short kernel rows, long output rows: the 3-channel 7x7 stem) reads
    /// its windows straight from a padded copy, K in segments of one kernel row each. Against the
    /// seven-loop convolution on every kernel family and 1–2 threads: SAME (uneven for stride 2)
    /// and VALID padding, output widths that are and are not multiples of the 8-row tile, K deep
    /// enough to take two K blocks (7x7x8: 392), one or two panels, an odd channel count, and
    /// the output written into a channel slice of a wider buffer whose other channels must stay.
    func testPaddedInputPathMatchesDirectConvolution() throws {
        var rng = SeededGenerator(seed: 11)
        let cases: [(n: Int, h: Int, w: Int, ci: Int, co: Int, k: Int, s: Int, p: Padding)] = [
            (1, 56, 50, 3, 64, 7, 2, .same), (2, 27, 61, 3, 20, 7, 2, .same), (1, 30, 26, 16, 32, 3, 1, .same),
            (1, 29, 60, 8, 17, 7, 2, .valid), (2, 25, 24, 1, 48, 5, 1, .same), (1, 26, 33, 2, 5, 3, 1, .symmetric(2)),
        ]
        for c in cases {
            let input = Tensor(shape: [c.n, c.h, c.w, c.ci], scalars: (0..<(c.n * c.h * c.w * c.ci)).map { _ in rng.truncatedNormal() })
            let weights = Tensor(shape: [c.k, c.k, c.ci, c.co], scalars: (0..<(c.k * c.k * c.ci * c.co)).map { _ in rng.truncatedNormal() })
            let bias = (0..<c.co).map { _ in rng.truncatedNormal() }
            let conv = Convolution2D(weights: weights, bias: bias, stride: c.s, padding: c.p, relu: true)
            let reference = Convolution2D.reference(input, weights: weights, bias: bias, stride: c.s, padding: c.p, relu: true)
            XCTAssertTrue(Convolution2D.readsPaddedInput(window: conv.window, channels: c.ci, outputWidth: reference.shape[2]), "\(c)")
            let pixels = reference.count / c.co, stride = c.co + 3
            for kernel in GEMM.Kernel.allCases {
                for threads in [1, 2] {
                    withKernel(kernel) { withThreads(threads) {
                        var out = [Float](repeating: -7, count: pixels * stride)
                        out.withUnsafeMutableBufferPointer { conv.run(input, into: $0.baseAddress! + 1, channelStride: stride) }
                        var worst: Float = 0
                        for p in 0..<pixels {
                            XCTAssertEqual(out[p * stride], -7)
                            XCTAssertEqual(out[p * stride + c.co + 1], -7)
                            XCTAssertEqual(out[p * stride + c.co + 2], -7)
                            for j in 0..<c.co { worst = max(worst, abs(out[p * stride + 1 + j] - reference.scalars[p * c.co + j])) }
                        }
                        XCTAssertLessThan(worst, 1e-4, "\(c) \(kernel) \(threads) threads")
                    } }
                }
            }
        }
    }

    /// Narrow outputs (the kernels' row tiles cannot span output rows) and long kernel rows
    /// (where gathering is cheap) keep the gather.
    func testPaddedInputPathOnlyForShortKernelRowsAndWideOutputs() {
        let stem = Window2D(kernel: (7, 7), stride: (2, 2), padding: .same)
        XCTAssertTrue(Convolution2D.readsPaddedInput(window: stem, channels: 3, outputWidth: 112))
        XCTAssertFalse(Convolution2D.readsPaddedInput(window: stem, channels: 3, outputWidth: 7))
        XCTAssertFalse(Convolution2D.readsPaddedInput(window: Window2D(3), channels: 160, outputWidth: 28))
        XCTAssertFalse(Convolution2D.readsPaddedInput(window: Window2D(1), channels: 3, outputWidth: 112))
    }

    func testBranchWritesIntoItsChannelSliceOnly() {
        let input = Tensor(repeating: 1, shape: [1, 2, 2, 1])
        let conv = Convolution2D(weights: Tensor(repeating: 2, shape: [1, 1, 1, 2]), bias: nil, relu: false)
        var out = [Float](repeating: -1, count: 4 * 5)
        out.withUnsafeMutableBufferPointer { conv.run(input, into: $0.baseAddress! + 1, channelStride: 5) }
        for pixel in 0..<4 { XCTAssertEqual(Array(out[(pixel * 5)..<(pixel * 5 + 5)]), [-1, 2, 2, -1, -1]) }
    }
}
