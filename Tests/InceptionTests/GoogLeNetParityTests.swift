import Foundation
import Inception
import XCTest

/// The paper's GoogLeNet against the same network written in PyTorch (fixtures from
/// scripts/make_googlenet_fixtures.py: torch.nn with Caffe's padding, ceil-mode pools, LRN and 5x5
/// branches, on the pattern weights of docs/parity-fixtures.md under our variable names):
/// every endpoint within 1e-4 · max(1, max |torch|).
final class GoogLeNetParityTests: XCTestCase {
    struct Manifest: Decodable {
        struct Endpoint: Decodable { let name: String; let shape: [Int]; let max_abs: Double; let file: String }
        let input_shape: [Int]
        let input_sum: Double
        let endpoints: [Endpoint]
    }
    struct Variables: Decodable {
        struct Variable: Decodable { let name: String; let shape: [Int]; let first: [Float] }
        let variables: [Variable]
    }

    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("googlenet")

    func model() throws -> InceptionModel {
        var options = ModelOptions.defaults(for: .googlenet)
        options.numClasses = 10
        let model = try InceptionModel(options: options)
        try model.assign(ParityPattern.variables(for: model))
        return model
    }

    func testEveryEndpointMatchesTorchAt224() throws {
        let dir = Self.fixtures.appendingPathComponent("eval_224")
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: dir.appendingPathComponent("manifest.json")))
        let input = ParityPattern.tensor("input", shape: manifest.input_shape)
        XCTAssertEqual(input.scalars.reduce(0.0) { $0 + Double($1) }, manifest.input_sum, accuracy: 1e-6)
        let result = try model().forward(input)
        XCTAssertEqual(result.endpoints.names, manifest.endpoints.map(\.name) + ["Predictions"])
        for endpoint in manifest.endpoints {
            let ours = try XCTUnwrap(result.endpoints[endpoint.name], endpoint.name)
            XCTAssertEqual(ours.shape, endpoint.shape, endpoint.name)
            guard ours.shape == endpoint.shape else { continue }
            let reference = try NPY.read(dir.appendingPathComponent(endpoint.file).path).scalars
            var worst: Float = 0
            for (k, i) in ParityPattern.sampleIndices(ours.count).enumerated() { worst = max(worst, abs(ours.scalars[i] - reference[k])) }
            XCTAssertLessThanOrEqual(worst, Float(1e-4 * max(1, endpoint.max_abs)), "\(endpoint.name): max |ours − torch| = \(worst)")
        }
    }

    /// Names, shapes and order of the variables (auxiliary heads last) are the fixture's.
    func testVariablesAreThePapersInOrder() throws {
        let listing = try JSONDecoder().decode(Variables.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("variables.json")))
        let model = try model()
        XCTAssertEqual(model.variableSpecs.map(\.name), listing.variables.map(\.name))
        XCTAssertEqual(model.variableSpecs.map(\.shape), listing.variables.map(\.shape))
        for v in listing.variables { XCTAssertEqual(Array(model.variables[v.name]!.scalars.prefix(4)), v.first, v.name) }
    }
}
