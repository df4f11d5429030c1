import InceptionCore
import XCTest

final class PoolingTests: XCTestCase {
    /// TF pads max pooling with −∞: with all-negative inputs the border must not become 0.
    func testSameMaxPoolNeverPicksThePadding() {
        let input = Tensor(shape: [1, 2, 2, 1], scalars: [-4, -3, -2, -1])
        let out = Pooling.pool(.max, input, Window2D(3, stride: 1))
        XCTAssertEqual(out.scalars, [-1, -1, -1, -1])
    }

    /// SAME average pooling divides by the real pixels under the window, so a constant stays constant.
    func testSameAveragePoolCountsOnlyRealPixels() {
        let out = Pooling.pool(.average, Tensor(repeating: 3, shape: [1, 5, 4, 2]), Window2D(3, stride: 2))
        XCTAssertEqual(out.shape, [1, 3, 2, 2])
        XCTAssertTrue(out.scalars.allSatisfy { abs($0 - 3) < 1e-6 })
    }

    func testMaxPoolStrideTwoPicksEachWindowsMaximum() {
        let input = Tensor(shape: [1, 4, 4, 1], scalars: (1...16).map(Float.init))
        XCTAssertEqual(Pooling.pool(.max, input, Window2D(2, stride: 2)).scalars, [6, 8, 14, 16])
        XCTAssertEqual(Pooling.pool(.max, input, Window2D(3, stride: 2)).scalars, [11, 12, 15, 16])
    }

    func testValidAveragePoolOverTheWholeMap() {
        let input = Tensor(shape: [1, 2, 2, 2], scalars: [1, 10, 2, 20, 3, 30, 4, 40])
        XCTAssertEqual(Pooling.pool(.average, input, Window2D(2, stride: 1, padding: .valid)).scalars, [2.5, 25])
    }

    func testGlobalAverageIsTheMeanOverHeightAndWidth() {
        let input = Tensor(shape: [2, 1, 2, 1], scalars: [1, 3, 10, 20])
        let out = Pooling.globalAverage(input)
        XCTAssertEqual(out.shape, [2, 1, 1, 1])
        XCTAssertEqual(out.scalars, [2, 15])
    }
}
