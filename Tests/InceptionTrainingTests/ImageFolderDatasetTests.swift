import Foundation
import Inception
import XCTest
@testable import InceptionTraining

final class ImageFolderDatasetTests: XCTestCase {
    func testClassesAreSortedFolderNamesAndLabelsAreTheirPositions() throws {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("zebra", 2), ("Ant", 1), ("cat", 3)])
        let data = try ImageFolderDataset(root: root)
        XCTAssertEqual(data.classNames, ["Ant", "cat", "zebra"])  // bytewise: uppercase first
        XCTAssertEqual(data.trainingCounts, [1, 3, 2])
        for sample in data.training {
            XCTAssertTrue(sample.path.contains("/\(data.classNames[sample.label])/"), sample.path)
        }
        XCTAssertTrue(data.validation.isEmpty)
    }

    func testImagesAreFoundRecursivelyWithAnyCaseOfExtensionAndOtherFilesIgnored() throws {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("a", 1), ("b", 1)])
        writePNG(patternImage(width: 5, height: 5), to: root + "/a/deeper/still/x.PNG")
        writePNG(patternImage(width: 5, height: 5), to: root + "/a/y.Png")
        try Data([0xff, 0xd8]).write(to: URL(fileURLWithPath: root + "/a/notes.txt"))
        writePNG(patternImage(width: 5, height: 5), to: root + "/a/.hidden.png")
        writePNG(patternImage(width: 5, height: 5), to: root + "/.hiddenclass/z.png")
        let data = try ImageFolderDataset(root: root)
        XCTAssertEqual(data.classNames, ["a", "b"])
        XCTAssertEqual(data.training.filter { $0.label == 0 }.map { URL(fileURLWithPath: $0.path).lastPathComponent }.sorted(),
                       ["img0.png", "x.PNG", "y.Png"])
    }

    func testValidationSplitIsPerClassDeterministicAndDisjoint() throws {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("a", 10), ("b", 5), ("c", 2)])
        let options = ImageFolderDataset.Options(validationSplit: 0.2, splitSeed: 42)
        let first = try ImageFolderDataset(root: root, options: options)
        let again = try ImageFolderDataset(root: root, options: options)
        XCTAssertEqual(first.validation, again.validation)
        XCTAssertEqual(first.training, again.training)
        // round(10 · 0.2) = 2, round(5 · 0.2) = 1, and a class of 2 still gives one.
        XCTAssertEqual(first.validationCounts, [2, 1, 1])
        XCTAssertEqual(first.trainingCounts, [8, 4, 1])
        XCTAssertTrue(Set(first.training).isDisjoint(with: Set(first.validation)))
        XCTAssertEqual(Set(first.training + first.validation).count, 17)
        // Another seed picks other files (for at least one class).
        let other = try ImageFolderDataset(root: root, options: .init(validationSplit: 0.2, splitSeed: 7))
        XCTAssertNotEqual(other.validation, first.validation)
        XCTAssertEqual(other.validationCounts, [2, 1, 1])
    }

    func testSeparateValidationFolderUsesTheTrainingLabels() throws {
        let dir = makeTemporaryDirectory(self)
        let train = makeImageFolder(dir + "/train", [("a", 2), ("b", 2), ("c", 2)])
        let validation = makeImageFolder(dir + "/val", [("c", 1), ("a", 2)])
        let data = try ImageFolderDataset(root: train, options: .init(validationFolder: validation))
        XCTAssertEqual(data.validationCounts, [2, 0, 1])
        XCTAssertTrue(data.validation.allSatisfy { $0.path.hasPrefix(validation + "/") })
        XCTAssertEqual(data.warnings.count, 1)
        XCTAssertTrue(data.warnings[0].contains("\"b\""), data.warnings[0])
    }

    func testValidationFolderWithAnUnknownClassIsAnError() throws {
        let dir = makeTemporaryDirectory(self)
        let train = makeImageFolder(dir + "/train", [("a", 1), ("b", 1)])
        let validation = makeImageFolder(dir + "/val", [("a", 1), ("dog", 1)])
        let error = thrownError { _ = try ImageFolderDataset(root: train, options: .init(validationFolder: validation)) }
        XCTAssertEqual(error as? DatasetError, .unknownValidationClasses(validation, unknown: ["dog"], known: ["a", "b"]))
        XCTAssertTrue("\(error!)".contains(validation))
    }

    func testMissingFolderIsAnErrorNamingIt() {
        let path = makeTemporaryDirectory(self) + "/nowhere"
        let error = thrownError { _ = try ImageFolderDataset(root: path) }
        XCTAssertEqual(error as? DatasetError, .folderMissing(path))
        XCTAssertTrue("\(error!)".contains(path))
    }

    func testEmptyFolderIsAnError() {
        let path = makeTemporaryDirectory(self)
        let error = thrownError { _ = try ImageFolderDataset(root: path) }
        XCTAssertEqual(error as? DatasetError, .noClassFolders(path, looseImages: 0))
        XCTAssertTrue("\(error!)".contains("empty"), "\(error!)")
    }

    func testImagesWithoutClassFoldersExplainTheLayout() {
        let path = makeTemporaryDirectory(self)
        writePNG(patternImage(width: 4, height: 4), to: path + "/one.png")
        let error = thrownError { _ = try ImageFolderDataset(root: path) }
        XCTAssertEqual(error as? DatasetError, .noClassFolders(path, looseImages: 1))
        XCTAssertTrue("\(error!)".contains("sub-folder"), "\(error!)")
    }

    func testClassFolderWithoutImagesIsAnErrorNamingTheFolder() throws {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("a", 2), ("b", 2)])
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/empty/readme.txt"))
        let error = thrownError { _ = try ImageFolderDataset(root: root) }
        XCTAssertEqual(error as? DatasetError, .classWithoutImages(className: "empty", folder: root + "/empty", otherFiles: 1))
        XCTAssertTrue("\(error!)".contains(root + "/empty"))
    }

    func testASingleClassIsAnError() {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("only", 3)])
        let error = thrownError { _ = try ImageFolderDataset(root: root) }
        XCTAssertEqual(error as? DatasetError, .tooFewClasses(root, found: ["only"]))
        XCTAssertTrue("\(error!)".contains("at least 2 classes"))
    }

    func testExpectedClassesThatDifferAreAnError() {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("cat", 1), ("dog", 1)])
        let error = thrownError { _ = try ImageFolderDataset(root: root, options: .init(expectedClasses: ["cat", "cow"])) }
        XCTAssertEqual(error as? DatasetError, .classMismatch(root, expected: ["cat", "cow"], found: ["cat", "dog"]))
        let text = "\(error!)"
        XCTAssertTrue(text.contains("missing \"cow\"") && text.contains("unexpected \"dog\""), text)
        let countError = thrownError { _ = try ImageFolderDataset(root: root, options: .init(expectedClassCount: 3)) }
        XCTAssertEqual(countError as? DatasetError, .classCountMismatch(root, expected: 3, found: ["cat", "dog"]))
        XCTAssertNoThrow(try ImageFolderDataset(root: root, options: .init(expectedClasses: ["cat", "dog"], expectedClassCount: 2)))
    }

    func testACorruptImageIsAnErrorNamingTheFile() {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("a", 2), ("b", 2)])
        let bad = root + "/b/broken.png"
        writeCorruptImage(to: bad)
        let error = thrownError { _ = try ImageFolderDataset(root: root) }
        guard case let .badImages(errors)? = error as? DatasetError else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(errors.map(\.file), [bad])
        XCTAssertTrue("\(error!)".contains(bad), "\(error!)")
    }

    func testBadImagesAreSkippedAndCountedWhenAsked() throws {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("a", 2), ("b", 2)])
        writeCorruptImage(to: root + "/b/broken.png")
        writeCorruptImage(to: root + "/a/fake.jpg", truncatedPNG: false)
        let data = try ImageFolderDataset(root: root, options: .init(skipBadImages: true))
        XCTAssertEqual(data.skippedCount, 2)
        XCTAssertEqual(Set(data.skipped.map(\.path)), [root + "/b/broken.png", root + "/a/fake.jpg"])
        XCTAssertEqual(data.trainingCounts, [2, 2])
        XCTAssertTrue(data.summary.contains("skipped 2 unreadable images"), data.summary)
    }

    func testAClassOfOnlyBadImagesIsAnErrorEvenWhenSkipping() {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("a", 2)])
        try! FileManager.default.createDirectory(atPath: root + "/b", withIntermediateDirectories: true)
        writeCorruptImage(to: root + "/b/broken.png")
        let error = thrownError { _ = try ImageFolderDataset(root: root, options: .init(skipBadImages: true)) }
        XCTAssertEqual(error as? DatasetError, .classOnlyBadImages(className: "b", folder: root + "/b", bad: 1))
    }

    func testSplitAndValidationFolderTogetherAreRejected() {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("a", 2), ("b", 2)])
        let error = thrownError { _ = try ImageFolderDataset(root: root, options: .init(validationSplit: 0.1, validationFolder: root)) }
        guard case .invalidOption? = error as? DatasetError else { return XCTFail("got \(String(describing: error))") }
    }
}
