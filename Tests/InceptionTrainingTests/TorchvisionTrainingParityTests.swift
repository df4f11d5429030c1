import Foundation
@testable import Inception
@testable import InceptionTraining
import XCTest

/// One training-mode pass of torchvision's GoogLeNet against PyTorch's (fixture `train_224` from
/// scripts/make_torchvision_fixtures.py, dropout off): batch-statistics batch norm, both auxiliary
/// classifiers, the loss CE + 0.3·(CE_aux1 + CE_aux2), and the gradients of the variables sampled.
///
/// Tolerances: the fixture records how far PyTorch's own float32 result lies from a float64 run
/// of the same model. The outputs agree to ~1e-5, but gradients below the heads are chaotic in
/// float32 with batch-statistics batch norm (4–10% relative L2 for the stem): ours may differ
/// from torch's by a few times torch's own float32 error, no more.
final class TorchvisionTrainingParityTests: XCTestCase {
    struct Manifest: Decodable {
        struct Entry: Decodable {
            let shape: [Int]; let max_abs: Double; let file: String
            let float64_max_abs_diff: Double; let float64_rel_l2_diff: Double
            let name: String?; let key: String?
        }
        struct Arguments: Decodable { let labels: [Int] }
        let arguments: Arguments
        let input_shape: [Int]
        let losses: [String: Double]
        let outputs: [Entry]
        let gradients: [Entry]
    }
    struct StateDict: Decodable {
        struct Entry: Decodable { let key: String; let shape: [Int]; let dtype: String }
        let entries: [Entry]
    }
    struct StateDictReader: WeightReader {
        let path = "pattern.pth"
        let values: [String: Tensor]
        var variables: [TensorInfo] {
            values.keys.sorted().map { TensorInfo(name: $0, dtype: "float32", shape: values[$0]!.shape, byteCount: values[$0]!.count * 4) }
        }
        func tensor(named name: String) throws -> Tensor { values[name]! }
    }

    /// The fixtures live with the inference parity fixtures in the InceptionTests target.
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("InceptionTests/Fixtures/torchvision")

    static func seed(_ name: String) -> UInt64 {
        var h: UInt32 = 2_166_136_261
        for byte in name.utf8 { h = (h ^ UInt32(byte)) &* 16_777_619 }
        return UInt64(h)
    }
    static func unit(_ seed: UInt64, _ i: Int) -> Double {
        Double((seed &+ UInt64(i + 1) &* 2_654_435_761) & 0xFFFF_FFFF) / 4_294_967_296.0 * 2 - 1
    }
    /// The fixture script's pattern for a torchvision key (see TorchvisionParityTests).
    static func pattern(_ key: String, shape: [Int]) -> Tensor {
        let s = seed(key)
        let value: (Double) -> Double
        if key.hasSuffix(".weight") && shape.count == 4 {
            let scale = (6 / Double(shape[1] * shape[2] * shape[3])).squareRoot(); value = { $0 * scale }
        } else if key.hasSuffix(".weight") && shape.count == 2 {
            let scale = (6 / Double(shape[1])).squareRoot(); value = { $0 * scale }
        } else if key.hasSuffix("bn.weight") || key.hasSuffix("running_var") || key == "input" && false {
            value = { 1 + 0.25 * $0 }
        } else if key == "input" {
            value = { $0 }
        } else {
            value = { 0.1 * $0 }
        }
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { Float(value(unit(s, $0))) })
    }

    /// Our gradient in torch's layout, element `i` of the torch tensor.
    static func torchElement(_ ours: Tensor, layout: TorchvisionGoogLeNetWeights.Layout, torchShape t: [Int], _ i: Int) -> Float {
        switch layout {
        case .same: return ours.scalars[i]
        case .convolution:  // torch [o, c, y, x] ← ours [y, x, c, o]
            let (o, c, kh, kw) = (t[0], t[1], t[2], t[3])
            let x = i % kw, y = (i / kw) % kh, ci = (i / (kw * kh)) % c, oi = i / (kw * kh * c)
            return ours.scalars[((y * kw + x) * c + ci) * o + oi]
        case .linear:  // torch [o, c] ← ours [1, 1, c, o]
            let (o, c) = (t[0], t[1])
            return ours.scalars[(i % c) * o + i / c]
        case .flattenedGrid(let h, let w):  // torch [o, c·h·w] ← ours [h, w, c, o]
            let o = t[0], c = t[1] / (h * w)
            let oi = i / t[1], r = i % t[1], ci = r / (h * w), y = (r / w) % h, x = r % w
            return ours.scalars[((y * w + x) * c + ci) * o + oi]
        }
    }

    func testTrainingPassMatchesTorchvisionWithAuxiliaryClassifiers() throws {
        let dir = Self.fixtures.appendingPathComponent("train_224")
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: dir.appendingPathComponent("manifest.json")))
        let listing = try JSONDecoder().decode(StateDict.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("state_dict_keys.json")))
        var values: [String: Tensor] = [:]
        for e in listing.entries where e.dtype == "float32" { values[e.key] = Self.pattern(e.key, shape: e.shape) }
        let reader = TorchvisionGoogLeNetWeights(StateDictReader(values: values))

        var options = ModelOptions.defaults(for: .googlenetTorchvision)
        options.isTraining = true
        options.transformInput = true
        options.dropoutKeepProbability = 1
        options.auxiliaryDropoutKeepProbability = 1
        let model = try InceptionModel(options: options)
        try model.loadWeights(from: reader)
        let trainer = try Trainer(model: model, weightDecay: 0)
        let input = Self.pattern("input", shape: manifest.input_shape)
        let result = try trainer.gradients(images: input, labels: manifest.arguments.labels)

        XCTAssertEqual(Double(result.crossEntropy), manifest.losses["loss"]!, accuracy: 1e-4 * manifest.losses["loss"]!)
        let outputs = ["Logits": result.logits].merging(result.auxiliaryLogits) { a, _ in a }
        XCTAssertEqual(Set(outputs.keys), ["Logits", "AuxLogits_4b", "AuxLogits_4e"])
        for entry in manifest.outputs {
            let reference = try NPY.read(dir.appendingPathComponent(entry.file).path).scalars
            let ours = try XCTUnwrap(outputs[entry.name!])
            let worst = zip(ours.scalars, reference).map { abs($0 - $1) }.max()!
            let tolerance = Float(max(1e-4 * max(1, entry.max_abs), 4 * entry.float64_max_abs_diff))
            XCTAssertLessThanOrEqual(worst, tolerance, "\(entry.name!): max |ours − torch| = \(worst)")
        }
        for entry in manifest.gradients {
            let key = entry.key!
            let (name, layout) = try XCTUnwrap(TorchvisionGoogLeNetWeights.translate(key, shape: entry.shape), key)
            let ours = try XCTUnwrap(result.gradients[name], name)
            let reference = try NPY.read(dir.appendingPathComponent(entry.file).path).scalars
            let count = entry.shape.reduce(1, *)
            let indices = count <= 4096 ? Array(0..<count)
                : Array(0..<512) + Array((count - 512)..<count) + (0..<3072).map { ($0 * 2_147_483_647) % count }
            var difference = 0.0, norm = 0.0
            for (k, i) in indices.enumerated() {
                let d = Double(Self.torchElement(ours, layout: layout, torchShape: entry.shape, i)) - Double(reference[k])
                difference += d * d
                norm += Double(reference[k]) * Double(reference[k])
            }
            let relative = (difference / max(norm, 1e-30)).squareRoot()
            let tolerance = max(4 * entry.float64_rel_l2_diff, 1e-4)
            XCTAssertLessThanOrEqual(relative, tolerance, "\(key) (\(name)): relative L2 difference \(relative)")
        }
    }
}
