import CInceptionKernels

/// The optimizers' element-wise updates that take a square root and a division per element, in
/// place (or, given a `source`, of a copy of it made chunk by chunk), as TF's `ApplyRMSProp` and
/// `ApplyAdam` compute them in float32; with `weightDecay` d the gradient is g + d·w (slim's L2
/// regularizer, added on the fly instead of in a pass of its own). The loops are C
/// (`optimizer.c`, per instruction set: Swift's baseline code ran them four lanes wide), over
/// fixed chunks on the worker threads; the results do not depend on either.
public enum OptimizerUpdate {
    private static let chunk = 1 << 16

    private static func chunks(_ n: Int, _ body: (_ start: Int, _ count: Int) -> Void) {
        Parallel.forEach(count: (n + chunk - 1) / chunk) { i in body(i * chunk, min(chunk, n - i * chunk)) }
    }

    /// RMSProp with momentum: ms += (g² − ms)(1 − decay); mom = mom·momentum + g·lr/√(ms + ε); w −= mom.
    public static func rmsprop(value w: UnsafeMutablePointer<Float>, from source: UnsafePointer<Float>? = nil,
                               gradient g: UnsafePointer<Float>,
                               meanSquare ms: UnsafeMutablePointer<Float>, momentumSlot mom: UnsafeMutablePointer<Float>,
                               count n: Int, learningRate lr: Float, decay: Float, momentum: Float, epsilon: Float,
                               weightDecay: Float = 0) {
        chunks(n) { s, c in
            if let source { (w + s).initialize(from: source + s, count: c) }
            ik_rmsprop_update(w + s, g + s, ms + s, mom + s, c, lr, 1 - decay, momentum, epsilon, weightDecay)
        }
    }

    /// Adam: m += (g − m)(1 − β₁); v += (g² − v)(1 − β₂); w −= m·α/(√v + ε), with α the step's
    /// bias-corrected rate lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ).
    public static func adam(value w: UnsafeMutablePointer<Float>, from source: UnsafePointer<Float>? = nil,
                            gradient g: UnsafePointer<Float>,
                            firstMoment m: UnsafeMutablePointer<Float>, secondMoment v: UnsafeMutablePointer<Float>,
                            count n: Int, alpha: Float, beta1: Float, beta2: Float, epsilon: Float,
                            weightDecay: Float = 0) {
        chunks(n) { s, c in
            if let source { (w + s).initialize(from: source + s, count: c) }
            ik_adam_update(w + s, g + s, m + s, v + s, c, alpha, 1 - beta1, 1 - beta2, epsilon, weightDecay)
        }
    }
}
