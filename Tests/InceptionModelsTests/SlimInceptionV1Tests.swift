import InceptionCore
import InceptionModels
import XCTest

/// Swift twins of TF-slim's `nets/inception_v1_test.py`, one per slim test case.
/// The forward passes run for real (random weights): shapes come from the running code, not a table.
final class SlimInceptionV1Tests: XCTestCase {
    static let endpointShapes: [(String, [Int])] = [
        ("Conv2d_1a_7x7", [112, 112, 64]), ("MaxPool_2a_3x3", [56, 56, 64]), ("Conv2d_2b_1x1", [56, 56, 64]),
        ("Conv2d_2c_3x3", [56, 56, 192]), ("MaxPool_3a_3x3", [28, 28, 192]), ("Mixed_3b", [28, 28, 256]),
        ("Mixed_3c", [28, 28, 480]), ("MaxPool_4a_3x3", [14, 14, 480]), ("Mixed_4b", [14, 14, 512]),
        ("Mixed_4c", [14, 14, 512]), ("Mixed_4d", [14, 14, 512]), ("Mixed_4e", [14, 14, 528]),
        ("Mixed_4f", [14, 14, 832]), ("MaxPool_5a_2x2", [7, 7, 832]), ("Mixed_5b", [7, 7, 832]),
        ("Mixed_5c", [7, 7, 1024]),
    ]

    func input(_ n: Int, _ h: Int, _ w: Int, _ c: Int = 3) -> Tensor {
        var rng = SeededGenerator(seed: 3)
        return Tensor(shape: [n, h, w, c], scalars: (0..<(n * h * w * c)).map { _ in Float.random(in: -1...1, using: &rng) })
    }

    // testBuildClassificationNetwork
    func testClassificationNetworkGivesLogitsAndPredictionsPerClass() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 1000))
        let result = try model.forward(input(5, 224, 224))
        XCTAssertEqual(result.output.shape, [5, 1000])
        XCTAssertEqual(result.endpoints["Logits"]?.shape, [5, 1000])
        XCTAssertEqual(result.endpoints["Predictions"]?.shape, [5, 1000])
    }

    // testBuildPreLogitsNetwork
    func testZeroClassesReturnsPooledFeaturesWithoutLogits() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 0))
        let result = try model.forward(input(5, 224, 224))
        XCTAssertEqual(result.output.shape, [5, 1, 1, 1024])
        XCTAssertEqual(result.endpoints.names.last, "AvgPool_0a_7x7")
        XCTAssertNil(result.endpoints["Logits"])
        XCTAssertNil(result.endpoints["Predictions"])
    }

    // testBuildBaseNetwork + testBuildAndCheckAllEndPointsUptoMixed5c
    func testBaseNetworkEndpointsHaveSlimsNamesAndShapes() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 0))
        let result = try model.forward(input(5, 224, 224))
        XCTAssertEqual(Array(result.endpoints.names.prefix(16)), Self.endpointShapes.map(\.0))
        for (name, shape) in Self.endpointShapes {
            XCTAssertEqual(result.endpoints[name]?.shape, [5] + shape, name)
        }
    }

    // testBuildOnlyUptoFinalEndpoint
    func testFinalEndpointStopsTheNetworkThere() throws {
        let names = InceptionV1.baseEndpoints
        for (i, name) in names.enumerated() {
            let model = try InceptionModel(options: ModelOptions(finalEndpoint: name))
            let built = try model.shapes(height: 224, width: 224).map(\.name)
            // Only the full base (Mixed_5c) gets the classification head on top.
            XCTAssertEqual(name == "Mixed_5c" ? Array(built.prefix(16)) : built, Array(names[0...i]), name)
        }
        let model = try InceptionModel(options: ModelOptions(finalEndpoint: "Mixed_3c"))
        let result = try model.forward(input(1, 64, 64))
        XCTAssertEqual(result.endpoints.names, Array(names[0...6]))
        XCTAssertEqual(result.output.shape, [1, 8, 8, 480])
    }

    func testUnknownFinalEndpointIsAnError() {
        XCTAssertThrowsError(try InceptionModel(options: ModelOptions(finalEndpoint: "Mixed_6a"))) { error in
            XCTAssertTrue("\(error)".contains("unknown final endpoint 'Mixed_6a'"))
        }
    }

    // testModelHasExpectedNumberOfParameters
    func testBaseNetworkHasSlimsParameterCount() throws {
        XCTAssertEqual(try InceptionModel(options: ModelOptions(numClasses: 0)).parameterCount, 5_607_184)
        XCTAssertEqual(try InceptionModel(options: ModelOptions(numClasses: 1001)).parameterCount, 6_633_209)
        let trainable = try InceptionModel(options: ModelOptions(numClasses: 0)).variableSpecs.filter(\.trainable)
        XCTAssertEqual(trainable.reduce(0) { $0 + $1.count }, 5_592_624)
    }

    func testMultiplyAccumulatesAt224With1001Classes() throws {
        let rows = try InceptionModel().shapes(height: 224, width: 224)
        XCTAssertEqual(rows.reduce(0) { $0 + $1.macs }, 1_498_377_216)
    }

    // testHalfSizeImages
    func testHalfSizeImagesGiveFourByFourMixed5c() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 0, globalPool: true))
        let result = try model.forward(input(5, 112, 112))
        XCTAssertEqual(result.endpoints["Mixed_5c"]?.shape, [5, 4, 4, 1024])
    }

    // testBuildBaseNetworkWithoutRootBlock
    func testWithoutRootBlockTheInputGoesStraightIntoMixed3b() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 0, includeRootBlock: false))
        let result = try model.forward(input(5, 28, 28, 192))
        XCTAssertEqual(result.endpoints.names.first, "Mixed_3b")
        XCTAssertNil(result.endpoints["Conv2d_1a_7x7"])
        for (name, shape) in Self.endpointShapes.dropFirst(5) {
            XCTAssertEqual(result.endpoints[name]?.shape, [5] + shape, name)
        }
    }

    // testUnknownImageShape
    func testDefaultPoolAt224GivesSevenBySevenMixed5c() throws {
        let result = try InceptionModel(options: ModelOptions(numClasses: 10)).forward(input(2, 224, 224))
        XCTAssertEqual(result.endpoints["Mixed_5c"]?.shape, [2, 7, 7, 1024])
        XCTAssertEqual(result.output.shape, [2, 10])
    }

    // testGlobalPoolUnknownImageShape
    func testGlobalPoolAcceptsAnyImageSize() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 10, globalPool: true))
        let result = try model.forward(input(1, 250, 300))
        XCTAssertEqual(result.endpoints["Mixed_5c"]?.shape, [1, 8, 10, 1024])
        XCTAssertEqual(result.endpoints["global_pool"]?.shape, [1, 1, 1, 1024])
        XCTAssertEqual(result.output.shape, [1, 10])
    }

    // testUnknowBatchSize
    func testBatchSizeIsFreeAndImagesAreIndependent() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 10, globalPool: true))
        let pair = input(2, 64, 64)
        let both = try model.forward(pair).output
        let first = try model.forward(Tensor(shape: [1, 64, 64, 3], scalars: Array(pair.scalars[0..<(64 * 64 * 3)]))).output
        XCTAssertEqual(both.shape, [2, 10])
        XCTAssertLessThan(Tensor(shape: [1, 10], scalars: Array(both.scalars[0..<10])).maxAbsDifference(first), 1e-5)
    }

    // testEvaluation
    func testEvaluationIsDeterministic() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 10))
        let x = input(2, 224, 224)
        XCTAssertEqual(try model.forward(x).endpoints["Predictions"], try model.forward(x).endpoints["Predictions"])
    }

    // testTrainEvalWithReuse
    func testTrainingThenEvaluationWithTheSameVariables() throws {
        var options = ModelOptions(numClasses: 10, globalPool: true)
        options.isTraining = true
        let train = try InceptionModel(options: options)
        XCTAssertEqual(try train.forward(input(5, 64, 64)).output.shape, [5, 10])
        let eval = try InceptionModel(options: ModelOptions(numClasses: 10, globalPool: true))
        try eval.assign(train.variables)
        XCTAssertEqual(try eval.forward(input(2, 64, 64)).output.shape, [2, 10])
    }

    // testLogitsNotSqueezed
    func testUnsqueezedLogitsKeepHeightAndWidth() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 10, spatialSqueeze: false))
        XCTAssertEqual(try model.forward(input(1, 224, 224)).output.shape, [1, 1, 1, 10])
    }

    // testNoBatchNormScaleByDefault
    func testNoGammaByDefault() throws {
        let names = try InceptionModel().variableSpecs.map(\.name)
        XCTAssertFalse(names.contains { $0.hasSuffix("/BatchNorm/gamma") })
    }

    // testBatchNormScale
    func testBatchNormScaleCreatesAGammaForEveryBatchNorm() throws {
        let specs = try InceptionModel(options: ModelOptions(batchNormScale: true)).variableSpecs
        let betas = specs.filter { $0.name.hasSuffix("/BatchNorm/beta") }.map { $0.name.dropLast(4) }
        let gammas = specs.filter { $0.name.hasSuffix("/BatchNorm/gamma") }.map { $0.name.dropLast(5) }
        XCTAssertEqual(betas.count, 57)
        XCTAssertEqual(betas, gammas)
    }

    func testVariablesCarrySlimNamesIncludingTheMixed5bQuirk() throws {
        let names = Set(try InceptionModel().variableSpecs.map(\.name))
        for name in ["InceptionV1/Conv2d_1a_7x7/weights", "InceptionV1/Conv2d_1a_7x7/BatchNorm/moving_variance",
                     "InceptionV1/Mixed_4c/Branch_1/Conv2d_0b_3x3/weights",
                     "InceptionV1/Mixed_5b/Branch_2/Conv2d_0a_3x3/weights",
                     "InceptionV1/Mixed_5c/Branch_2/Conv2d_0b_3x3/weights",
                     "InceptionV1/Mixed_3b/Branch_3/Conv2d_0b_1x1/BatchNorm/beta",
                     "InceptionV1/Logits/Conv2d_0c_1x1/weights", "InceptionV1/Logits/Conv2d_0c_1x1/biases"] {
            XCTAssertTrue(names.contains(name), name)
        }
        XCTAssertFalse(names.contains("InceptionV1/Mixed_5b/Branch_2/Conv2d_0b_3x3/weights"))
    }

    func testWrongChannelCountIsAClearError() throws {
        XCTAssertThrowsError(try InceptionModel().forward(input(1, 224, 224, 4))) { error in
            XCTAssertTrue("\(error)".contains("4 channels"), "\(error)")
        }
        XCTAssertThrowsError(try InceptionModel().forward(Tensor(zeros: [224, 224, 3])))
    }

    func testInputTooSmallForTheDefaultHeadIsAClearError() throws {
        XCTAssertThrowsError(try InceptionModel().forward(input(1, 112, 112))) { error in
            XCTAssertTrue("\(error)".contains("7x7"), "\(error)")
        }
    }

    /// `validate` remembers the shapes it accepted (working them out is 5% of a batch-1 pass);
    /// a rejected shape must stay rejected, even after a good one of the same model.
    func testShapeChecksStayRightWhenRepeated() throws {
        let model = try InceptionModel(options: ModelOptions(finalEndpoint: "Mixed_3b"))
        for _ in 0..<2 {
            XCTAssertNoThrow(try model.validate(inputShape: [1, 64, 64, 3]))
            XCTAssertThrowsError(try model.validate(inputShape: [1, 64, 64, 4]))
            XCTAssertThrowsError(try model.validate(inputShape: [1, 0, 64, 3]))
        }
        let classifier = try InceptionModel()
        for _ in 0..<2 {
            XCTAssertNoThrow(try classifier.validate(inputShape: [2, 224, 224, 3]))
            XCTAssertThrowsError(try classifier.validate(inputShape: [2, 112, 112, 3]))
        }
    }

    func testAssigningAWrongShapeNamesTheVariable() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 0))
        XCTAssertThrowsError(try model.assign(["InceptionV1/Conv2d_1a_7x7/weights": Tensor(zeros: [3, 3, 3, 64])])) { error in
            XCTAssertTrue("\(error)".contains("InceptionV1/Conv2d_1a_7x7/weights: expected shape [7, 7, 3, 64]"), "\(error)")
        }
    }
}
