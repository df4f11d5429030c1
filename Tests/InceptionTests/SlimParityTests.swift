import Foundation
import Inception
import XCTest

/// Every endpoint against TF-slim's own outputs (fixtures from scripts/make_parity_fixtures.py),
/// on the same pattern weights and inputs: max |ours − TF| ≤ 1e-4 · max(1, max |TF|).
final class SlimParityTests: XCTestCase {
    struct Manifest: Decodable {
        struct Arguments: Decodable {
            let batch, height, width: Int
            let global_pool: Bool
            let num_classes: Int
            let batch_norm_scale: Bool
            let spatial_squeeze: Bool
        }
        struct Endpoint: Decodable { let name: String; let shape: [Int]; let max_abs: Double; let file: String }
        let arguments: Arguments
        let input_shape: [Int]
        let input_sum: Double
        let endpoints: [Endpoint]
    }

    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("parity")

    func checkCase(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = Self.fixtures.appendingPathComponent(name)
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: dir.appendingPathComponent("manifest.json")))
        let a = manifest.arguments
        let model = try InceptionModel(options: ModelOptions(
            numClasses: a.num_classes, spatialSqueeze: a.spatial_squeeze, globalPool: a.global_pool,
            batchNormScale: a.batch_norm_scale))
        try model.assign(ParityPattern.variables(for: model))
        let input = ParityPattern.tensor("input", shape: manifest.input_shape)
        XCTAssertEqual(input.scalars.reduce(0.0) { $0 + Double($1) }, manifest.input_sum, accuracy: 1e-6, file: file, line: line)
        let result = try model.forward(input)
        XCTAssertEqual(result.endpoints.names, manifest.endpoints.map(\.name), file: file, line: line)
        for endpoint in manifest.endpoints {
            guard let ours = result.endpoints[endpoint.name] else { XCTFail("missing \(endpoint.name)", file: file, line: line); continue }
            XCTAssertEqual(ours.shape, endpoint.shape, "\(name)/\(endpoint.name)", file: file, line: line)
            let reference = try NPY.read(dir.appendingPathComponent(endpoint.file).path).scalars
            let indices = ParityPattern.sampleIndices(ours.count)
            XCTAssertEqual(indices.count, reference.count, file: file, line: line)
            var worst: Float = 0
            for (k, i) in indices.enumerated() { worst = max(worst, abs(ours.scalars[i] - reference[k])) }
            let tolerance = Float(1e-4 * max(1, endpoint.max_abs))
            XCTAssertLessThanOrEqual(worst, tolerance, "\(name)/\(endpoint.name): max |ours − TF| = \(worst)", file: file, line: line)
        }
    }

    func testEveryEndpointMatchesSlimAt224() throws { try checkCase("224") }
    func testEveryEndpointMatchesSlimAt112WithGlobalPool() throws { try checkCase("112_global_pool") }
    func testEveryEndpointMatchesSlimAtOdd199x257WithGlobalPool() throws { try checkCase("199x257_global_pool") }
    func testEveryEndpointMatchesSlimWithGammaAndUnsqueezedLogits() throws { try checkCase("112_gamma_unsqueezed") }

    /// Our variable list is slim's: same names, same shapes, same creation order.
    func testVariableNamesShapesAndOrderAreSlims() throws {
        struct Variables: Decodable {
            struct Variable: Decodable { let name: String; let shape: [Int]; let first: [Float] }
            let variables: [Variable]
            let base_elements: Int
        }
        let slim = try JSONDecoder().decode(Variables.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("variables.json")))
        let model = try InceptionModel()
        XCTAssertEqual(model.variableSpecs.map(\.name), slim.variables.map(\.name))
        XCTAssertEqual(model.variableSpecs.map(\.shape), slim.variables.map(\.shape))
        for v in slim.variables {
            XCTAssertEqual(Array(ParityPattern.tensor(v.name, shape: v.shape).scalars.prefix(4)), v.first, v.name)
        }
        XCTAssertEqual(slim.base_elements, 5_607_184)
    }
}
