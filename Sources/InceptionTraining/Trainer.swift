import Foundation
import Inception

/// What went wrong in training; the message says what to do.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// The loss of a step was NaN or infinite; nothing was updated.
    case nonFiniteLoss(step: Int, loss: Double, crossEntropy: Double, regularization: Double)
    /// A gradient had a NaN or infinite element; nothing was updated.
    case nonFiniteGradient(step: Int, variable: String)
    /// Bad arguments (shapes, labels, scopes, optimizer state).
    case invalid(String)
    /// A network shape or option the training pass does not handle.
    case unsupported(String)

    public var description: String {
        switch self {
        case .nonFiniteLoss(let step, let loss, let ce, let reg):
            return "the loss became \(loss) at step \(step) (cross-entropy \(ce), regularization \(reg)); "
                + "the update was not applied. Lower the learning rate, check the data (labels, NaN pixels), "
                + "and resume from the last good checkpoint."
        case .nonFiniteGradient(let step, let variable):
            return "the gradient of \(variable) became NaN or infinite at step \(step); the update was not applied. "
                + "Lower the learning rate and resume from the last good checkpoint."
        case .invalid(let message), .unsupported(let message):
            return message
        }
    }
}

/// One training step's numbers.
public struct StepResult: Sendable, Equatable {
    /// The global step after this update (1 after the first).
    public let step: Int
    /// Cross-entropy (with label smoothing, mean over the batch) + regularization: slim's total loss,
    /// before the update.
    public let loss: Float
    public let crossEntropy: Float
    /// wd·Σw²/2 over every convolution and logits weight (frozen ones included, as in slim).
    public let regularization: Float
    /// Top-1 accuracy on the batch (training mode: batch statistics, dropout).
    public let accuracy: Float
    public let correct: Int
    /// The learning rate used.
    public let learningRate: Float
    /// The global L2 norm of the gradients applied (weight decay included).
    public let gradientNorm: Float
}

/// Gradients without an update (``Trainer/gradients(images:labels:)``).
public struct GradientResult: Sendable {
    public let loss: Float
    public let crossEntropy: Float
    public let regularization: Float
    /// ∂loss/∂variable for every trainable variable, by slim name, in the variable's shape
    /// (weight decay included for weights).
    public let gradients: [String: Tensor]
    /// [N, classes], training mode.
    public let logits: Tensor
    /// The auxiliary classifiers' logits [N, classes] by name (`AuxLogits_4b`, …), training mode.
    public let auxiliaryLogits: [String: Tensor]
    /// Batch statistics: the batch mean and the variance the moving average would take
    /// (Bessel-corrected, M/(M − 1), as TF's fused batch norm reports), by `…/BatchNorm` scope.
    public let batchMeans: [String: Tensor]
    public let batchVariances: [String: Tensor]
}

/// Inference-mode results of ``Trainer/evaluate(images:labels:)``.
public struct EvaluationResult: Sendable {
    /// Mean cross-entropy with the trainer's label smoothing (comparable with ``StepResult/crossEntropy``).
    public let crossEntropy: Float
    public let correct: Int
    public let top5Correct: Int
    public let count: Int
    /// [N, classes].
    public let logits: Tensor
    public var accuracy: Float { count == 0 ? 0 : Float(correct) / Float(count) }
}

/// Trains an ``InceptionModel`` the way slim's `train_image_classifier.py` does: training-mode
/// forward (batch statistics, dropout), softmax cross-entropy with optional label smoothing plus
/// L2 weight decay, gradients for the trainable variables, an optimizer update, and the batch-norm
/// moving averages (m ← m − (m − batch)·(1 − decay), for every batch norm, frozen or not).
///
/// The model's own options say what the network is; it is always *trained* in training mode,
/// whatever `options.isTraining` says, and ``evaluate(images:labels:)`` always runs inference
/// mode (moving statistics, no dropout). The model's variables are the single source of truth:
/// each step reads them and writes the updated ones back (so `model.variables` is always current).
/// One step at a time.
public final class Trainer: @unchecked Sendable {
    public let model: InceptionModel
    public let optimizer: OptimizerConfig
    public let labelSmoothing: Float
    public let weightDecay: Float
    public let trainableScopes: [String]?
    /// The global step: updates applied so far (the learning-rate schedule's step).
    public var step: Int
    /// Trainable variables, in the model's order.
    public let trainableVariables: [String]

    private var state: OptimizerState
    private var generator: SeededGenerator
    private var graph: TrainingGraph?
    private let trainableSet: Set<String>
    private let specs: [String: VariableSpec]
    private var inferenceModel: InceptionModel?
    private var inferenceStale = true

    /// - Parameters:
    ///   - trainableScopes: slim's `--trainable_scopes`: only variables whose names start with one of
    ///     these prefixes are updated (nil: every trainable variable). Each must match something.
    ///   - seed: seeds the dropout masks.
    public init(model: InceptionModel, optimizer: OptimizerConfig = .rmsprop(), labelSmoothing: Float = 0,
                weightDecay: Float = 0.00004, trainableScopes: [String]? = nil, seed: UInt64 = 0) throws {
        guard model.hasHead && model.options.numClasses > 0 else {
            throw TrainingError.unsupported("training needs the logits head: final endpoint Mixed_5c and at least one class")
        }
        guard labelSmoothing >= 0 && labelSmoothing < 1 else { throw TrainingError.invalid("label smoothing must be in [0, 1)") }
        guard weightDecay >= 0 else { throw TrainingError.invalid("weight decay must not be negative") }
        self.model = model
        self.optimizer = optimizer
        self.labelSmoothing = labelSmoothing
        self.weightDecay = weightDecay
        let scopes = trainableScopes?.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        self.trainableScopes = scopes
        let trainable = model.variableSpecs.filter { spec in
            spec.trainable && (scopes.map { $0.contains { spec.name.hasPrefix($0) } } ?? true)
        }
        if let scopes {
            let unmatched = scopes.filter { s in !model.variableSpecs.contains { $0.trainable && $0.name.hasPrefix(s) } }
            guard unmatched.isEmpty else {
                throw TrainingError.invalid("trainable scope(s) \(unmatched.joined(separator: ", ")) match no trainable variable "
                    + "(scopes are name prefixes, e.g. InceptionV1/Logits or InceptionV1/Mixed_5c)")
            }
        }
        trainableVariables = trainable.map(\.name)
        trainableSet = Set(trainableVariables)
        specs = Dictionary(uniqueKeysWithValues: model.variableSpecs.map { ($0.name, $0) })
        state = OptimizerState(config: optimizer, variables: trainable.map { ($0.name, $0.count) })
        generator = SeededGenerator(seed: seed)
        step = 0
    }

    /// The dropout generator's state (save it with a run checkpoint; set it to resume).
    public var randomState: UInt64 {
        get { generator.state }
        set { generator = SeededGenerator(seed: newValue) }
    }

    /// Bytes held by the training pass: saved pre-activations plus reusable transient buffers
    /// (after at least one step at the current shape).
    public var activationBytes: Int { (graph?.savedBytes ?? 0) + (graph?.memory.bytes ?? 0) }

    // MARK: Steps

    private func checkBatch(_ images: Tensor, _ labels: [Int]) throws {
        do { try model.validate(inputShape: images.shape) } catch let error as ModelError {
            throw TrainingError.invalid(error.description)
        }
        guard images.rank == 4 else { throw TrainingError.invalid("images must be [N, H, W, 3], got \(images.shape)") }
        guard labels.count == images.shape[0] else {
            throw TrainingError.invalid("\(labels.count) labels for \(images.shape[0]) images")
        }
        let classes = model.options.numClasses
        if let bad = labels.first(where: { $0 < 0 || $0 >= classes }) {
            throw TrainingError.invalid("label \(bad) is outside 0..<\(classes)")
        }
    }

    private func plan(for shape: [Int]) throws -> TrainingGraph {
        if let graph, graph.inputShape == shape { return graph }
        graph = nil  // free the old plan's buffers first
        let set = trainableSet
        let g = try TrainingGraph(layers: model.layers, options: model.options, inputShape: shape, isTrainable: { set.contains($0) })
        graph = g
        return g
    }

    private struct Pass {
        var crossEntropy: Double
        var regularization: Double
        var logits: [Float]
        var correct: Int
        var gradients: [String: [Float]]
    }

    /// Forward + backward; throws on a non-finite loss (nothing changed). The weights' gradients
    /// include the regularizer's (wd·w) only `addingWeightDecay`: a step has the optimizer add
    /// it on the fly (``decay(for:)``) rather than in a pass over every weight of its own.
    private func pass(_ images: Tensor, _ labels: [Int], variables: [String: [Float]], addingWeightDecay: Bool) throws -> Pass {
        try checkBatch(images, labels)
        let graph = try plan(for: images.shape)
        graph.variables = variables
        let (losses, logits) = graph.forward(images: images, labels: labels, labelSmoothing: labelSmoothing, generator: &generator)
        let ce = losses.reduce(0, +) / Double(losses.count)
        var reg = 0.0
        if weightDecay > 0 { TrainingProfile.measure("trainer regularization") {
            for spec in model.variableSpecs where spec.role == .weights {
                reg += variables[spec.name]!.withUnsafeBufferPointer { WeightDecay.loss($0, decay: weightDecay) }
            }
        } }
        let total = ce + reg
        guard total.isFinite else {
            graph.releaseAll()
            throw TrainingError.nonFiniteLoss(step: step, loss: total, crossEntropy: ce, regularization: reg)
        }
        graph.backward()
        var gradients = graph.gradients
        graph.gradients = [:]
        for name in trainableVariables where addingWeightDecay && decay(for: name) > 0 {
            // Taken out of the dictionary so the array is not shared and is changed in place.
            guard var g = gradients.removeValue(forKey: name) else { continue }
            variables[name]!.withUnsafeBufferPointer { w in
                g.withUnsafeMutableBufferPointer { WeightDecay.addGradient(w, decay: weightDecay, to: $0) }
            }
            gradients[name] = g
        }
        let classes = model.options.numClasses
        var correct = 0
        for (i, label) in labels.enumerated() {
            let row = logits[(i * classes)..<((i + 1) * classes)]
            if row.firstIndex(of: row.max()!)! - i * classes == label { correct += 1 }
        }
        return Pass(crossEntropy: ce, regularization: reg, logits: logits, correct: correct, gradients: gradients)
    }

    /// The L2 regularizer's rate for a variable: slim's weight decay on weights, none on the rest.
    private func decay(for name: String) -> Float {
        specs[name]!.role == .weights ? weightDecay : 0
    }

    private func currentVariables() -> [String: [Float]] {
        model.variables.mapValues(\.scalars)
    }

    /// One training step on a batch (NHWC, labels in 0..<numClasses): updates the trainable
    /// variables and every batch norm's moving statistics, and advances ``step``.
    /// A NaN or infinite loss or gradient throws ``TrainingError`` before anything is changed.
    public func step(images: Tensor, labels: [Int]) throws -> StepResult {
        var variables = TrainingProfile.measure("trainer read variables") { currentVariables() }
        let savedGenerator = generator
        let p: Pass
        do { p = try pass(images, labels, variables: variables, addingWeightDecay: false) } catch { generator = savedGenerator; throw error }
        defer { if TrainingProfile.enabled { print(TrainingProfile.report()); TrainingProfile.reset() } }
        // The gradient with the regularizer's: its norm, and a NaN or infinity anywhere in it
        // stops the step before anything changes.
        var squares = 0.0
        for name in trainableVariables {
            guard let g = p.gradients[name] else { continue }
            let d = decay(for: name)
            let s = g.withUnsafeBufferPointer { g in
                d > 0 ? variables[name]!.withUnsafeBufferPointer { WeightDecay.sumOfSquares(g, plusDecay: d, times: $0) }
                      : WeightDecay.sumOfSquares(g)
            }
            guard s.isFinite else {
                generator = savedGenerator
                throw TrainingError.nonFiniteGradient(step: step, variable: name)
            }
            squares += s
        }
        let lr = optimizer.learningRate.learningRate(at: step)
        var changed: [String: Tensor] = [:]
        TrainingProfile.measure("optimizer") {
            for name in trainableVariables {
                guard let g = p.gradients[name] else { continue }
                state.apply(to: name, value: &variables[name]!, gradient: g, lr: lr, weightDecay: decay(for: name))
                changed[name] = Tensor(shape: specs[name]!.shape, scalars: variables[name]!)
            }
        }
        state.finishStep()
        // Moving averages, as slim's UPDATE_OPS, with the variance TF's fused batch norm reports
        // for them: Bessel-corrected, M/(M − 1)·σ².
        for (path, mean, variance, count) in graph!.batchStatistics() {
            let bessel = count > 1 ? Float(count) / Float(count - 1) : 1
            let meanName = path + "/BatchNorm/moving_mean", varName = path + "/BatchNorm/moving_variance"
            Self.movingAverage(&variables[meanName]!, toward: Array(mean), decay: model.options.batchNormDecay)
            Self.movingAverage(&variables[varName]!, toward: variance.map { $0 * bessel }, decay: model.options.batchNormDecay)
            changed[meanName] = Tensor(shape: [mean.count], scalars: variables[meanName]!)
            changed[varName] = Tensor(shape: [variance.count], scalars: variables[varName]!)
        }
        try TrainingProfile.measure("trainer assign") { try model.assign(changed) }
        inferenceStale = true
        step += 1
        return StepResult(step: step, loss: Float(p.crossEntropy + p.regularization), crossEntropy: Float(p.crossEntropy),
                          regularization: Float(p.regularization), accuracy: Float(p.correct) / Float(labels.count),
                          correct: p.correct, learningRate: lr, gradientNorm: Float(squares.squareRoot()))
    }

    /// The gradients of the loss for a batch, without updating anything (training-mode forward;
    /// the dropout generator advances as in a step).
    public func gradients(images: Tensor, labels: [Int]) throws -> GradientResult {
        let p = try pass(images, labels, variables: currentVariables(), addingWeightDecay: true)
        var means: [String: Tensor] = [:], variances: [String: Tensor] = [:]
        for (path, mean, variance, count) in graph!.batchStatistics() {
            let bessel = count > 1 ? Float(count) / Float(count - 1) : 1
            means[path + "/BatchNorm"] = Tensor(shape: [mean.count], scalars: Array(mean))
            variances[path + "/BatchNorm"] = Tensor(shape: [variance.count], scalars: variance.map { $0 * bessel })
        }
        return GradientResult(loss: Float(p.crossEntropy + p.regularization), crossEntropy: Float(p.crossEntropy),
                              regularization: Float(p.regularization),
                              gradients: p.gradients.reduce(into: [:]) { $0[$1.key] = Tensor(shape: specs[$1.key]!.shape, scalars: $1.value) },
                              logits: Tensor(shape: [labels.count, model.options.numClasses], scalars: p.logits),
                              auxiliaryLogits: graph!.auxiliaryLogits().reduce(into: [:]) {
                                  $0[$1.name] = Tensor(shape: [labels.count, model.options.numClasses], scalars: $1.logits)
                              },
                              batchMeans: means, batchVariances: variances)
    }

    /// Inference-mode loss and logits (moving statistics, no dropout) for a batch.
    public func evaluate(images: Tensor, labels: [Int]) throws -> EvaluationResult {
        try checkBatch(images, labels)
        let runner: InceptionModel
        if model.options.isTraining {
            if inferenceModel == nil {
                var options = model.options
                options.isTraining = false
                inferenceModel = try InceptionModel(options: options)
                inferenceStale = true
            }
            if inferenceStale { try inferenceModel!.assign(model.variables); inferenceStale = false }
            runner = inferenceModel!
        } else {
            runner = model
        }
        var logits = try runner.forward(images, endpoints: .none).output
        let classes = model.options.numClasses
        logits = logits.reshaped([labels.count, classes])
        let losses = logits.scalars.withUnsafeBufferPointer {
            SoftmaxCrossEntropy.evaluate(logits: $0.baseAddress!, batch: labels.count, classes: classes, labels: labels,
                                         labelSmoothing: labelSmoothing, gradient: nil)
        }
        var correct = 0, top5 = 0
        for (i, label) in labels.enumerated() {
            let row = Array(logits.scalars[(i * classes)..<((i + 1) * classes)])
            let target = row[label]
            // Rank of the label: classes scoring higher, plus equal ones earlier (first max wins).
            let rank = (0..<classes).filter { row[$0] > target || (row[$0] == target && $0 < label) }.count
            if rank == 0 { correct += 1 }
            if rank < 5 { top5 += 1 }
        }
        return EvaluationResult(crossEntropy: Float(losses.reduce(0, +) / Double(max(labels.count, 1))), correct: correct,
                                top5Correct: top5, count: labels.count, logits: logits)
    }

    /// TF's `assign_moving_average` without zero-debiasing, as slim's batch norm uses it:
    /// m ← m − (m − value)·(1 − decay), with 1 − decay computed in float32: slim's batch norm (the
    /// Keras layer under tf.compat.v1) turns the momentum into a float32 tensor first, so TF's
    /// factor is 1 − 0.9997f = 2.99990177e-4, not float32(1 − 0.9997). Checked by replaying TF's
    /// second step after a large update (batch variance 360), where the two differ visibly.
    static func movingAverage(_ m: inout [Float], toward value: [Float], decay: Float) {
        precondition(m.count == value.count)
        let factor = 1 - decay
        for i in 0..<m.count { m[i] -= (m[i] - value[i]) * factor }
    }

    // MARK: Optimizer state (for run checkpoints)

    /// The optimizer's variables by TF name: slots `VAR/RMSProp`, `VAR/RMSProp_1`, `VAR/Momentum`,
    /// `VAR/Adam`, `VAR/Adam_1` (in the variable's shape) and Adam's scalars `beta1_power`, `beta2_power`.
    public func optimizerState() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for name in trainableVariables {
            for slot in optimizer.slotNames(for: name) {
                out[slot.name] = Tensor(shape: specs[name]!.shape, scalars: state.slots[slot.name]!)
            }
        }
        if optimizer.kind == .adam {
            out["beta1_power"] = Tensor(shape: [], scalars: [state.beta1Power])
            out["beta2_power"] = Tensor(shape: [], scalars: [state.beta2Power])
        }
        return out
    }

    /// Restores ``optimizerState()`` and the global step (resuming a run). Every expected entry
    /// must be present with its shape; all problems are reported together and nothing changes
    /// unless all is well.
    public func restore(optimizerState saved: [String: Tensor], step: Int) throws {
        guard step >= 0 else { throw TrainingError.invalid("the step must not be negative") }
        var problems: [String] = []
        var expected: [String: [Int]] = [:]
        for name in trainableVariables {
            for slot in optimizer.slotNames(for: name) { expected[slot.name] = specs[name]!.shape }
        }
        for g in optimizer.globalStateNames { expected[g.name] = [] }
        for (name, shape) in expected.sorted(by: { $0.key < $1.key }) {
            guard let t = saved[name] else { problems.append("missing \(name)"); continue }
            if t.shape != shape && !(shape.isEmpty && t.count == 1) { problems.append("\(name): expected shape \(shape), got \(t.shape)") }
        }
        for name in saved.keys.sorted() where expected[name] == nil { problems.append("unexpected \(name)") }
        guard problems.isEmpty else {
            throw TrainingError.invalid("optimizer state does not fit this \(optimizer.kind.rawValue) trainer:\n" + problems.joined(separator: "\n"))
        }
        for name in expected.keys where !optimizer.globalStateNames.contains(where: { $0.name == name }) {
            state.slots[name] = saved[name]!.scalars
        }
        if optimizer.kind == .adam {
            state.beta1Power = saved["beta1_power"]!.scalars[0]
            state.beta2Power = saved["beta2_power"]!.scalars[0]
        }
        self.step = step
    }
}
