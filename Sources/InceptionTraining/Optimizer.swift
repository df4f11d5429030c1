import Foundation
import Inception

/// A learning rate per step: slim's `_configure_learning_rate` (`fixed`, `exponential`,
/// `polynomial`), with an optional linear warm-up.
///
/// `step` is the global step *before* the update it is used for (0 for the first), as TF reads
/// `global_step` for the learning rate of the step that increments it.
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public enum Decay: Sendable, Equatable, Codable {
        /// The initial rate throughout (slim `--learning_rate_decay_type fixed`).
        case fixed
        /// initial·rate^(step/steps), with ⌊step/steps⌋ when `staircase` (`tf.train.exponential_decay`;
        /// slim: rate 0.94, staircase, steps = samples per epoch · 2 epochs / batch size).
        case exponential(rate: Float, steps: Int, staircase: Bool)
        /// (initial − end)·(1 − min(step, steps)/steps)^power + end (`tf.train.polynomial_decay`
        /// without cycling; slim: end 0.0001, power 1).
        case polynomial(end: Float, steps: Int, power: Float)
    }

    public var initial: Float
    public var decay: Decay
    /// Steps of linear warm-up: the scheduled rate is scaled by (step + 1)/warmupSteps before that.
    public var warmupSteps: Int

    public init(initial: Float, decay: Decay = .fixed, warmupSteps: Int = 0) {
        self.initial = initial
        self.decay = decay
        self.warmupSteps = warmupSteps
    }

    public static func fixed(_ rate: Float, warmupSteps: Int = 0) -> LearningRateSchedule {
        LearningRateSchedule(initial: rate, decay: .fixed, warmupSteps: warmupSteps)
    }

    public static func exponential(initial: Float = 0.01, rate: Float = 0.94, steps: Int, staircase: Bool = true,
                                   warmupSteps: Int = 0) -> LearningRateSchedule {
        LearningRateSchedule(initial: initial, decay: .exponential(rate: rate, steps: steps, staircase: staircase), warmupSteps: warmupSteps)
    }

    public static func polynomial(initial: Float = 0.01, end: Float = 0.0001, steps: Int, power: Float = 1,
                                  warmupSteps: Int = 0) -> LearningRateSchedule {
        LearningRateSchedule(initial: initial, decay: .polynomial(end: end, steps: steps, power: power), warmupSteps: warmupSteps)
    }

    /// slim's decay steps: `int(num_samples_per_epoch * num_epochs_per_decay / batch_size)` (at least 1).
    public static func slimDecaySteps(samplesPerEpoch: Int, batchSize: Int, epochsPerDecay: Double = 2) -> Int {
        max(1, Int(Double(samplesPerEpoch) * epochsPerDecay / Double(batchSize)))
    }

    /// The rate for the update at global step `step`.
    public func learningRate(at step: Int) -> Float {
        let s = Float(max(step, 0))
        var rate: Float
        switch decay {
        case .fixed:
            rate = initial
        case .exponential(let r, let steps, let staircase):
            var p = s / Float(max(steps, 1))
            if staircase { p = p.rounded(.down) }
            rate = initial * powf(r, p)
        case .polynomial(let end, let steps, let power):
            let n = Float(max(steps, 1))
            let p = min(s, n) / n
            rate = (initial - end) * powf(1 - p, power) + end
        }
        if warmupSteps > 0 && step < warmupSteps { rate *= Float(step + 1) / Float(warmupSteps) }
        return rate
    }
}

/// The optimizers of slim's `train_image_classifier.py`, with its defaults and TF1's update rules.
public struct OptimizerConfig: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        /// `GradientDescentOptimizer`: w −= lr·g.
        case sgd
        /// `MomentumOptimizer`: a = m·a + g; w −= lr·a. Slot `VAR/Momentum`.
        case momentum
        /// `RMSPropOptimizer` (not centred): ms += (g² − ms)(1 − ρ); mom = μ·mom + lr·g/√(ms + ε);
        /// w −= mom. Slots `VAR/RMSProp` (ms, starts at **1**, as TF1's) and `VAR/RMSProp_1` (mom).
        case rmsprop
        /// `AdamOptimizer`: m += (g − m)(1 − β1); v += (g² − v)(1 − β2);
        /// w −= lr·√(1 − β2ᵗ)/(1 − β1ᵗ)·m/(√v + ε). Slots `VAR/Adam` (m), `VAR/Adam_1` (v),
        /// and the scalars `beta1_power`, `beta2_power`.
        case adam
    }

    public var kind: Kind
    public var learningRate: LearningRateSchedule
    /// RMSProp's ρ (slim `--rmsprop_decay` 0.9).
    public var decay: Float
    /// RMSProp's and momentum's μ (slim `--rmsprop_momentum`, `--momentum`: 0.9).
    public var momentum: Float
    /// RMSProp's and Adam's ε (slim `--opt_epsilon` 1.0).
    public var epsilon: Float
    public var beta1: Float
    public var beta2: Float

    public init(kind: Kind = .rmsprop, learningRate: LearningRateSchedule = .fixed(0.01), decay: Float = 0.9,
                momentum: Float = 0.9, epsilon: Float = 1.0, beta1: Float = 0.9, beta2: Float = 0.999) {
        self.kind = kind
        self.learningRate = learningRate
        self.decay = decay
        self.momentum = momentum
        self.epsilon = epsilon
        self.beta1 = beta1
        self.beta2 = beta2
    }

    public static func rmsprop(learningRate: LearningRateSchedule = .fixed(0.01), decay: Float = 0.9, momentum: Float = 0.9,
                               epsilon: Float = 1.0) -> OptimizerConfig {
        OptimizerConfig(kind: .rmsprop, learningRate: learningRate, decay: decay, momentum: momentum, epsilon: epsilon)
    }

    public static func sgd(learningRate: LearningRateSchedule = .fixed(0.01)) -> OptimizerConfig {
        OptimizerConfig(kind: .sgd, learningRate: learningRate)
    }

    public static func momentum(learningRate: LearningRateSchedule = .fixed(0.01), momentum: Float = 0.9) -> OptimizerConfig {
        OptimizerConfig(kind: .momentum, learningRate: learningRate, momentum: momentum)
    }

    public static func adam(learningRate: LearningRateSchedule = .fixed(0.01), beta1: Float = 0.9, beta2: Float = 0.999,
                            epsilon: Float = 1.0) -> OptimizerConfig {
        OptimizerConfig(kind: .adam, learningRate: learningRate, epsilon: epsilon, beta1: beta1, beta2: beta2)
    }

    /// TF's slot-variable names for `variable`, with their initial values.
    public func slotNames(for variable: String) -> [(name: String, initial: Float)] {
        switch kind {
        case .sgd: return []
        case .momentum: return [(variable + "/Momentum", 0)]
        case .rmsprop: return [(variable + "/RMSProp", 1), (variable + "/RMSProp_1", 0)]
        case .adam: return [(variable + "/Adam", 0), (variable + "/Adam_1", 0)]
        }
    }

    /// Non-slot optimizer variables (Adam's running powers), with their initial values.
    public var globalStateNames: [(name: String, initial: Float)] {
        kind == .adam ? [("beta1_power", beta1), ("beta2_power", beta2)] : []
    }
}

/// The optimizer's state and its element-wise updates (TF's `Apply*` kernels, in float32).
struct OptimizerState {
    let config: OptimizerConfig
    var slots: [String: [Float]] = [:]
    var beta1Power: Float
    var beta2Power: Float

    init(config: OptimizerConfig, variables: [(name: String, count: Int)]) {
        self.config = config
        beta1Power = config.beta1
        beta2Power = config.beta2
        for v in variables {
            for slot in config.slotNames(for: v.name) { slots[slot.name] = [Float](repeating: slot.initial, count: v.count) }
        }
    }

    /// Replaces `value` by its update from `gradient` (plus `weightDecay`·value, the L2
    /// regularizer's gradient, formed on the fly) at learning rate `lr`.
    ///
    /// The new values go into a new array, chunk by chunk on the worker threads, each chunk
    /// copied from the old values and updated while in cache. The old array is usually shared
    /// (the model still holds it as the variable's tensor), so updating it in place would first
    /// copy all of it on one thread (Array's copy-on-write: ~1.5 ms of a step for 6M floats).
    mutating func apply(to name: String, value: inout [Float], gradient: [Float], lr: Float, weightDecay: Float = 0) {
        precondition(value.count == gradient.count)
        let old = value, n = old.count
        guard n > 0 else { return }
        value = [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
            old.withUnsafeBufferPointer { source in
                gradient.withUnsafeBufferPointer { g in
                    update(name, from: source.baseAddress!, into: buffer.baseAddress!, gradient: g.baseAddress!, count: n, lr: lr,
                           weightDecay: weightDecay)
                }
            }
            initialized = n
        }
    }

    /// w = the update of `source` (n floats; w is written whole).
    private mutating func update(_ name: String, from source: UnsafePointer<Float>, into w: UnsafeMutablePointer<Float>,
                                 gradient g0: UnsafePointer<Float>, count n: Int, lr: Float, weightDecay d: Float) {
        let c = config
        // The gradient with the regularizer's, rounded as when added beforehand (d = 0: g itself).
        @inline(__always) func g(_ i: Int) -> Float { d != 0 ? g0[i] + d * source[i] : g0[i] }
        func chunks(_ body: (Range<Int>) -> Void) {
            let per = 1 << 16
            Parallel.forEach(count: (n + per - 1) / per) { i in body((i * per)..<min(n, (i + 1) * per)) }
        }
        switch c.kind {
        case .sgd:
            chunks { r in for i in r { w[i] = source[i] - g(i) * lr } }
        case .momentum:
            let mu = c.momentum
            slots[name + "/Momentum"]!.withUnsafeMutableBufferPointer { a in
                let a = a.baseAddress!
                chunks { r in for i in r { a[i] = a[i] * mu + g(i); w[i] = source[i] - a[i] * lr } }
            }
        case .rmsprop:
            withSlots(name + "/RMSProp", name + "/RMSProp_1") { ms, mom in
                OptimizerUpdate.rmsprop(value: w, from: source, gradient: g0, meanSquare: ms, momentumSlot: mom, count: n,
                                        learningRate: lr, decay: c.decay, momentum: c.momentum, epsilon: c.epsilon,
                                        weightDecay: d)
            }
        case .adam:
            let alpha = lr * (1 - beta2Power).squareRoot() / (1 - beta1Power)
            withSlots(name + "/Adam", name + "/Adam_1") { m, v in
                OptimizerUpdate.adam(value: w, from: source, gradient: g0, firstMoment: m, secondMoment: v, count: n,
                                     alpha: alpha, beta1: c.beta1, beta2: c.beta2, epsilon: c.epsilon, weightDecay: d)
            }
        }
    }

    /// `body` on two slots' storage, the slots taken out of `slots` meanwhile so that neither
    /// array is shared and both change in place.
    private mutating func withSlots(_ first: String, _ second: String,
                                    _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        var a = slots.removeValue(forKey: first)!, b = slots.removeValue(forKey: second)!
        a.withUnsafeMutableBufferPointer { a in b.withUnsafeMutableBufferPointer { b in body(a.baseAddress!, b.baseAddress!) } }
        slots[first] = a
        slots[second] = b
    }

    /// After every variable of a step is updated (Adam's β powers advance once per step).
    mutating func finishStep() {
        if config.kind == .adam {
            beta1Power *= config.beta1
            beta2Power *= config.beta2
        }
    }
}
