import Foundation
@testable import InceptionTraining
import XCTest

/// The trainer's contract: learning, trainable scopes, moving statistics, NaN handling, state
/// save/restore, evaluation, argument checks.
final class TrainerTests: XCTestCase {
    /// A small batch: 4 classes at 32x32 (global pool), images that differ by class.
    private func batch(seed: UInt64 = 1) -> (Tensor, [Int]) {
        let labels = [0, 1, 2, 3, 0, 1, 2, 3]
        var rng = SeededGenerator(seed: seed)
        var x = [Float](repeating: 0, count: 8 * 32 * 32 * 3)
        for (i, label) in labels.enumerated() {
            for p in 0..<(32 * 32) {
                for c in 0..<3 {
                    let base: Float = c == label % 3 ? 0.6 : -0.3
                    x[(i * 1024 + p) * 3 + c] = base * (label == 3 ? -1 : 1) + 0.2 * Float.random(in: -1...1, using: &rng)
                }
            }
        }
        return (Tensor(shape: [8, 32, 32, 3], scalars: x), labels)
    }

    private func smallModel(seed: UInt64 = 3, training: Bool = false) throws -> InceptionModel {
        try InceptionModel(options: ModelOptions(numClasses: 4, isTraining: training, globalPool: true), seed: seed)
    }

    func testTrainingLowersTheLossOnAFixedBatch() throws {
        let model = try smallModel()
        // (Training-mode losses on one batch wobble with the batch statistics; lr 0.001 is smooth:
        // measured 1.33 1.70 1.35 0.99 0.52 0.42 0.43 0.42 0.40 0.41; the label-smoothing floor is ~0.37.)
        let trainer = try Trainer(model: model, optimizer: .rmsprop(learningRate: .fixed(0.001)), labelSmoothing: 0.1, seed: 4)
        let (images, labels) = batch()
        var losses: [Float] = []
        for _ in 0..<10 { losses.append(try trainer.step(images: images, labels: labels).crossEntropy) }
        print("losses: \(losses)")
        XCTAssertLessThan(losses.suffix(3).max()!, losses.first! * 0.5)
        XCTAssertEqual(trainer.step, 10)
        let eval = try trainer.evaluate(images: images, labels: labels)
        XCTAssertEqual(eval.count, 8)
        XCTAssertGreaterThanOrEqual(eval.top5Correct, eval.correct)
    }

    /// Only variables under the scopes change; every batch norm's moving statistics still update
    /// (slim's UPDATE_OPS run for frozen layers too); the frozen part runs no backward.
    func testTrainableScopesFreezeTheRestButMovingAveragesStillUpdate() throws {
        let model = try smallModel()
        let before = model.variables
        let trainer = try Trainer(model: model, optimizer: .momentum(), trainableScopes: ["InceptionV1/Logits", " InceptionV1/Mixed_5c/Branch_3 "],
                                  seed: 1)
        XCTAssertTrue(trainer.trainableVariables.allSatisfy { $0.hasPrefix("InceptionV1/Logits") || $0.hasPrefix("InceptionV1/Mixed_5c/Branch_3") })
        XCTAssertEqual(trainer.trainableVariables.count, 2 + 2)  // logits weights, biases; Branch_3 conv weights, beta
        let (images, labels) = batch()
        let g = try trainer.gradients(images: images, labels: labels)
        XCTAssertEqual(Set(g.gradients.keys), Set(trainer.trainableVariables))
        _ = try trainer.step(images: images, labels: labels)
        for spec in model.variableSpecs {
            let changed = model.variables[spec.name] != before[spec.name]
            switch spec.role {
            case .movingMean, .movingVariance: XCTAssertTrue(changed, "\(spec.name) should update")
            default: XCTAssertEqual(changed, trainer.trainableVariables.contains(spec.name), spec.name)
            }
        }
        XCTAssertThrowsError(try Trainer(model: model, trainableScopes: ["InceptionV1/Logitz"])) { error in
            XCTAssertTrue("\(error)".contains("Logitz"), "\(error)")
        }
    }

    /// m ← m − (m − batch)(1 − decay) with the batch variance's Bessel correction.
    func testMovingStatisticsFollowTheBatchStatistics() throws {
        let model = try smallModel()
        let before = model.variables
        let trainer = try Trainer(model: model, optimizer: .sgd(learningRate: .fixed(0)), seed: 1)
        let (images, labels) = batch()
        let g = try trainer.gradients(images: images, labels: labels)
        _ = try trainer.step(images: images, labels: labels)
        let decay = model.options.batchNormDecay
        for scope in ["InceptionV1/Conv2d_1a_7x7/BatchNorm", "InceptionV1/Mixed_4d/Branch_2/Conv2d_0b_3x3/BatchNorm"] {
            let mean = g.batchMeans[scope]!.scalars, variance = g.batchVariances[scope]!.scalars
            let m0 = before[scope + "/moving_mean"]!.scalars, v0 = before[scope + "/moving_variance"]!.scalars
            let m1 = model.variables[scope + "/moving_mean"]!.scalars, v1 = model.variables[scope + "/moving_variance"]!.scalars
            for i in 0..<mean.count {
                XCTAssertEqual(m1[i], m0[i] - (m0[i] - mean[i]) * (1 - decay), accuracy: 1e-7)
                XCTAssertEqual(v1[i], v0[i] - (v0[i] - variance[i]) * (1 - decay), accuracy: 1e-6)
            }
        }
    }

    func testNonFiniteLossThrowsBeforeAnythingChanges() throws {
        let model = try smallModel()
        let trainer = try Trainer(model: model, seed: 1)
        var (images, labels) = batch()
        _ = try trainer.step(images: images, labels: labels)
        let before = model.variables, state = trainer.optimizerState(), random = trainer.randomState
        images.scalars[17] = .nan
        XCTAssertThrowsError(try trainer.step(images: images, labels: labels)) { error in
            guard case TrainingError.nonFiniteLoss(let step, _, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(step, 1)
            XCTAssertTrue("\(error)".contains("not applied"))
        }
        XCTAssertEqual(model.variables, before)
        XCTAssertEqual(trainer.optimizerState(), state)
        XCTAssertEqual(trainer.step, 1)
        XCTAssertEqual(trainer.randomState, random)
        // And the trainer still works afterwards.
        images.scalars[17] = 0
        XCTAssertNoThrow(try trainer.step(images: images, labels: labels))
    }

    /// A trainer rebuilt from (variables, optimizer state, step, random state) continues exactly
    /// like the original: what a run checkpoint needs.
    func testOptimizerStateRoundTripResumesBitForBit() throws {
        for config in [OptimizerConfig.rmsprop(learningRate: .exponential(initial: 0.01, steps: 1)), .adam(), .momentum(), .sgd()] {
            let model = try smallModel()
            let trainer = try Trainer(model: model, optimizer: config, labelSmoothing: 0.1, seed: 42)
            let (images, labels) = batch()
            _ = try trainer.step(images: images, labels: labels)
            _ = try trainer.step(images: images, labels: labels)
            let saved = (trainer.optimizerState(), trainer.step, trainer.randomState, model.variables)
            let expected = try trainer.step(images: images, labels: labels)

            let copy = try smallModel(seed: 77)
            try copy.assign(saved.3)
            let resumed = try Trainer(model: copy, optimizer: config, labelSmoothing: 0.1, seed: 0)
            try resumed.restore(optimizerState: saved.0, step: saved.1)
            resumed.randomState = saved.2
            let got = try resumed.step(images: images, labels: labels)
            XCTAssertEqual(got, expected, "\(config.kind)")
            XCTAssertEqual(copy.variables, model.variables, "\(config.kind)")
            XCTAssertEqual(resumed.optimizerState(), trainer.optimizerState(), "\(config.kind)")
        }
    }

    func testRestoreRejectsMismatchedState() throws {
        let trainer = try Trainer(model: try smallModel(), optimizer: .rmsprop())
        var state = trainer.optimizerState()
        let key = "InceptionV1/Logits/Conv2d_0c_1x1/biases/RMSProp"
        state[key] = Tensor(zeros: [3])
        state["bogus"] = Tensor(zeros: [1])
        state.removeValue(forKey: "InceptionV1/Logits/Conv2d_0c_1x1/weights/RMSProp_1")
        XCTAssertThrowsError(try trainer.restore(optimizerState: state, step: 5)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(key) && text.contains("bogus") && text.contains("weights/RMSProp_1"), text)
        }
        XCTAssertEqual(trainer.step, 0)
        XCTAssertEqual(trainer.optimizerState().count, 2 * trainer.trainableVariables.count)
    }

    /// evaluate runs inference mode (moving statistics, no dropout), whatever the model's own options.
    func testEvaluateIsInferenceMode() throws {
        let (images, labels) = batch()
        for training in [false, true] {
            let model = try smallModel(training: training)
            let trainer = try Trainer(model: model, seed: 1)
            _ = try trainer.step(images: images, labels: labels)
            let result = try trainer.evaluate(images: images, labels: labels)
            var options = model.options
            options.isTraining = false
            let reference = try InceptionModel(options: options)
            try reference.assign(model.variables)
            let logits = try reference.forward(images).output
            XCTAssertLessThan(result.logits.maxAbsDifference(logits), 1e-5)
            let again = try trainer.evaluate(images: images, labels: labels)
            XCTAssertEqual(again.logits, result.logits, "no dropout, no batch statistics")
        }
    }

    func testArgumentChecks() throws {
        let model = try smallModel()
        let trainer = try Trainer(model: model)
        let (images, labels) = batch()
        XCTAssertThrowsError(try trainer.step(images: images, labels: Array(labels.dropLast())))
        XCTAssertThrowsError(try trainer.step(images: images, labels: labels.map { $0 + 1 }))
        XCTAssertThrowsError(try trainer.step(images: Tensor(zeros: [2, 32, 32, 1]), labels: [0, 0]))
        XCTAssertThrowsError(try Trainer(model: try InceptionModel(options: ModelOptions(numClasses: 0))))
        // 7x7 average pool without global pooling needs 224x224 (one prediction per image).
        let fixed = try Trainer(model: try InceptionModel(options: ModelOptions(numClasses: 4)))
        XCTAssertThrowsError(try fixed.step(images: Tensor(zeros: [1, 64, 64, 3]), labels: [0])) { error in
            XCTAssertTrue("\(error)".contains("global"), "\(error)")
        }
        XCTAssertEqual(trainer.step, 0)
    }

    /// Dropout masks come from the trainer's seed: same seed, same step; other seed, other step.
    func testDropoutIsReproducibleFromTheSeed() throws {
        let (images, labels) = batch()
        func run(_ seed: UInt64) throws -> StepResult {
            let model = try smallModel()
            return try Trainer(model: model, optimizer: .sgd(learningRate: .fixed(0.1)), seed: seed).step(images: images, labels: labels)
        }
        XCTAssertEqual(try run(5), try run(5))
        XCTAssertNotEqual(try run(5).loss, try run(6).loss)
    }

    /// Keeping the activations Y that the backward reads again from the forward (when they fit
    /// ``TrainingGraph/keptActivationBudget``) and re-materialising them in the backward are the
    /// same arithmetic: the same gradients bit for bit. Kept, the plan holds more memory.
    func testKeptAndRematerialisedActivationsGiveTheSameGradients() throws {
        let saved = TrainingGraph.keptActivationBudget
        defer { TrainingGraph.keptActivationBudget = saved }
        let (kept, keptBytes) = try planGradients { TrainingGraph.keptActivationBudget = .max }
        let (rematerialised, rematerialisedBytes) = try planGradients { TrainingGraph.keptActivationBudget = 0 }
        assertSameGradients(kept, rematerialised)
        XCTAssertGreaterThan(keptBytes, rematerialisedBytes, "the kept plan holds the activations")
    }

    /// The gradients of `batch()` and the plan's activation bytes, from a fresh trainer whose
    /// graph is planned after `configure` ran.
    private func planGradients(_ configure: () -> Void) throws -> (GradientResult, Int) {
        let (images, labels) = batch()
        configure()
        let trainer = try Trainer(model: try smallModel(training: true), seed: 7)
        return (try trainer.gradients(images: images, labels: labels), trainer.activationBytes)
    }

    private func assertSameGradients(_ a: GradientResult, _ b: GradientResult, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.loss, b.loss, file: file, line: line)
        XCTAssertEqual(a.logits.scalars, b.logits.scalars, file: file, line: line)
        XCTAssertEqual(Set(a.gradients.keys), Set(b.gradients.keys), file: file, line: line)
        for (name, g) in a.gradients { XCTAssertEqual(g.scalars, b.gradients[name]?.scalars, name, file: file, line: line) }
    }

    /// MaxPool_2a and 3a pool Z and normalize their own output instead of pooling ReLU(BN(Z)):
    /// the same loss and gradients bit for bit (ReLU∘BN keeps order; no two different Z of this
    /// batch round to the same positive Y), and the root convolutions' Ys are never allocated.
    func testMaxPoolsOverPreActivationsGiveTheSameGradients() throws {
        let saved = TrainingGraph.poolsOverPreActivations
        defer { TrainingGraph.poolsOverPreActivations = saved }
        let (overZ, overZBytes) = try planGradients { TrainingGraph.poolsOverPreActivations = true }
        let (overY, overYBytes) = try planGradients { TrainingGraph.poolsOverPreActivations = false }
        assertSameGradients(overZ, overY)
        XCTAssertLessThan(overZBytes, overYBytes, "the stem's and Conv2d_2c's Y are not allocated")
    }

    /// The backward of a network with nothing trainable below the logits runs no convolution
    /// backward: the logits-only step is much cheaper than a full one.
    func testLogitsOnlyFineTuningSkipsTheBase() throws {
        let (images, labels) = batch()
        let model = try smallModel()
        let trainer = try Trainer(model: model, trainableScopes: ["InceptionV1/Logits"])
        let g = try trainer.gradients(images: images, labels: labels)
        XCTAssertEqual(Set(g.gradients.keys), ["InceptionV1/Logits/Conv2d_0c_1x1/weights", "InceptionV1/Logits/Conv2d_0c_1x1/biases"])
        let plan = try TrainingGraph(layers: model.layers, options: model.options, inputShape: images.shape,
                                     isTrainable: { $0.hasPrefix("InceptionV1/Logits") })
        for node in plan.nodes {
            switch node {
            case .conv(let c): XCTAssertFalse(c.participates || c.propagate, c.units[0].path)
            case .pool(let p): XCTAssertFalse(p.propagate)
            case .head(let h): XCTAssertFalse(h.propagate)
            }
        }
    }
}
