import Foundation
import Inception
@testable import InceptionTraining
import XCTest

/// Each network of the family trains: a few steps on one small batch at 224x224 (where the
/// auxiliary classifiers fit) lower the loss, which includes the auxiliary losses; and the trained
/// variables run in inference, where the auxiliary classifiers are skipped.
final class ModelChoiceTrainingTests: XCTestCase {
    func batch() -> (Tensor, [Int]) {
        var rng = SeededGenerator(seed: 7)
        let images = Tensor(shape: [2, 224, 224, 3], scalars: (0..<(2 * 224 * 224 * 3)).map { _ in Float.random(in: -1...1, using: &rng) })
        return (images, [0, 2])
    }

    func trainsAFewSteps(_ architecture: Architecture, auxiliaryHeads: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        var options = ModelOptions.defaults(for: architecture)
        options.numClasses = 3
        options.isTraining = true
        let model = try InceptionModel(options: options, seed: 1)
        XCTAssertEqual(model.auxiliaryHeads.count, auxiliaryHeads, file: file, line: line)
        let trainer = try Trainer(model: model, optimizer: OptimizerConfig(kind: .momentum, learningRate: .fixed(0.01, warmupSteps: 0)),
                                  weightDecay: 0, seed: 3)
        let (images, labels) = batch()
        let first = try trainer.step(images: images, labels: labels)
        var last = first
        for _ in 0..<4 { last = try trainer.step(images: images, labels: labels) }
        XCTAssertTrue(last.loss.isFinite, file: file, line: line)
        XCTAssertLessThan(last.loss, first.loss, "\(architecture.rawValue): \(first.loss) → \(last.loss)", file: file, line: line)

        var inference = options
        inference.isTraining = false
        let runner = try InceptionModel(options: inference)
        try runner.assign(trainer.model.variables)
        let output = try runner.forward(images)
        XCTAssertEqual(output.output.shape, [2, 3], file: file, line: line)
        XCTAssertFalse(output.endpoints.names.contains { $0.hasPrefix("AuxLogits") }, "auxiliary classifiers run in training only",
                       file: file, line: line)
    }

    func testInceptionV1TrainsAFewSteps() throws { try trainsAFewSteps(.inceptionV1, auxiliaryHeads: 0) }
    func testPaperGoogLeNetTrainsAFewStepsWithItsAuxiliaryClassifiers() throws { try trainsAFewSteps(.googlenet, auxiliaryHeads: 2) }
    func testTorchvisionGoogLeNetTrainsAFewStepsWithItsAuxiliaryClassifiers() throws {
        try trainsAFewSteps(.googlenetTorchvision, auxiliaryHeads: 2)
    }

    /// The auxiliary losses are in the loss: with weight 0 the same step gives a smaller loss.
    func testAuxiliaryLossesCountWithTheirWeight() throws {
        let (images, labels) = batch()
        func loss(weight: Float) throws -> Float {
            var options = ModelOptions.defaults(for: .googlenetTorchvision)
            options.numClasses = 3
            options.auxiliaryLossWeight = weight
            options.dropoutKeepProbability = 1
            options.auxiliaryDropoutKeepProbability = 1
            let trainer = try Trainer(model: try InceptionModel(options: options, seed: 1), weightDecay: 0)
            return try trainer.gradients(images: images, labels: labels).crossEntropy
        }
        let without = try loss(weight: 0), with = try loss(weight: 0.3), double = try loss(weight: 0.6)
        XCTAssertGreaterThan(with, without)
        XCTAssertEqual(double - without, 2 * (with - without), accuracy: 1e-4 * double)
    }

    /// The auxiliary classifiers need the 4x4 grid a 224x224 input gives; other sizes say so.
    func testAuxiliaryClassifiersAtAnotherSizeAreAClearError() throws {
        var options = ModelOptions.defaults(for: .googlenet)
        options.numClasses = 3
        options.globalPool = true
        let trainer = try Trainer(model: try InceptionModel(options: options))
        XCTAssertThrowsError(try trainer.step(images: Tensor(zeros: [1, 128, 128, 3]), labels: [0])) { error in
            XCTAssertTrue("\(error)".contains("auxiliary"), "\(error)")
        }
    }
}
