import Foundation

/// Local response normalization across channels, as in the original GoogLeNet (Caffe's LRN layer):
///
///     b[c] = a[c] / (k + alpha / size · Σ a[c']²) ^ beta,   c' ∈ [c − size/2, c + size/2] ∩ channels
///
/// Caffe divides alpha by the window size; TensorFlow's `tf.nn.lrn` does not (its alpha is Caffe's
/// alpha / size, and its depth_radius is size / 2).
public struct LocalResponseNorm: Sendable, Equatable {
    public var size: Int
    public var alpha: Float
    public var beta: Float
    public var k: Float

    /// GoogLeNet's: size 5, alpha 1e-4, beta 0.75, k 1.
    public init(size: Int = 5, alpha: Float = 1e-4, beta: Float = 0.75, k: Float = 1) {
        precondition(size > 0 && size % 2 == 1, "the LRN window must be odd, got \(size)")
        self.size = size; self.alpha = alpha; self.beta = beta; self.k = k
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var out = x
        x.scalars.withUnsafeBufferPointer { source in
            out.scalars.withUnsafeMutableBufferPointer { dst in
                run(source.baseAddress!, pixels: x.count / x.shape.last!, channels: x.shape.last!, into: dst.baseAddress!)
            }
        }
        return out
    }

    /// Normalizes `pixels` contiguous channel vectors. Per pixel: a running sum of squares slides
    /// over the channels, so the cost is O(C) rather than O(C·size).
    public func run(_ source: UnsafePointer<Float>, pixels: Int, channels c: Int, into output: UnsafeMutablePointer<Float>) {
        let half = size / 2, scale = alpha / Float(size)
        let src = SendablePointer(source), dst = SendableMutablePointer(output)
        let chunk = max(1, pixels / (Parallel.threadCount * 4))
        Parallel.forEach(count: (pixels + chunk - 1) / chunk) { part in
            for p in (part * chunk)..<min(pixels, (part + 1) * chunk) {
                let a = src.pointer + p * c, b = dst.pointer + p * c
                var sum: Float = 0
                for j in 0..<min(half, c) { sum += a[j] * a[j] }
                for i in 0..<c {
                    if i + half < c { sum += a[i + half] * a[i + half] }
                    if i - half - 1 >= 0 { sum -= a[i - half - 1] * a[i - half - 1] }
                    b[i] = a[i] * powf(k + scale * max(sum, 0), -beta)
                }
            }
        }
    }
}
