import Foundation
@testable import InceptionTraining
import XCTest

/// The update rules (TF1's Apply* kernels, float32, same operation order) and slim's schedules.
final class OptimizerTests: XCTestCase {
    private let w0: [Float] = [0.5, -0.25, 1.5, 0, -2]
    private let g1: [Float] = [0.1, -0.3, 0.02, 1.5, -0.7]
    private let g2: [Float] = [-0.2, 0.05, 0.4, -1, 0.3]

    private func run(_ config: OptimizerConfig, gradients: [[Float]], lrs: [Float]) -> (value: [Float], state: OptimizerState) {
        var state = OptimizerState(config: config, variables: [("v", w0.count)])
        var value = w0
        for (g, lr) in zip(gradients, lrs) {
            state.apply(to: "v", value: &value, gradient: g, lr: lr)
            state.finishStep()
        }
        return (value, state)
    }

    func testSGD() {
        let (w, _) = run(.sgd(), gradients: [g1], lrs: [0.01])
        for i in 0..<5 { XCTAssertEqual(w[i], w0[i] - g1[i] * 0.01) }
    }

    func testMomentumAccumulatesThenSteps() {
        let (w, state) = run(.momentum(), gradients: [g1, g2], lrs: [0.01, 0.0094])
        for i in 0..<5 {
            var a: Float = 0, v = w0[i]
            a = a * 0.9 + g1[i]; v -= a * 0.01
            a = a * 0.9 + g2[i]; v -= a * 0.0094
            XCTAssertEqual(w[i], v)
            XCTAssertEqual(state.slots["v/Momentum"]![i], a)
        }
    }

    /// RMSProp as TF1: the mean-square slot starts at ONE, ε inside the square root, momentum on
    /// the scaled gradient; slots `VAR/RMSProp` and `VAR/RMSProp_1`.
    func testRMSPropStartsTheMeanSquareAtOne() {
        let fresh = OptimizerState(config: .rmsprop(), variables: [("v", 5)])
        XCTAssertEqual(fresh.slots["v/RMSProp"], [Float](repeating: 1, count: 5))
        XCTAssertEqual(fresh.slots["v/RMSProp_1"], [Float](repeating: 0, count: 5))
        let (w, state) = run(.rmsprop(), gradients: [g1, g2], lrs: [0.01, 0.0094])
        for i in 0..<5 {
            var ms: Float = 1, mom: Float = 0, v = w0[i]
            for (g, lr) in [(g1[i], Float(0.01)), (g2[i], 0.0094)] {
                ms += (g * g - ms) * (1 - 0.9)
                mom = mom * 0.9 + (g * lr) / (ms + 1).squareRoot()
                v -= mom
            }
            XCTAssertEqual(w[i], v)
            XCTAssertEqual(state.slots["v/RMSProp"]![i], ms)
            XCTAssertEqual(state.slots["v/RMSProp_1"]![i], mom)
        }
    }

    /// Adam as TF1: lr_t = lr·√(1 − β2ᵗ)/(1 − β1ᵗ), ε added to √v (slim passes ε = 1.0).
    func testAdamBiasCorrectionAndEpsilon() {
        let (w, state) = run(.adam(), gradients: [g1, g2], lrs: [0.01, 0.0094])
        var b1p: Float = 0.9, b2p: Float = 0.999
        var m = [Float](repeating: 0, count: 5), v = m, x = w0
        for (g, lr) in [(g1, Float(0.01)), (g2, 0.0094)] {
            let alpha = lr * (1 - b2p).squareRoot() / (1 - b1p)
            for i in 0..<5 {
                m[i] += (g[i] - m[i]) * (1 - 0.9)
                v[i] += (g[i] * g[i] - v[i]) * (1 - 0.999)
                x[i] -= (m[i] * alpha) / (v[i].squareRoot() + 1)
            }
            b1p *= 0.9; b2p *= 0.999
        }
        XCTAssertEqual(w, x)
        XCTAssertEqual(state.slots["v/Adam"], m)
        XCTAssertEqual(state.slots["v/Adam_1"], v)
        XCTAssertEqual(state.beta1Power, b1p)
        XCTAssertEqual(state.beta2Power, b2p)
    }

    /// Weight decay handed to the update (the trainer's way: no pass adding wd·w to the gradient
    /// first) is the same arithmetic as adding it beforehand, for every optimizer, over two steps;
    /// 40 elements reach the vector loops of the C kernels, not just their scalar tails.
    func testWeightDecayInTheUpdateEqualsDecayAddedToTheGradient() {
        let n = 40, d: Float = 0.004
        let start: [Float] = (0..<n).map { Float($0 % 7) * 0.3 - 0.8 }
        let first: [Float] = (0..<n).map { Float($0 % 5) * 0.11 - 0.2 }
        let second: [Float] = (0..<n).map { Float($0 % 3) * -0.07 + 0.05 }
        let grads = [first, second]
        for config in [OptimizerConfig.sgd(), .momentum(), .rmsprop(), .adam()] {
            var fused = OptimizerState(config: config, variables: [("v", n)]), added = fused
            var a = start, b = start
            for g in grads {
                fused.apply(to: "v", value: &a, gradient: g, lr: 0.05, weightDecay: d)
                added.apply(to: "v", value: &b, gradient: zip(g, b).map { $0 + d * $1 }, lr: 0.05)
                fused.finishStep(); added.finishStep()
            }
            XCTAssertEqual(a, b, "\(config.kind)")
            XCTAssertEqual(fused.slots, added.slots, "\(config.kind)")
            XCTAssertNotEqual(a, run(config, n: n, start: start, gradients: grads), "\(config.kind): the decay changed the update")
        }
    }

    private func run(_ config: OptimizerConfig, n: Int, start: [Float], gradients: [[Float]]) -> [Float] {
        var state = OptimizerState(config: config, variables: [("v", n)]), value = start
        for g in gradients { state.apply(to: "v", value: &value, gradient: g, lr: 0.05); state.finishStep() }
        return value
    }

    func testSlotNamesAreTFs() {
        XCTAssertEqual(OptimizerConfig.rmsprop().slotNames(for: "A/weights").map(\.name), ["A/weights/RMSProp", "A/weights/RMSProp_1"])
        XCTAssertEqual(OptimizerConfig.momentum().slotNames(for: "A/weights").map(\.name), ["A/weights/Momentum"])
        XCTAssertEqual(OptimizerConfig.adam().slotNames(for: "A/weights").map(\.name), ["A/weights/Adam", "A/weights/Adam_1"])
        XCTAssertTrue(OptimizerConfig.sgd().slotNames(for: "A/weights").isEmpty)
        XCTAssertEqual(OptimizerConfig.adam().globalStateNames.map(\.name), ["beta1_power", "beta2_power"])
        // slim's defaults.
        let d = OptimizerConfig.rmsprop()
        XCTAssertEqual([d.decay, d.momentum, d.epsilon], [0.9, 0.9, 1.0])
        XCTAssertEqual(OptimizerConfig.adam().epsilon, 1.0)
        XCTAssertEqual(OptimizerConfig.momentum().momentum, 0.9)
    }

    func testExponentialStaircaseSchedule() {
        let s = LearningRateSchedule.exponential(initial: 0.01, rate: 0.94, steps: 10)
        XCTAssertEqual(s.learningRate(at: 0), 0.01)
        XCTAssertEqual(s.learningRate(at: 9), 0.01)
        XCTAssertEqual(s.learningRate(at: 10), 0.01 * 0.94, accuracy: 1e-9)
        XCTAssertEqual(s.learningRate(at: 25), 0.01 * 0.94 * 0.94, accuracy: 1e-9)
        let smooth = LearningRateSchedule.exponential(initial: 0.01, rate: 0.94, steps: 10, staircase: false)
        XCTAssertEqual(smooth.learningRate(at: 5), 0.01 * powf(0.94, 0.5), accuracy: 1e-9)
        // slim: decay every 2 epochs of int(samples · 2 / batch) steps.
        XCTAssertEqual(LearningRateSchedule.slimDecaySteps(samplesPerEpoch: 1000, batchSize: 32), 62)
        XCTAssertEqual(LearningRateSchedule.slimDecaySteps(samplesPerEpoch: 10, batchSize: 32), 1)
    }

    func testPolynomialAndFixedSchedules() {
        let p = LearningRateSchedule.polynomial(initial: 0.01, end: 0.0001, steps: 100)
        XCTAssertEqual(p.learningRate(at: 0), 0.01)
        XCTAssertEqual(p.learningRate(at: 50), (0.01 - 0.0001) * 0.5 + 0.0001, accuracy: 1e-9)
        XCTAssertEqual(p.learningRate(at: 100), 0.0001, accuracy: 1e-9)
        XCTAssertEqual(p.learningRate(at: 1000), 0.0001, accuracy: 1e-9)
        let q = LearningRateSchedule.polynomial(initial: 1, end: 0, steps: 10, power: 2)
        XCTAssertEqual(q.learningRate(at: 5), 0.25, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.fixed(0.003).learningRate(at: 123_456), 0.003)
    }

    func testLinearWarmUp() {
        let s = LearningRateSchedule.exponential(initial: 0.01, rate: 0.5, steps: 100, warmupSteps: 4)
        XCTAssertEqual(s.learningRate(at: 0), 0.0025, accuracy: 1e-9)
        XCTAssertEqual(s.learningRate(at: 1), 0.005, accuracy: 1e-9)
        XCTAssertEqual(s.learningRate(at: 3), 0.01, accuracy: 1e-9)
        XCTAssertEqual(s.learningRate(at: 4), 0.01, accuracy: 1e-9)
        XCTAssertEqual(s.learningRate(at: 100), 0.005, accuracy: 1e-9)
    }

    func testConfigRoundTripsThroughJSON() throws {
        let c = OptimizerConfig.adam(learningRate: .exponential(initial: 0.02, steps: 7, warmupSteps: 3), beta1: 0.8)
        let back = try JSONDecoder().decode(OptimizerConfig.self, from: JSONEncoder().encode(c))
        XCTAssertEqual(back, c)
    }
}
