import Foundation
import Inception
import XCTest

/// torchvision's GoogLeNet against PyTorch itself (fixtures from scripts/make_torchvision_fixtures.py):
/// the pattern state dict is built in torchvision's names and layouts, goes through the same
/// renaming and layout changes as a `.pth` file, and every endpoint must match within
/// 1e-4 · max(1, max |torch|).
final class TorchvisionParityTests: XCTestCase {
    struct Manifest: Decodable {
        struct Endpoint: Decodable { let name: String; let shape: [Int]; let max_abs: Double; let file: String }
        let input_shape: [Int]
        let input_sum: Double
        let endpoints: [Endpoint]?
        let outputs: [Endpoint]?
    }
    struct StateDict: Decodable {
        struct Entry: Decodable { let key: String; let shape: [Int]; let dtype: String; let first: [Float]? }
        let entries: [Entry]
        let parameters_without_aux: Int
    }

    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("torchvision")

    /// A state dict in memory, as `PyTorchReader` would list it.
    struct StateDictReader: WeightReader {
        let path = "pattern.pth"
        let values: [String: Tensor]
        var variables: [TensorInfo] {
            values.keys.sorted().map { TensorInfo(name: $0, dtype: "float32", shape: values[$0]!.shape, byteCount: values[$0]!.count * 4) }
        }
        func tensor(named name: String) throws -> Tensor { values[name]! }
    }

    /// The fixture's pattern for one torchvision key (docs in the fixture script): FNV-1a seed of
    /// the key, element order of the torch shape, scaled by what the tensor is.
    static func pattern(_ key: String, shape: [Int]) -> Tensor {
        let seed = ParityPattern.seed(key)
        let value: (Double) -> Double
        if key.hasSuffix(".weight") && shape.count == 4 {
            let scale = (6 / Double(shape[1] * shape[2] * shape[3])).squareRoot(); value = { $0 * scale }
        } else if key.hasSuffix(".weight") && shape.count == 2 {
            let scale = (6 / Double(shape[1])).squareRoot(); value = { $0 * scale }
        } else if key.hasSuffix("bn.weight") || key.hasSuffix("running_var") {
            value = { 1 + 0.25 * $0 }
        } else {
            value = { 0.1 * $0 }
        }
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { Float(value(ParityPattern.unit(seed, $0))) })
    }

    static func stateDict() throws -> (reader: StateDictReader, listing: StateDict) {
        let listing = try JSONDecoder().decode(StateDict.self, from: Data(contentsOf: fixtures.appendingPathComponent("state_dict_keys.json")))
        var values: [String: Tensor] = [:]
        for entry in listing.entries where entry.dtype == "float32" { values[entry.key] = pattern(entry.key, shape: entry.shape) }
        return (StateDictReader(values: values), listing)
    }

    func checkCase(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = Self.fixtures.appendingPathComponent(name)
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: dir.appendingPathComponent("manifest.json")))
        let reader = TorchvisionGoogLeNetWeights(try Self.stateDict().reader)
        var options = ModelOptions.defaults(for: .googlenetTorchvision).fitted(to: reader)
        options.transformInput = true
        XCTAssertEqual(options.architecture, .googlenetTorchvision)
        XCTAssertEqual(options.numClasses, 1000)
        let model = try InceptionModel(options: options)
        try model.loadWeights(from: reader)
        let input = ParityPattern.tensor("input", shape: manifest.input_shape)
        XCTAssertEqual(input.scalars.reduce(0.0) { $0 + Double($1) }, manifest.input_sum, accuracy: 1e-6, file: file, line: line)
        let result = try model.forward(input)
        for endpoint in manifest.endpoints ?? [] {
            guard let ours = result.endpoints[endpoint.name] else { XCTFail("missing \(endpoint.name)", file: file, line: line); continue }
            XCTAssertEqual(ours.shape, endpoint.shape, "\(name)/\(endpoint.name)", file: file, line: line)
            guard ours.shape == endpoint.shape else { continue }
            let reference = try NPY.read(dir.appendingPathComponent(endpoint.file).path).scalars
            let indices = ParityPattern.sampleIndices(ours.count)
            var worst: Float = 0
            for (k, i) in indices.enumerated() { worst = max(worst, abs(ours.scalars[i] - reference[k])) }
            let tolerance = Float(1e-4 * max(1, endpoint.max_abs))
            XCTAssertLessThanOrEqual(worst, tolerance, "\(name)/\(endpoint.name): max |ours − torch| = \(worst)", file: file, line: line)
        }
    }

    func testEveryEndpointMatchesTorchvisionAt224() throws { try checkCase("eval_224") }
    /// 163x190: ceil-mode pools and symmetric padding give other sizes than TF SAME would.
    func testEveryEndpointMatchesTorchvisionAtOdd163x190() throws { try checkCase("eval_odd") }

    /// Every float tensor of torchvision's state dict has a place in our model, and the model has
    /// nothing the state dict lacks (strict loading would say otherwise).
    func testEveryStateDictEntryMapsOntoAVariable() throws {
        let (reader, _) = try Self.stateDict()
        let mapped = TorchvisionGoogLeNetWeights(reader)
        let model = try InceptionModel(options: ModelOptions.defaults(for: .googlenetTorchvision))
        XCTAssertEqual(Set(mapped.variables.map(\.name)), Set(model.variableSpecs.map(\.name)))
        for spec in model.variableSpecs { XCTAssertEqual(mapped.info(named: spec.name)?.shape, spec.shape, spec.name) }
    }

    /// torchvision's own count: parameters (not the batch-norm running statistics), no auxiliary heads.
    func testTrainableParametersWithoutAuxiliaryHeadsAreTorchvisions() throws {
        let (_, listing) = try Self.stateDict()
        var options = ModelOptions.defaults(for: .googlenetTorchvision)
        options.auxiliaryLogits = false
        let model = try InceptionModel(options: options)
        XCTAssertEqual(model.variableSpecs.filter(\.trainable).reduce(0) { $0 + $1.count }, listing.parameters_without_aux)
        XCTAssertEqual(listing.parameters_without_aux, 6_624_904)
    }
}
