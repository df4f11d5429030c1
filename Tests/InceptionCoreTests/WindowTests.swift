import InceptionCore
import XCTest

/// TF's SAME rule: out = ceil(in / stride), total padding split with the smaller half before.
final class WindowTests: XCTestCase {
    /// Pointwise (a plain matrix product over pixels) only when nothing pads or strides a 1x1.
    func testPointwiseIsOneByOneStrideOneWithoutPadding() {
        XCTAssertTrue(Window2D(1).isPointwise)
        XCTAssertTrue(Window2D(1, padding: .valid).isPointwise)
        XCTAssertTrue(Window2D(1, padding: .symmetric(0)).isPointwise)
        XCTAssertFalse(Window2D(1, padding: .symmetric(1)).isPointwise)
        XCTAssertFalse(Window2D(1, stride: 2).isPointwise)
        XCTAssertFalse(Window2D(kernel: (1, 3)).isPointwise)
    }

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

/// PyTorch / Caffe explicit padding, for the original GoogLeNet and torchvision's.
final class SymmetricPaddingTests: XCTestCase {
    func testSymmetricPaddingFloorsLikePyTorchConvolutions() {
        let p = Window2D.placement(input: 224, kernel: 7, stride: 2, padding: .symmetric(3))!
        XCTAssertEqual(p.output, 112)   // floor((224 + 6 − 7) / 2) + 1
        XCTAssertEqual(p.padBefore, 3)
    }

    /// torchvision's MaxPool2d(3, 2, ceil_mode=True): 112 → 56, 56 → 28, 28 → 14; 14 → 7 with 2x2.
    func testCeilModeRoundsUpAsPyTorchDoes() {
        XCTAssertEqual(Window2D.placement(input: 112, kernel: 3, stride: 2, padding: .symmetricCeil(0))!.output, 56)
        XCTAssertEqual(Window2D.placement(input: 14, kernel: 3, stride: 2, padding: .symmetricCeil(0))!.output, 7)
        XCTAssertEqual(Window2D.placement(input: 14, kernel: 2, stride: 2, padding: .symmetricCeil(0))!.output, 7)
        XCTAssertEqual(Window2D.placement(input: 7, kernel: 3, stride: 1, padding: .symmetricCeil(1))!.output, 7)
    }

    /// The last window may not start in the padding: 5 with k=2, s=2, p=1 gives 3 windows, not 4.
    func testCeilModeDropsAWindowThatWouldStartInThePadding() {
        XCTAssertEqual(Window2D.placement(input: 5, kernel: 2, stride: 2, padding: .symmetricCeil(1))!.output, 3)
    }
}
