@testable import InceptionCore
import XCTest

/// Batch norm's statistics gathered by the float32 forward as it writes Z
/// (``ConvolutionGradient/forwardWithMoments(input:hwio:window:into:sums:moments:)``, blocks of Z
/// read while they are in cache): where the direct paths gather them they must be the same bits
/// as ``BatchNormTraining/moments(_:)``'s own pass over the Z they stored (so that gathering
/// them changes no result); Winograd's must be the mean and biased variance of its Z to float
/// rounding, as a float64 two-pass computation gives them.
final class ChannelMomentsTests: XCTestCase {
    private struct Case {
        var n, h, w, ci, co: Int
        var window: Window2D
        var zStride = 0
        /// Added to every input: a large offset makes channel means large against their spread,
        /// where E[z²] − E[z]² would cancel the variance away.
        var offset: Float = 0
    }

    private enum Outcome: Equatable { case sameBits, close, notGathered }

    private func gather(_ c: Case, _ label: String, file: StaticString = #filePath, line: UInt = #line) -> Outcome {
        let g = c.window.geometry(inputHeight: c.h, inputWidth: c.w)!
        let (oh, ow) = (g.outputHeight, g.outputWidth), zs = max(c.zStride, c.co), pixels = c.n * oh * ow
        var generator = SeededGenerator(seed: UInt64(c.h * 31 + c.co))
        var x = (0..<(c.n * c.h * c.w * c.ci)).map { _ in c.offset + Float.random(in: -1...1, using: &generator) }
        let w = (0..<(c.window.kernelHeight * c.window.kernelWidth * c.ci * c.co)).map { _ in
            Float.random(in: -0.2...1, using: &generator)
        }
        var z = [Float](repeating: .nan, count: pixels * zs)
        let moments = ChannelMoments()
        var outcome = Outcome.sameBits  // until a round differs
        for round in 0..<2 {  // the second reuses the working memory, which must start afresh
            let (result, pass) = x.withUnsafeMutableBufferPointer { xb in z.withUnsafeMutableBufferPointer { zb in
                w.withUnsafeBufferPointer { wb in
                    let zSlab = ActivationSlab(base: zb.baseAddress!, batch: c.n, height: oh, width: ow, channels: c.co, stride: zs)
                    let result = ConvolutionGradient.forwardWithMoments(
                        input: ActivationSlab(base: xb.baseAddress!, batch: c.n, height: c.h, width: c.w, channels: c.ci),
                        hwio: wb.baseAddress!, window: c.window, into: zSlab, sums: ColumnSums(), moments: moments)
                    return (result, BatchNormTraining.moments(zSlab))
                }
            } }
            guard let (mean, variance) = result else { return .notGathered }
            if mean.map(\.bitPattern) != pass.mean.map(\.bitPattern) || variance.map(\.bitPattern) != pass.variance.map(\.bitPattern) {
                outcome = .close
            }
            for o in 0..<c.co {
                let values = (0..<pixels).map { Double(z[$0 * zs + o]) }
                let m = values.reduce(0, +) / Double(pixels)
                let v = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(pixels)
                XCTAssertEqual(Double(mean[o]), m, accuracy: 1e-6 * abs(m) + 1e-6 * v.squareRoot(),
                               "\(label) round \(round): mean of channel \(o)", file: file, line: line)
                // The pass itself is within ~1e-6 here (measured; Winograd's sums ≤ 5e-7).
                XCTAssertEqual(Double(variance[o]), v, accuracy: 4e-6 * v + 1e-12,
                               "\(label) round \(round): variance of channel \(o)", file: file, line: line)
            }
        }
        return outcome
    }

    private func onEveryThreadCount(_ body: () -> Void) {
        let threads = Parallel.threadCount
        defer { Parallel.threadCount = threads }
        for count in [1, 2] {
            Parallel.threadCount = count
            body()
        }
    }

    private func direct(_ body: () -> Void) {
        let saved = Winograd.inTraining
        defer { Winograd.inTraining = saved }
        Winograd.inTraining = false
        onEveryThreadCount(body)
    }

    /// 96-row tasks cut within the pass's tasks: each 32-row block lies in one call.
    func testOneByOneGathersTheSameBitsAsThePass() {
        direct {
            XCTAssertEqual(gather(Case(n: 2, h: 50, w: 50, ci: 20, co: 33, window: Window2D(1), zStride: 40), "1x1"), .sameBits)
            XCTAssertEqual(gather(Case(n: 4, h: 30, w: 30, ci: 8, co: 19, window: Window2D(1), offset: 100), "1x1 offset"), .sameBits)
        }
    }

    /// A short M goes in 32-row tasks; rows per task of the pass that are not a multiple of 32
    /// (5000 rows on two threads: 625) leave a short block at the end of each.
    func testOneByOneOnFewRowsAndRaggedTasks() {
        direct {
            XCTAssertEqual(gather(Case(n: 1, h: 7, w: 7, ci: 64, co: 70, window: Window2D(1)), "1x1 short"), .sameBits)
            XCTAssertEqual(gather(Case(n: 2, h: 50, w: 50, ci: 4, co: 17, window: Window2D(1)), "1x1 ragged"), .sameBits)
        }
    }

    /// Bands of whole 32-pixel blocks: 32-pixel rows; 28-pixel rows (8-row bands); the stem's
    /// 7x7 stride 2. An image of 26x25 outputs is not whole blocks: no sums.
    func testPaddedBandsGatherTheSameBitsAsThePass() {
        direct {
            XCTAssertEqual(gather(Case(n: 2, h: 32, w: 32, ci: 13, co: 37, window: Window2D(3)), "3x3 32-wide"), .sameBits)
            XCTAssertEqual(gather(Case(n: 1, h: 24, w: 28, ci: 40, co: 21, window: Window2D(3), zStride: 30), "3x3 28-wide"), .sameBits)
            XCTAssertEqual(gather(Case(n: 2, h: 64, w: 64, ci: 3, co: 20, window: Window2D(7, stride: 2)), "7x7/2"), .sameBits)
            XCTAssertEqual(gather(Case(n: 2, h: 52, w: 50, ci: 3, co: 20, window: Window2D(7, stride: 2)), "7x7/2 ragged"),
                           .notGathered)
        }
    }

    /// Both of Winograd's schedules: blocks of tiles transformed and multiplied by one thread each
    /// (many tiles), and all tiles transformed first then split like a GEMM (few); F(2×2) and
    /// F(4×4), whose edge tiles are clipped (26 is not a multiple of 4); and means ~100 times the
    /// spread (each output-transform call sums around its own first values, and calls are merged
    /// pairwise, so the variance keeps its digits).
    func testWinogradGathersInItsOutputTransform() {
        let (savedTraining, savedMode) = (Winograd.inTraining, Winograd.mode)
        defer { Winograd.inTraining = savedTraining; Winograd.mode = savedMode }
        Winograd.inTraining = true
        for mode in [Winograd.Mode.f2, .f4] {
            Winograd.mode = mode
            onEveryThreadCount {
                XCTAssertNotEqual(gather(Case(n: 16, h: 28, w: 28, ci: 13, co: 37, window: Window2D(3)), "\(mode) many tiles"),
                                  .notGathered)
                XCTAssertNotEqual(gather(Case(n: 2, h: 26, w: 26, ci: 13, co: 37, window: Window2D(3), zStride: 45),
                                         "\(mode) few tiles"), .notGathered)
                XCTAssertNotEqual(gather(Case(n: 4, h: 28, w: 28, ci: 8, co: 19, window: Window2D(3), offset: 100),
                                         "\(mode) offset"), .notGathered)
            }
        }
    }

    /// Receptive fields gathered row block by row block (short output rows) gather no statistics.
    func testGatheredWindowsLeaveTheStatisticsToThePass() {
        direct { XCTAssertEqual(gather(Case(n: 2, h: 8, w: 8, ci: 5, co: 9, window: Window2D(3)), "3x3 gathered"), .notGathered) }
    }
}
