import Foundation
import Inception
import XCTest

/// The photo pipeline end to end, on the pattern weights (not a trained model: these tests check
/// plumbing — decoding, batching, ranking, labels — not what the network recognises).
final class ClassifierTests: XCTestCase {
    static let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Samples")
    static let weightsPath: String = {
        let model = try! InceptionModel()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("classifier-\(UUID().uuidString).safetensors").path
        try! SafeTensors.write(ParityPattern.variables(for: model), to: path)
        return path
    }()

    /// The weight file is written once for the whole class and removed after it.
    override class func tearDown() {
        try? FileManager.default.removeItem(atPath: weightsPath)
        super.tearDown()
    }

    func image(_ name: String) throws -> RGBImage {
        try ImageDecoder.decode(contentsOf: Self.samples.appendingPathComponent(name).path)
    }

    func testTopPredictionsAreRankedProbabilitiesWithImageNetLabels() throws {
        let classifier = try Classifier(weights: Self.weightsPath)
        let result = try classifier.classify([try image("cat.jpg")], top: 5)[0]
        XCTAssertEqual(result.map(\.rank), [1, 2, 3, 4, 5])
        XCTAssertEqual(result.map(\.probability), result.map(\.probability).sorted(by: >))
        XCTAssertEqual(classifier.labels.count, 1001)
        for p in result { XCTAssertEqual(p.label, classifier.labels[output: p.index]) }
    }

    /// Batching must not change any image's result.
    func testBatchOfImagesEqualsEachImageAlone() throws {
        let classifier = try Classifier(weights: Self.weightsPath)
        let images = [try image("cat.jpg"), try image("chelsea.png")]
        let together = try classifier.classify(images, top: 3)
        let alone = try images.map { try classifier.classify([$0], top: 3)[0] }
        for (a, b) in zip(together, alone) {
            XCTAssertEqual(a.map(\.index), b.map(\.index))
            for (p, q) in zip(a, b) { XCTAssertEqual(p.probability, q.probability, accuracy: 1e-6) }
        }
    }

    func testPooledFeaturesHaveOneRowPerImage() throws {
        let extractor = try FeatureExtractor(weights: Self.weightsPath, endpoint: "Mixed_4c")
        let images = [try image("cat.jpg"), try image("coffee-alpha.png"), try image("rocket-exif6.jpg")]
        XCTAssertEqual(try extractor.features(images).shape, [3, 512])
        XCTAssertEqual(try extractor.features(images, pool: false).shape, [3, 14, 14, 512])
        XCTAssertEqual(extractor.model.layers.last?.name, "Mixed_4c")  // runs only as far as needed
    }

    func testUnknownFeatureEndpointNamesTheChoices() {
        XCTAssertThrowsError(try FeatureExtractor(weights: Self.weightsPath, endpoint: "Mixed_9z")) {
            XCTAssertTrue("\($0)".contains("unknown endpoint 'Mixed_9z'"))
        }
    }
}
