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

    func testRMSPropIsTFsFormulaOnEveryInstructionSet() {
        let (w0, g, ms0, mom0) = (values(1, -1...1), values(2, -1...1), values(3, 0...2), values(4, -0.1...0.1))
        let (lr, decay, momentum, epsilon): (Float, Float, Float, Float) = (0.01, 0.9, 0.9, 1.0)
        var ew = w0, ems = ms0, emom = mom0
        for i in 0..<37 {
            ems[i] += (g[i] * g[i] - ems[i]) * (1 - decay)
            emom[i] = emom[i] * momentum + (g[i] * lr) / (ems[i] + epsilon).squareRoot()
            ew[i] -= emom[i]
        }
        let saved = GEMM.kernel
        defer { GEMM.kernel = saved }
        for kernel in GEMM.Kernel.allCases where GEMM.isSupported(kernel) {
            GEMM.kernel = kernel
            var w = w0, ms = ms0, mom = mom0
            OptimizerUpdate.rmsprop(value: &w, gradient: g, meanSquare: &ms, momentumSlot: &mom, count: 37,
                                    learningRate: lr, decay: decay, momentum: momentum, epsilon: epsilon)
            XCTAssertEqual(w.map(\.bitPattern), ew.map(\.bitPattern), "\(kernel) weights")
            XCTAssertEqual(ms.map(\.bitPattern), ems.map(\.bitPattern), "\(kernel) mean square")
            XCTAssertEqual(mom.map(\.bitPattern), emom.map(\.bitPattern), "\(kernel) momentum")
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
        let saved = GEMM.kernel
        defer { GEMM.kernel = saved }
        for kernel in GEMM.Kernel.allCases where GEMM.isSupported(kernel) {
            GEMM.kernel = kernel
            var w = w0, m = m0, v = v0
            OptimizerUpdate.adam(value: &w, gradient: g, firstMoment: &m, secondMoment: &v, count: 37,
                                 alpha: alpha, beta1: beta1, beta2: beta2, epsilon: epsilon)
            XCTAssertEqual(w.map(\.bitPattern), ew.map(\.bitPattern), "\(kernel) weights")
            XCTAssertEqual(m.map(\.bitPattern), em.map(\.bitPattern), "\(kernel) first moment")
            XCTAssertEqual(v.map(\.bitPattern), ev.map(\.bitPattern), "\(kernel) second moment")
        }
    }
}
