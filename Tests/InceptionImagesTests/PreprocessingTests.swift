import InceptionCore
import XCTest
import InceptionImages

final class PreprocessingTests: XCTestCase {
    /// Tolerance against TensorFlow after the resize (the brief's bar; the arithmetic is TF's, so
    /// the differences are expected to be 0).
    let tolerance: Float = 1e-5

    private func image(fromNPY name: String) throws -> RGBImage {
        let array = try NPYArray(path: Paths.fixture(name))
        return RGBImage(width: array.shape[1], height: array.shape[0], pixels: array.bytes)
    }

    private func assertMatches(_ tensor: Tensor, _ fixture: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try NPYArray(path: Paths.fixture(fixture))
        let reference = Tensor(shape: [1] + expected.shape, scalars: expected.floats)
        XCTAssertEqual(tensor.shape, reference.shape, file: file, line: line)
        let difference = tensor.maxAbsDifference(reference)
        XCTAssertLessThanOrEqual(difference, tolerance, "\(fixture): max |difference| \(difference)", file: file, line: line)
    }

    func testCentralCropUsesTensorFlowIntegerArithmetic() {
        let p = Preprocessing.inceptionEval
        // start = int((size - size * 0.875) / 2), extent = size - 2 * start
        XCTAssertTrue(p.centralCrop(width: 451, height: 300) == (28, 18, 395, 264))
        XCTAssertTrue(p.centralCrop(width: 37, height: 23) == (2, 1, 33, 21))
        XCTAssertTrue(p.centralCrop(width: 1, height: 2) == (0, 0, 1, 2))
        XCTAssertTrue(Preprocessing(centralFraction: nil).centralCrop(width: 10, height: 9) == (0, 0, 10, 9))
        XCTAssertTrue(Preprocessing(centralFraction: 0.5).centralCrop(width: 37, height: 23) == (9, 5, 19, 13))
    }

    /// Crop 0.875, TF2 half-pixel bilinear resize, [-1, 1] (the fixture is TF2's `tf.image.resize`).
    func testHalfPixelEvalPreprocessingOfTensorFlowPixelsMatchesTensorFlowAt224() throws {
        let tensor = Preprocessing(resizeCenters: .halfPixel).tensor(for: try image(fromNPY: "cat_decoded.npy"))
        XCTAssertEqual(tensor.shape, [1, 224, 224, 3])
        try assertMatches(tensor, "cat_eval_224.npy")
    }

    func testLegacyResizeMatchesTensorFlowV1ResizeBilinear() throws {
        let p = Preprocessing(height: 64, width: 64, resizeCenters: .legacyTF1)
        try assertMatches(p.tensor(for: try image(fromNPY: "cat_decoded.npy")), "cat_eval_legacy_64.npy")
    }

    func testDecodeAndPreprocessMatchTensorFlowEndToEnd() throws {
        let p = Preprocessing(height: 64, width: 64)
        for sample in ["coffee-progressive.jpg", "astronaut-gray.jpg", "chelsea.png"] {
            let decoded = try ImageDecoder.decode(contentsOf: Paths.sample(sample))
            let stem = sample.split(separator: ".").first!
            try assertMatches(p.tensor(for: decoded), "\(stem)_eval_64.npy")
        }
    }

    func testOddSizesCropsAndUpsamplingMatchTensorFlow() throws {
        let input = try image(fromNPY: "random_input.npy")
        try assertMatches(Preprocessing(height: 29, width: 17).tensor(for: input), "random_eval_29x17.npy")
        try assertMatches(Preprocessing(height: 29, width: 17, resizeCenters: .legacyTF1).tensor(for: input),
                          "random_eval_legacy_29x17.npy")
        try assertMatches(Preprocessing(height: 16, width: 16, centralFraction: 0.5).tensor(for: input),
                          "random_crop05_16x16.npy")
        try assertMatches(Preprocessing(height: 50, width: 61, centralFraction: nil, normalization: .unitRange).tensor(for: input),
                          "random_resize_50x61.npy")
    }

    func testInceptionNormalizationMapsBlackToMinusOneAndWhiteToOne() {
        let black = RGBImage(width: 5, height: 4, pixels: [UInt8](repeating: 0, count: 60))
        let white = RGBImage(width: 5, height: 4, pixels: [UInt8](repeating: 255, count: 60))
        let p = Preprocessing(height: 7, width: 3)
        XCTAssertTrue(p.tensor(for: black).scalars.allSatisfy { $0 == -1 })
        XCTAssertTrue(p.tensor(for: white).scalars.allSatisfy { $0 == 1 })
    }

    func testMeanStdNormalizationIsAppliedPerChannel() {
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        let input = RGBImage(width: 2, height: 2, pixels: [10, 100, 200, 30, 60, 90, 0, 255, 128, 7, 8, 9])
        let unit = Preprocessing(height: 3, width: 3, normalization: .unitRange).tensor(for: input)
        let normalized = Preprocessing(height: 3, width: 3, normalization: .meanStd(mean: mean, std: std)).tensor(for: input)
        for i in 0..<unit.count {
            XCTAssertEqual(normalized.scalars[i], (unit.scalars[i] - mean[i % 3]) / std[i % 3])
        }
    }

    func testBatchEqualsOneTensorPerImage() throws {
        let images = try ["cat.jpg", "coffee-progressive.jpg", "chelsea.png", "astronaut-gray.jpg", "rocket-exif6.jpg"]
            .map { try ImageDecoder.decode(contentsOf: Paths.sample($0)) }
        let p = Preprocessing.inceptionEval
        let batch = p.batch(images)
        XCTAssertEqual(batch.shape, [5, 224, 224, 3])
        var expected = Tensor(zeros: [5, 224, 224, 3])
        for (i, image) in images.enumerated() { p.write(image, into: &expected, at: i) }
        XCTAssertEqual(batch, expected)
        XCTAssertEqual(Array(batch.scalars.prefix(224 * 224 * 3)), p.tensor(for: images[0]).scalars)
    }

    func testBatchFromPathsDecodesAndPreprocesses() throws {
        let names = ["cat.jpg", "chelsea.png"]
        let p = Preprocessing(height: 32, width: 32)
        let batch = try p.batch(contentsOf: names.map(Paths.sample))
        let expected = p.batch(try names.map { try ImageDecoder.decode(contentsOf: Paths.sample($0)) })
        XCTAssertEqual(batch, expected)
    }

    func testBatchFromPathsThrowsTheFirstFailingFilesError() throws {
        let empty = try Paths.temporaryFile(named: "empty.png", bytes: [])
        let paths = [Paths.sample("cat.jpg"), empty, "/nonexistent.jpg"]
        let error = assertImageError { _ = try Preprocessing.inceptionEval.batch(contentsOf: paths) }
        XCTAssertEqual(error?.file, empty)
        XCTAssertEqual(error?.kind, .empty)
    }
}

/// torchvision's geometry: Resize(256) + CenterCrop(224) keep the centred square of 224/256 of the
/// shorter side, whatever the aspect ratio.
final class TorchvisionCropTests: XCTestCase {
    func testSquareCropKeepsSevenEighthsOfTheShorterSideCentred() {
        let p = Preprocessing.torchvisionEval
        XCTAssertEqual(p.centralCrop(width: 300, height: 200).width, 175)
        XCTAssertEqual(p.centralCrop(width: 300, height: 200).height, 175)
        XCTAssertEqual(p.centralCrop(width: 300, height: 200).x, 62)
        XCTAssertEqual(p.centralCrop(width: 300, height: 200).y, 12)
        XCTAssertEqual(p.centralCrop(width: 256, height: 512).width, 224)
        XCTAssertEqual(p.centralCrop(width: 256, height: 512).y, 144)
    }

    /// Slim's crop keeps 87.5% of each side and squashes; torchvision's keeps the aspect ratio.
    func testSlimAndTorchvisionCropsDifferOnWideImages() {
        let slim = Preprocessing.inceptionEval.centralCrop(width: 300, height: 200)
        XCTAssertEqual(slim.width, 264)
        XCTAssertEqual(slim.height, 176)
    }
}
