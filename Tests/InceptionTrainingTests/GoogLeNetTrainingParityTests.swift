import Foundation
import Inception
@testable import InceptionTraining
import XCTest

/// One training pass of the paper's GoogLeNet (biases, LRN, 5x5 branches, both auxiliary
/// classifiers, loss CE + 0.3·(CE_4b + CE_4e)) against the same network in PyTorch
/// (scripts/make_googlenet_fixtures.py, dropout off). Gradients near the input pass through a
/// few ReLU and max-pool decisions that float32 and float64 take differently, so they are compared
/// by relative L2 within a few times torch's own float32 error (recorded in the fixture).
final class GoogLeNetTrainingParityTests: XCTestCase {
    struct Manifest: Decodable {
        struct Entry: Decodable {
            let name: String; let shape: [Int]; let max_abs: Double; let file: String
            let float64_max_abs_diff: Double; let float64_rel_l2_diff: Double
        }
        struct Arguments: Decodable { let labels: [Int]; let num_classes: Int }
        let arguments: Arguments
        let input_shape: [Int]
        let losses: [String: Double]
        let outputs: [Entry]
        let gradients: [Entry]
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("InceptionTests/Fixtures/googlenet/train_224")

    /// docs/parity-fixtures.md's pattern for one of our variables (or the input).
    static func pattern(_ name: String, shape: [Int]) -> Tensor {
        var h: UInt32 = 2_166_136_261
        for byte in name.utf8 { h = (h ^ UInt32(byte)) &* 16_777_619 }
        let seed = UInt64(h)
        let role = name.split(separator: "/").last.map(String.init) ?? name
        var scale = 1.0
        if role == "weights" { scale = (6 / Double(shape.dropLast().reduce(1, *))).squareRoot() }
        if role == "biases" { scale = 0.1 }
        func unit(_ i: Int) -> Double {
            let u: UInt64 = (seed &+ UInt64(i + 1) &* 2_654_435_761) & 0xFFFF_FFFF
            return Double(u) / 4_294_967_296.0 * 2 - 1
        }
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { Float(scale * unit($0)) })
    }

    func testTrainingPassMatchesTorchWithAuxiliaryClassifiers() throws {
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("manifest.json")))
        var options = ModelOptions.defaults(for: .googlenet)
        options.numClasses = manifest.arguments.num_classes
        options.isTraining = true
        options.dropoutKeepProbability = 1
        options.auxiliaryDropoutKeepProbability = 1
        let model = try InceptionModel(options: options)
        try model.assign(Dictionary(uniqueKeysWithValues: model.variableSpecs.map { ($0.name, Self.pattern($0.name, shape: $0.shape)) }))
        let trainer = try Trainer(model: model, weightDecay: 0)
        let result = try trainer.gradients(images: Self.pattern("input", shape: manifest.input_shape), labels: manifest.arguments.labels)

        XCTAssertEqual(Double(result.crossEntropy), manifest.losses["loss"]!, accuracy: 1e-5 * manifest.losses["loss"]!)
        let outputs = ["Logits": result.logits].merging(result.auxiliaryLogits) { a, _ in a }
        for entry in manifest.outputs {
            let reference = try NPY.read(Self.fixtures.appendingPathComponent(entry.file).path).scalars
            let ours = try XCTUnwrap(outputs[entry.name], entry.name)
            let worst = zip(ours.scalars, reference).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, Float(1e-4 * max(1, entry.max_abs)), "\(entry.name): max |ours − torch| = \(worst)")
        }
        for entry in manifest.gradients {
            let ours = try XCTUnwrap(result.gradients[entry.name], entry.name)
            let reference = try NPY.read(Self.fixtures.appendingPathComponent(entry.file).path).scalars
            let count = ours.count
            let indices = count <= 4096 ? Array(0..<count)
                : Array(0..<512) + Array((count - 512)..<count) + (0..<3072).map { ($0 * 2_147_483_647) % count }
            var difference = 0.0, norm = 0.0
            for (k, i) in indices.enumerated() {
                let d = Double(ours.scalars[i]) - Double(reference[k])
                difference += d * d
                norm += Double(reference[k]) * Double(reference[k])
            }
            let relative = (difference / max(norm, 1e-30)).squareRoot()
            XCTAssertLessThanOrEqual(relative, max(4 * entry.float64_rel_l2_diff, 1e-4), "\(entry.name): relative L2 difference \(relative)")
        }
    }
}
