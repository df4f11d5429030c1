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

    /// wd·Σw²/2, summed in Double (per 64K-element chunk, the chunks in order).
    public static func loss(_ w: UnsafeBufferPointer<Float>, decay: Float) -> Double {
        let chunks = (w.count + chunk - 1) / chunk
        guard chunks > 1 else { return Double(decay) * w.reduce(0.0) { $0 + Double($1) * Double($1) } / 2 }
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            Parallel.forEach(count: chunks) { t in
                var sum = 0.0
                for i in (t * chunk)..<min(w.count, (t + 1) * chunk) { sum += Double(w[i]) * Double(w[i]) }
                out[t] = sum
            }
        }
        return Double(decay) * partial.reduce(0, +) / 2
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
