import InceptionCore
import InceptionModels
import XCTest

/// The inference plan runs the large early layers (inputs of at least 28×28 pixels) image by
/// image when none of their endpoints is asked for, to keep the activation buffers small.
final class InferencePlanTests: XCTestCase {
    func batch(_ n: Int) -> Tensor {
        var rng = SeededGenerator(seed: 11)
        return Tensor(shape: [n, 224, 224, 3], scalars: (0..<(n * 224 * 224 * 3)).map { _ in Float.random(in: -1...1, using: &rng) })
    }

    /// Same logits whether the early layers run image by image (only Logits wanted) or on the
    /// whole batch (an early endpoint wanted, so the plan must keep whole-batch buffers).
    func testImageByImageEarlyLayersGiveTheWholeBatchResults() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 10))
        let x = batch(3)
        let perImage = try model.forward(x, endpoints: .only(["Logits"]))
        let perImageBytes = model.planBufferBytes
        let wholeBatch = try model.forward(x, endpoints: .only(["Conv2d_1a_7x7", "Logits"]))
        let wholeBatchBytes = model.planBufferBytes
        XCTAssertEqual(perImage.output.shape, [3, 10])
        XCTAssertLessThanOrEqual(perImage.output.maxAbsDifference(wholeBatch.output), 1e-5 * max(1, wholeBatch.output.maxAbs))
        XCTAssertEqual(wholeBatch.endpoints["Conv2d_1a_7x7"]?.shape, [3, 112, 112, 64])
        // At batch 3 the whole-batch plan holds Conv2d_1a_7x7's 3×112×112×64 output (9.6 MB) at
        // once; image by image the largest buffer is Mixed_3c's 3×28×28×480 (4.5 MB).
        XCTAssertLessThan(Double(perImageBytes), 0.6 * Double(wholeBatchBytes),
                          "plan buffers: \(perImageBytes) bytes image by image, \(wholeBatchBytes) for the whole batch")
    }

    /// The same for the other two networks, whose root blocks have LRN layers (the paper's) and
    /// ceil-mode pools (both), and whose mixed blocks differ.
    func testImageByImageEarlyLayersForThePapersAndTorchvisionsNetworks() throws {
        for architecture in [Architecture.googlenet, .googlenetTorchvision] {
            var options = ModelOptions.defaults(for: architecture)
            options.numClasses = 10
            let model = try InceptionModel(options: options)
            let x = batch(2)
            let perImage = try model.forward(x, endpoints: .only(["Logits"])).output
            let wholeBatch = try model.forward(x, endpoints: .all).output
            XCTAssertLessThanOrEqual(perImage.maxAbsDifference(wholeBatch), 1e-5 * max(1, wholeBatch.maxAbs), "\(architecture)")
        }
    }

    /// Each image's row of the batched logits is that image's logits run alone.
    func testImagesOfABatchStayIndependent() throws {
        let model = try InceptionModel(options: ModelOptions(numClasses: 10))
        let x = batch(2)
        let both = try model.forward(x, endpoints: .none).output
        let second = try model.forward(Tensor(shape: [1, 224, 224, 3], scalars: Array(x.scalars[(224 * 224 * 3)...])),
                                       endpoints: .none).output
        let row = Tensor(shape: [1, 10], scalars: Array(both.scalars[10..<20]))
        XCTAssertLessThanOrEqual(row.maxAbsDifference(second), 1e-5 * max(1, second.maxAbs))
    }
}
