import Foundation

/// Softmax cross-entropy with slim's label smoothing, and its gradient.
///
/// Shapes: logits X [N, K] (row-major), labels [N] in 0..<K.
/// Target t = onehot(label)·(1 − ls) + ls/K (`tf.losses.softmax_cross_entropy`'s smoothing);
/// loss_i = −Σ_k t_k·log softmax(X_i)_k; the training loss is weight·mean_i loss_i, so
/// ∂L/∂X_i = weight·(softmax(X_i) − t)/N. Log-sum-exp in Double.
public enum SoftmaxCrossEntropy {
    /// Per-example losses; writes ∂L/∂X into `gradient` (N·K floats) when given.
    public static func evaluate(logits: UnsafePointer<Float>, batch: Int, classes: Int, labels: [Int],
                                labelSmoothing: Float = 0, weight: Float = 1,
                                gradient: UnsafeMutablePointer<Float>?) -> [Double] {
        precondition(labels.count == batch && classes > 0)
        let positive = 1 - labelSmoothing, negative = labelSmoothing / Float(classes)
        var losses = [Double](repeating: 0, count: batch)
        let scale = weight / Float(batch)
        for i in 0..<batch {
            precondition(labels[i] >= 0 && labels[i] < classes, "label \(labels[i]) outside 0..<\(classes)")
            let x = logits + i * classes
            var top = -Double.infinity
            for k in 0..<classes { top = max(top, Double(x[k])) }
            var sum = 0.0
            for k in 0..<classes { sum += exp(Double(x[k]) - top) }
            let lse = top + log(sum)
            var loss = 0.0
            for k in 0..<classes {
                let t = negative + (k == labels[i] ? positive : 0)
                loss += Double(t) * (lse - Double(x[k]))
                if let gradient {
                    gradient[i * classes + k] = scale * (Float(exp(Double(x[k]) - lse)) - t)
                }
            }
            losses[i] = loss
        }
        return losses
    }

    /// Tensor form: (mean loss, ∂(mean loss)/∂X).
    public static func evaluate(_ logits: Tensor, labels: [Int], labelSmoothing: Float = 0) -> (loss: Double, gradient: Tensor) {
        let classes = logits.shape.last!
        let batch = logits.count / classes
        var gradient = Tensor(zeros: logits.shape)
        let losses = logits.scalars.withUnsafeBufferPointer { x in
            gradient.scalars.withUnsafeMutableBufferPointer { g in
                evaluate(logits: x.baseAddress!, batch: batch, classes: classes, labels: labels,
                         labelSmoothing: labelSmoothing, gradient: g.baseAddress!)
            }
        }
        return (losses.reduce(0, +) / Double(batch), gradient)
    }
}

/// Inverted dropout as a mask (slim's `Dropout_0b`): each element is kept with probability `keep`
/// and scaled by 1/keep, so Y = X ⊙ mask and ∂L/∂X = ∂L/∂Y ⊙ mask.
public enum DropoutMask {
    /// `count` mask values (1/keep or 0), drawn in element order as `Float.random(in: 0..<1) < keep`
    /// from `generator` (reproducible from its seed). nil (the identity, no draws) when keep ≥ 1.
    /// Inlinable so callers in other modules get it specialised for their generator: generic,
    /// each draw went through witness tables, 3 ms for the 32K values of a batch-32 step.
    @inlinable
    public static func generate<G: RandomNumberGenerator>(count: Int, keep: Float, using generator: inout G) -> [Float]? {
        precondition(keep > 0, "dropout keep probability must be positive")
        guard keep < 1 else { return nil }
        let scale = 1 / keep
        return (0..<count).map { _ in Float.random(in: 0..<1, using: &generator) < keep ? scale : 0 }
    }
}

/// slim's L2 regularizer, `weight_decay · l2_loss(w)` = wd·Σw²/2 added to the loss; its gradient is wd·w.
public enum WeightDecay {
    /// Elements per parallel task: fixed, so the Double partial sums (added in task order) and
    /// hence the loss do not depend on the thread count.
    private static let chunk = 1 << 16

    /// wd·Σw²/2 (``sumOfSquares(_:)``).
    public static func loss(_ w: UnsafeBufferPointer<Float>, decay: Float) -> Double {
        Double(decay) * sumOfSquares(w) / 2
    }

    /// Σx² in Double: per 64K-element chunk in parallel, the chunks added in order, so the result
    /// does not depend on the thread count. Each chunk keeps four running sums (elements i mod 4),
    /// since one Double sum is a chain of dependent adds that runs at a quarter of the speed.
    public static func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
        sumOfSquares(count: x.count) { range in squares(range) { x[$0] } }
    }

    /// Σ(g + wd·w)² (as ``sumOfSquares(_:)``): the squared norm of the gradient with the
    /// regularizer's added, each element rounded to float as the optimizer forms it
    /// (``OptimizerUpdate``'s `weightDecay`), without writing that gradient anywhere.
    public static func sumOfSquares(_ g: UnsafeBufferPointer<Float>, plusDecay decay: Float, times w: UnsafeBufferPointer<Float>) -> Double {
        precondition(w.count == g.count)
        return sumOfSquares(count: g.count) { range in squares(range) { g[$0] + decay * w[$0] } }
    }

    /// The chunks' sums (`chunkSum` of each 64K-element range), added in chunk order.
    private static func sumOfSquares(count: Int, _ chunkSum: (Range<Int>) -> Double) -> Double {
        let chunks = (count + chunk - 1) / chunk
        guard chunks > 1 else { return chunkSum(0..<count) }
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            Parallel.forEach(count: chunks) { t in out[t] = chunkSum((t * chunk)..<min(count, (t + 1) * chunk)) }
        }
        return partial.reduce(0, +)
    }

    /// Σ x(i)² over `range` in four running sums. Inlined into each caller, so `x` is inlined too
    /// (called through a closure, this loop ran ~10x slower).
    @inline(__always)
    private static func squares(_ range: Range<Int>, _ x: (Int) -> Float) -> Double {
        var s = SIMD4<Double>(repeating: 0)
        var i = range.lowerBound
        while i + 4 <= range.upperBound {
            let v = SIMD4<Double>(Double(x(i)), Double(x(i + 1)), Double(x(i + 2)), Double(x(i + 3)))
            s += v * v
            i += 4
        }
        var total = (s[0] + s[1]) + (s[2] + s[3])
        while i < range.upperBound { total += Double(x(i)) * Double(x(i)); i += 1 }
        return total
    }

    /// gradient += wd·w.
    public static func addGradient(_ w: UnsafeBufferPointer<Float>, decay: Float, to gradient: UnsafeMutableBufferPointer<Float>) {
        precondition(w.count == gradient.count)
        let g = SendableMutablePointer(gradient.baseAddress!)
        Parallel.forEach(count: (w.count + chunk - 1) / chunk) { t in
            for i in (t * chunk)..<min(w.count, (t + 1) * chunk) { g.pointer[i] += decay * w[i] }
        }
    }
}
