import Foundation

/// Activations, normalisation and the other per-element operations of the network.
public enum Ops {
    /// max(0, x), element-wise.
    public static func relu(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, scalars: x.scalars.map { max($0, 0) })
    }

    /// Softmax over the last axis, computed stably (the row maximum is subtracted first).
    public static func softmax(_ x: Tensor) -> Tensor {
        guard let classes = x.shape.last, classes > 0 else { return x }
        var out = x
        x.scalars.withUnsafeBufferPointer { source in
            out.scalars.withUnsafeMutableBufferPointer { p in
                softmax(source.baseAddress!, rows: x.count / classes, classes: classes, into: p.baseAddress!)
            }
        }
        return out
    }

    /// Softmax of `rows` contiguous rows of `classes` logits.
    public static func softmax(_ source: UnsafePointer<Float>, rows: Int, classes: Int, into output: UnsafeMutablePointer<Float>) {
        for row in 0..<rows {
            let x = source + row * classes, y = output + row * classes
            var top = -Float.infinity
            for i in 0..<classes { top = max(top, x[i]) }
            var sum: Float = 0
            for i in 0..<classes { y[i] = expf(x[i] - top); sum += y[i] }
            for i in 0..<classes { y[i] /= sum }
        }
    }

    /// Batch normalisation with given statistics over the last (channel) axis:
    /// y = gamma·(x − mean)/sqrt(variance + epsilon) + beta (gamma = 1 when nil, as slim's default).
    public static func batchNorm(_ x: Tensor, mean: [Float], variance: [Float], beta: [Float],
                                 gamma: [Float]?, epsilon: Float) -> Tensor {
        let (scale, shift) = foldBatchNorm(mean: mean, variance: variance, beta: beta, gamma: gamma, epsilon: epsilon)
        let c = x.shape.last!
        var out = x
        for i in 0..<x.count { out.scalars[i] = x.scalars[i] * scale[i % c] + shift[i % c] }
        return out
    }

    /// Batch norm as a per-channel affine map y = scale·x + shift, the form that folds into the
    /// preceding convolution (weights·scale, bias = shift) for inference.
    public static func foldBatchNorm(mean: [Float], variance: [Float], beta: [Float], gamma: [Float]?,
                                     epsilon: Float) -> (scale: [Float], shift: [Float]) {
        var scale = [Float](repeating: 0, count: mean.count)
        var shift = scale
        for c in 0..<mean.count {
            scale[c] = (gamma?[c] ?? 1) / (variance[c] + epsilon).squareRoot()
            shift[c] = beta[c] - mean[c] * scale[c]
        }
        return (scale, shift)
    }

    /// Per-channel mean and (biased) variance over N, H and W of an NHWC tensor: the batch
    /// statistics batch norm uses in training mode. Accumulates in Double for accuracy.
    public static func channelMoments(_ x: Tensor) -> (mean: [Float], variance: [Float]) {
        let c = x.shape.last!
        let rows = x.count / c
        var sum = [Double](repeating: 0, count: c), sumSq = sum
        for r in 0..<rows {
            for i in 0..<c { let v = Double(x.scalars[r * c + i]); sum[i] += v; sumSq[i] += v * v }
        }
        let mean = sum.map { $0 / Double(rows) }
        let variance = (0..<c).map { max(sumSq[$0] / Double(rows) - mean[$0] * mean[$0], 0) }
        return (mean.map(Float.init), variance.map(Float.init))
    }

    /// Concatenates NHWC tensors along the channel axis (all other extents equal).
    public static func concatChannels(_ parts: [Tensor]) -> Tensor {
        let base = parts[0].shape
        let total = parts.reduce(0) { $0 + $1.shape[3] }
        var out = Tensor(zeros: [base[0], base[1], base[2], total])
        let pixels = base[0] * base[1] * base[2]
        var offset = 0
        for part in parts {
            precondition(Array(part.shape.prefix(3)) == Array(base.prefix(3)), "concat: \(part.shape) vs \(base)")
            let c = part.shape[3]
            for p in 0..<pixels {
                for i in 0..<c { out.scalars[p * total + offset + i] = part.scalars[p * c + i] }
            }
            offset += c
        }
        return out
    }

    /// Inverted dropout: keeps each element with probability `keep` and scales kept ones by 1/keep,
    /// so the expectation is unchanged and inference is the identity.
    public static func dropout<G: RandomNumberGenerator>(_ x: Tensor, keep: Float, using rng: inout G) -> Tensor {
        guard keep < 1 else { return x }
        var out = x
        for i in 0..<x.count { out.scalars[i] = Float.random(in: 0..<1, using: &rng) < keep ? x.scalars[i] / keep : 0 }
        return out
    }
}
