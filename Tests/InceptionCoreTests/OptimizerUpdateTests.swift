import XCTest
@testable import InceptionCore

/// The optimizers' C updates (`optimizer.c`) equal TF's per-element float32 formulas bit for bit,
/// on every instruction set (the formulas are computed here one element at a time).
final class OptimizerUpdateTests: XCTestCase {
    /// 37 elements: two 16-lane vectors and a scalar tail.
    func values(_ seed: UInt64, _ range: ClosedRange<Float>) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<37).map { _ in Float.random(in: range, using: &rng) }
    }

    /// Runs `update` on copies of the weights and two slots with every instruction set, and
    /// compares the three results' bits with `expected`.
    func check(weights: [Float], slots: ([Float], [Float]), expected: [[Float]], names: [String],
               update: (inout [Float], inout [Float], inout [Float]) -> Void) {
        for kernel in GEMM.Kernel.allCases {
            withKernel(kernel) {
                var w = weights, a = slots.0, b = slots.1
                update(&w, &a, &b)
                for (name, (got, want)) in zip(names, zip([w, a, b], expected)) {
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(kernel) \(name)")
                }
            }
        }
    }

    func testRMSPropIsTFsFormulaOnEveryInstructionSet() {
        let (w0, g, ms0, mom0) = (values(1, -1...1), values(2, -1...1), values(3, 0...2), values(4, -0.1...0.1))
        let (lr, decay, momentum, epsilon): (Float, Float, Float, Float) = (0.01, 0.9, 0.9, 1.0)
        var ew = w0, ems = ms0, emom = mom0
        for i in 0..<37 {
            ems[i] += (g[i] * g[i] - ems[i]) * (1 - decay)
            emom[i] = emom[i] * momentum + (g[i] * lr) / (ems[i] + epsilon).squareRoot()
            ew[i] -= emom[i]
        }
        check(weights: w0, slots: (ms0, mom0), expected: [ew, ems, emom], names: ["weights", "mean square", "momentum"]) {
            OptimizerUpdate.rmsprop(value: &$0, gradient: g, meanSquare: &$1, momentumSlot: &$2, count: 37,
                                    learningRate: lr, decay: decay, momentum: momentum, epsilon: epsilon)
        }
    }

    func testAdamIsTFsFormulaOnEveryInstructionSet() {
        let (w0, g, m0, v0) = (values(5, -1...1), values(6, -1...1), values(7, -0.1...0.1), values(8, 0...0.5))
        let (alpha, beta1, beta2, epsilon): (Float, Float, Float, Float) = (0.003, 0.9, 0.999, 1e-3)
        var ew = w0, em = m0, ev = v0
        for i in 0..<37 {
            em[i] += (g[i] - em[i]) * (1 - beta1)
            ev[i] += (g[i] * g[i] - ev[i]) * (1 - beta2)
            ew[i] -= (em[i] * alpha) / (ev[i].squareRoot() + epsilon)
        }
        check(weights: w0, slots: (m0, v0), expected: [ew, em, ev], names: ["weights", "first moment", "second moment"]) {
            OptimizerUpdate.adam(value: &$0, gradient: g, firstMoment: &$1, secondMoment: &$2, count: 37,
                                 alpha: alpha, beta1: beta1, beta2: beta2, epsilon: epsilon)
        }
    }
}
