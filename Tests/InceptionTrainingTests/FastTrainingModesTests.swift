import Foundation
@testable import Inception
@testable import InceptionTraining
import XCTest

/// The opt-in mixed precision (``BFloat16Training``: every convolution's products take operands
/// rounded to bfloat16, sums in float32), and the opt-in Winograd, on the network the README's
/// first command runs: the committed digits model on 20 of its training images.
///
/// A trained network, because the parity tests' pattern-weight network is chaotic at
/// initialisation (float32 rounding noise doubles per Inception block, see TrainingStepParityTests):
/// bfloat16's 2⁻⁹ relative rounding per operand, amplified like that, leaves nothing of its forward.
/// A trained network is where mixed precision is used, and there it must follow float32 closely.
/// (The convolutions themselves are checked exactly against rounded operands in
/// ConvolutionGradientTests.)
final class FastTrainingModesTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    private func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a, b) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
        return (d / max(n, 1e-300)).squareRoot()
    }

    /// Each weight gradient's relative L2 distance from the reference, smallest first; one per
    /// weights variable of the model.
    private func weightGradientErrors(_ result: GradientResult, against reference: GradientResult,
                                      model: InceptionModel) throws -> [(name: String, error: Double)] {
        var errors: [(name: String, error: Double)] = []
        for (name, g) in reference.gradients where name.hasSuffix("/weights") {
            errors.append((name, relativeL2(try XCTUnwrap(result.gradients[name]).scalars, g.scalars)))
        }
        XCTAssertEqual(errors.count, model.variables.keys.filter { $0.hasSuffix("/weights") }.count)
        return errors.sorted { $0.error < $1.error }
    }

    /// The digits model (dropout off, so the same forward twice), a 20-image batch (two per class)
    /// and its trainer.
    private func digitsCase() throws -> (model: InceptionModel, trainer: Trainer, images: Tensor, labels: [Int]) {
        let reader = try ModelWeights.open(Self.root.appendingPathComponent("Models/digits.safetensors").path)
        let metadata = try XCTUnwrap(ModelMetadata(reader))
        var options = ModelOptions().fitted(to: reader)
        options.globalPool = metadata.globalPool
        options.dropoutKeepProbability = 1  // the same forward twice
        let model = try InceptionModel(options: options)
        try model.loadWeights(from: reader)

        var preprocessing = Preprocessing.inceptionEval
        preprocessing.height = metadata.imageHeight
        preprocessing.width = metadata.imageWidth
        var batch = Tensor(zeros: preprocessing.batchShape(count: 20))
        var labels: [Int] = []
        for (c, name) in metadata.classNames.enumerated() {
            let folder = Self.root.appendingPathComponent("Data/digits/\(name)")
            let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().prefix(2)
            for file in files {
                preprocessing.write(try ImageDecoder.decode(contentsOf: folder.appendingPathComponent(file).path),
                                    into: &batch, at: labels.count)
                labels.append(c)
            }
        }
        XCTAssertEqual(labels.count, 20)

        let trainer = try Trainer(model: model, optimizer: .rmsprop(), labelSmoothing: 0, weightDecay: 4e-5)
        return (model, trainer, batch, labels)
    }

    func testGradientsOnTheTrainedDigitsModelFollowFloat32() throws {
        let (model, trainer, batch, labels) = try digitsCase()
        let float32 = try trainer.gradients(images: batch, labels: labels)
        let wasEnabled = BFloat16Training.isEnabled
        BFloat16Training.isEnabled = true
        defer { BFloat16Training.isEnabled = wasEnabled }
        let mixed = try trainer.gradients(images: batch, labels: labels)

        // Measured: loss 3e-4 relative, logits 1.3e-3; weight gradients from 0.8% (logits) growing
        // smoothly with depth below them to 4-14% at Mixed_3 and the stem, median 2.6%. The loss of
        // a trained network is small (0.056) and its gradients are residues of cancelling terms, so
        // the rounding of each operand shows more in them than in the forward.
        XCTAssertEqual(Double(mixed.loss), Double(float32.loss), accuracy: 0.01 * Double(float32.loss))
        XCTAssertLessThan(relativeL2(mixed.logits.scalars, float32.logits.scalars), 0.01)
        let errors = try weightGradientErrors(mixed, against: float32, model: model)
        XCTAssertLessThan(errors.last!.error, 0.25, errors.last!.name)
        XCTAssertLessThan(errors[errors.count / 2].error, 0.05, "median weight-gradient error")
        XCTAssertLessThan(try XCTUnwrap(errors.first { $0.name.contains("/Logits/") }).error, 0.02)
        print("bfloat16 products on the digits model: loss \(mixed.loss) vs float32 \(float32.loss), logits relative L2 "
              + "\(relativeL2(mixed.logits.scalars, float32.logits.scalars)), weight gradients relative L2 median "
              + "\(errors[errors.count / 2].error), worst \(errors.last!)")
    }

    /// Training's Winograd (``Winograd/inTraining``: the forward, dX and dW of the 3x3 stride-1
    /// convolutions as F(4x4, 3x3), here those of Conv2d_2c and Mixed_3, the grids with 1024
    /// output pixels or more) on the same model and batch: float32 arithmetic with a different
    /// rounding, so the gradients follow the direct path's far more closely than bfloat16
    /// products do.
    func testWinogradGradientsOnTheTrainedDigitsModelFollowTheDirectPath() throws {
        let (model, trainer, batch, labels) = try digitsCase()
        let direct = try trainer.gradients(images: batch, labels: labels)
        let saved = Winograd.inTraining
        Winograd.inTraining = true
        defer { Winograd.inTraining = saved }
        let winograd = try trainer.gradients(images: batch, labels: labels)

        let errors = try weightGradientErrors(winograd, against: direct, model: model)
        XCTAssertGreaterThan(errors.last!.error, 0, "the 3x3 convolutions ran as Winograd")
        // Measured: logits 3e-7 relative; weight gradients median 9e-5, worst 0.6% (a small 3x3
        // layer of Mixed_4, downstream of them, whose gradient is a residue of cancelling terms);
        // bfloat16: 3% and 14%.
        XCTAssertLessThan(relativeL2(winograd.logits.scalars, direct.logits.scalars), 1e-5)
        XCTAssertLessThan(errors[errors.count / 2].error, 1e-3, "median weight-gradient error")
        XCTAssertLessThan(errors.last!.error, 0.03, errors.last!.name)
        print("Winograd on the digits model: loss \(winograd.loss) vs direct \(direct.loss), logits relative L2 "
              + "\(relativeL2(winograd.logits.scalars, direct.logits.scalars)), weight gradients relative L2 median "
              + "\(errors[errors.count / 2].error), worst \(errors.last!)")
    }
}
