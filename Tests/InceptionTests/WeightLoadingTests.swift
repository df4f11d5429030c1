import Foundation
import Inception
import XCTest

final class WeightLoadingTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("weights-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func write(_ tensors: [String: Tensor], _ name: String = "w.safetensors") throws -> String {
        let path = directory.appendingPathComponent(name).path
        try SafeTensors.write(tensors, to: path)
        return path
    }

    /// Pattern weights through safetensors and `loadWeights` give slim's endpoints (the parity fixture).
    func testLoadedSafetensorsReproduceSlimsOutputs() throws {
        let source = try InceptionModel(options: ModelOptions(globalPool: true))
        var tensors = ParityPattern.variables(for: source)
        tensors["global_step"] = Tensor(shape: [], scalars: [1000])
        let path = try write(tensors)
        let model = try InceptionModel(options: ModelOptions(globalPool: true))
        let report = try model.loadWeights(from: path)
        XCTAssertEqual(report.loaded.count, 230)
        XCTAssertEqual(report.ignored, ["global_step"])
        let fixture = SlimParityTests.fixtures.appendingPathComponent("112_global_pool")
        let logits = try model.forward(ParityPattern.tensor("input", shape: [1, 112, 112, 3])).endpoints["Logits"]!
        let reference = try NPY.read(fixture.appendingPathComponent("Logits.npy").path)
        XCTAssertLessThan(logits.reshaped([1001]).maxAbsDifference(reference), 1e-4)
    }

    /// Strict loading reports every missing, unexpected and mis-shaped variable in one error and
    /// changes nothing.
    func testStrictLoadingListsEveryProblemAtOnce() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 0))
        var tensors = model.variables
        tensors["InceptionV1/Conv2d_1a_7x7/weights"] = nil
        tensors["InceptionV1/Mixed_3b/Branch_0/Conv2d_0a_1x1/weights/RMSProp"] = Tensor(zeros: [1])
        tensors["InceptionV1/Conv2d_2b_1x1/BatchNorm/beta"] = Tensor(zeros: [65])
        let before = model.variables
        XCTAssertThrowsError(try model.loadWeights(from: write(tensors))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("missing from the file (1):\n  InceptionV1/Conv2d_1a_7x7/weights"), text)
            XCTAssertTrue(text.contains("InceptionV1/Mixed_3b/Branch_0/Conv2d_0a_1x1/weights/RMSProp"), text)
            XCTAssertTrue(text.contains("InceptionV1/Conv2d_2b_1x1/BatchNorm/beta: file [65], model [64]"), text)
        }
        XCTAssertEqual(model.variables, before)
    }

    func testIgnoreUnexpectedSkipsOptimizerSlots() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 0))
        var tensors = model.variables
        tensors["InceptionV1/Conv2d_1a_7x7/weights/Momentum"] = Tensor(zeros: [1])
        let report = try model.loadWeights(from: write(tensors), options: WeightLoadingOptions(ignoreUnexpected: true))
        XCTAssertEqual(report.ignored, ["InceptionV1/Conv2d_1a_7x7/weights/Momentum"])
    }

    func testMovingAverageCopiesAreUsedOnlyWhenAsked() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 0))
        var tensors = model.variables
        let name = "InceptionV1/Conv2d_1a_7x7/BatchNorm/beta"
        tensors[name + "/ExponentialMovingAverage"] = Tensor(repeating: 7, shape: [64])
        let path = try write(tensors)
        try model.loadWeights(from: path)
        XCTAssertEqual(model.variables[name]?.scalars.first, 0)
        try model.loadWeights(from: path, options: WeightLoadingOptions(useMovingAverages: true))
        XCTAssertEqual(model.variables[name]?.scalars.first, 7)
    }

    /// Fine-tuning the slim way: a 1001-class checkpoint under a 5-class head, excluding the logits.
    func testExcludedLogitsScopeLetsANewHeadLoadTheBase() throws {
        let imagenet = try InceptionModel()
        let path = try write(imagenet.variables)
        let model = try InceptionModel(options: ModelOptions(numClasses: 5))
        XCTAssertThrowsError(try model.loadWeights(from: path)) { XCTAssertTrue("\($0)".contains("--exclude-scopes InceptionV1/Logits")) }
        let report = try model.loadWeights(from: path, options: WeightLoadingOptions(excludeScopes: ["InceptionV1/Logits"]))
        XCTAssertEqual(report.excluded, ["InceptionV1/Logits/Conv2d_0c_1x1/weights", "InceptionV1/Logits/Conv2d_0c_1x1/biases"])
        XCTAssertEqual(model.variables["InceptionV1/Mixed_5c/Branch_0/Conv2d_0a_1x1/weights"],
                       imagenet.variables["InceptionV1/Mixed_5c/Branch_0/Conv2d_0a_1x1/weights"])
    }

    func testOptionsFitTheFilesClassesAndGamma() throws {
        let gamma = try InceptionModel(options: ModelOptions(numClasses: 10, batchNormScale: true))
        let fitted = ModelOptions().fitted(to: try WeightFile.open(write(gamma.variables)))
        XCTAssertEqual(fitted.numClasses, 10)
        XCTAssertTrue(fitted.batchNormScale)
        let features = try InceptionModel(options: ModelOptions(numClasses: 0))
        XCTAssertEqual(ModelOptions().fitted(to: try WeightFile.open(write(features.variables, "f.safetensors"))).numClasses, 0)
    }
}
