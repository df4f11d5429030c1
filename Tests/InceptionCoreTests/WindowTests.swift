import InceptionCore
import XCTest

/// TF's SAME rule: out = ceil(in / stride), total padding split with the smaller half before.
final class WindowTests: XCTestCase {
    func testSameSevenByStrideTwoOn224PadsTwoBeforeAndThreeAfter() {
        let p = Window2D.placement(input: 224, kernel: 7, stride: 2, padding: .same)!
        XCTAssertEqual(p.output, 112)
        XCTAssertEqual(p.padBefore, 2)   // total 5: 2 before, 3 after
    }

    func testSameThreeByStrideTwoOnEvenSizePadsOnlyAfter() {
        let p = Window2D.placement(input: 4, kernel: 3, stride: 2, padding: .same)!
        XCTAssertEqual(p.output, 2)
        XCTAssertEqual(p.padBefore, 0)   // total 1, all after
    }

    func testSameThreeByStrideTwoOnOddSizePadsOneEachSide() {
        let p = Window2D.placement(input: 5, kernel: 3, stride: 2, padding: .same)!
        XCTAssertEqual(p.output, 3)
        XCTAssertEqual(p.padBefore, 1)
    }

    func testSameStrideOneKeepsTheSize() {
        for size in [1, 2, 7, 28] {
            XCTAssertEqual(Window2D.placement(input: size, kernel: 3, stride: 1, padding: .same)!.output, size)
        }
    }

    func testValidWindowLargerThanInputDoesNotFit() {
        XCTAssertNil(Window2D.placement(input: 4, kernel: 7, stride: 1, padding: .valid))
        XCTAssertEqual(Window2D.placement(input: 7, kernel: 7, stride: 1, padding: .valid)!.output, 1)
        XCTAssertEqual(Window2D.placement(input: 10, kernel: 7, stride: 1, padding: .valid)!.output, 4)
    }
}
