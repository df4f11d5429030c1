import XCTest
import InceptionImages

final class LabelsTests: XCTestCase {
    func testBundledImagenetLabelsHave1001EntriesWithBackgroundFirst() throws {
        let labels = try Labels.imagenet()
        XCTAssertEqual(labels.count, 1001)
        XCTAssertEqual(labels.names.first, "background")
        XCTAssertTrue(labels.hasBackground)
        XCTAssertEqual(labels[output: 1], "tench")          // n01440764, first synset
        XCTAssertEqual(labels[output: 282], "tabby")        // class 281 of the 1000
        XCTAssertEqual(labels[output: 1000], "toilet tissue") // n15075141, last synset
        XCTAssertEqual(Set(labels.names).count, 1001, "names are unique")
    }

    func testLabelsForAThousandOutputModelDropBackground() throws {
        let labels = try Labels.imagenet(forOutputCount: 1000)
        XCTAssertEqual(labels.count, 1000)
        XCTAssertEqual(labels[output: 0], "tench")
        XCTAssertEqual(labels[output: 281], "tabby")
        XCTAssertEqual(labels[output: 999], "toilet tissue")
    }

    func testLabelsForA1001OutputModelKeepBackground() throws {
        let labels = try Labels.imagenet(forOutputCount: 1001)
        XCTAssertEqual(labels[output: 0], "background")
        XCTAssertEqual(labels[output: 282], "tabby")
    }

    func testThousandLabelsGainBackgroundForA1001OutputModel() throws {
        let thousand = try Labels.imagenet(forOutputCount: 1000)
        XCTAssertEqual(try thousand.adapted(toOutputCount: 1001), try Labels.imagenet())
    }

    func testMismatchedLabelCountIsAnError() throws {
        XCTAssertThrowsError(try Labels.imagenet(forOutputCount: 10)) { error in
            XCTAssertEqual("\(error)", "1001 labels do not fit a model with 10 outputs")
        }
    }

    func testLabelsFileHasOneNamePerLine() throws {
        let path = try Paths.temporaryFile(named: "labels.txt", bytes: Array("cat\r\ndog\r\nsea lion\n\n".utf8))
        XCTAssertEqual(try Labels(contentsOf: path).names, ["cat", "dog", "sea lion"])
    }

    func testSlimStyleNumberedLabelsFileIsUnderstood() throws {
        let path = try Paths.temporaryFile(named: "labels.txt", bytes: Array("0:background\n1:tench, Tinca tinca\n2:goldfish\n".utf8))
        let labels = try Labels(contentsOf: path)
        XCTAssertEqual(labels.names, ["background", "tench, Tinca tinca", "goldfish"])
        XCTAssertEqual(try labels.adapted(toOutputCount: 2).names, ["tench, Tinca tinca", "goldfish"])
    }

    func testMissingLabelsFileIsAnError() {
        XCTAssertThrowsError(try Labels(contentsOf: "/nonexistent/labels.txt"))
    }

    func testOutputWithoutALabelIsNamedByNumber() {
        XCTAssertEqual(Labels(names: ["a"]).name(forOutput: 5), "class 5")
    }
}
