/// Pooling over NHWC tensors, TF semantics.
///
/// Max pooling ignores padded positions (TF pads with −∞, so padding never wins); SAME average
/// pooling divides by the number of real pixels under the window, not the window size.
public enum Pooling {
    public enum Kind: Sendable { case max, average }

    /// The output shape for an NHWC input, or nil when a VALID window does not fit.
    public static func outputShape(_ window: Window2D, input: [Int]) -> [Int]? {
        guard input.count == 4, let g = window.geometry(inputHeight: input[1], inputWidth: input[2]) else { return nil }
        return [input[0], g.outputHeight, g.outputWidth, input[3]]
    }

    /// Pools `input` with `window` into a fresh tensor.
    public static func pool(_ kind: Kind, _ input: Tensor, _ window: Window2D) -> Tensor {
        guard let shape = outputShape(window, input: input.shape) else {
            preconditionFailure("pooling window \(window) does not fit input \(input.shape)")
        }
        var output = Tensor(zeros: shape)
        output.scalars.withUnsafeMutableBufferPointer { out in
            pool(kind, input, window, into: out.baseAddress!, channelStride: input.shape[3])
        }
        return output
    }

    /// Pools into `output` with a pixel stride of `channelStride` floats (for writing a slice of a
    /// concatenation). For each output pixel the window is clipped to the real input, then the
    /// channels are reduced as contiguous vectors (NHWC keeps a pixel's channels together).
    public static func pool(_ kind: Kind, _ input: Tensor, _ window: Window2D,
                            into output: UnsafeMutablePointer<Float>, channelStride: Int) {
        let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let g = window.geometry(inputHeight: h, inputWidth: w)!
        input.scalars.withUnsafeBufferPointer { inBuffer in
            let source = inBuffer.baseAddress!
            for b in 0..<n {
                for oy in 0..<g.outputHeight {
                    let y0 = max(oy * window.strideHeight - g.padTop, 0)
                    let y1 = min(oy * window.strideHeight - g.padTop + window.kernelHeight, h)
                    for ox in 0..<g.outputWidth {
                        let x0 = max(ox * window.strideWidth - g.padLeft, 0)
                        let x1 = min(ox * window.strideWidth - g.padLeft + window.kernelWidth, w)
                        let dst = output + ((b * g.outputHeight + oy) * g.outputWidth + ox) * channelStride
                        let first = source + ((b * h + y0) * w + x0) * c
                        dst.update(from: first, count: c)
                        for y in y0..<y1 {
                            for x in x0..<x1 where y != y0 || x != x0 {
                                let src = source + ((b * h + y) * w + x) * c
                                switch kind {
                                case .max: for i in 0..<c { dst[i] = max(dst[i], src[i]) }
                                case .average: for i in 0..<c { dst[i] += src[i] }
                                }
                            }
                        }
                        if kind == .average {
                            let scale = 1 / Float((y1 - y0) * (x1 - x0))
                            for i in 0..<c { dst[i] *= scale }
                        }
                    }
                }
            }
        }
    }

    /// The mean over height and width, keeping them as extent 1: [N, H, W, C] → [N, 1, 1, C].
    public static func globalAverage(_ input: Tensor) -> Tensor {
        let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        var output = Tensor(zeros: [n, 1, 1, c])
        let scale = 1 / Float(h * w)
        for b in 0..<n {
            for p in 0..<(h * w) {
                let base = (b * h * w + p) * c
                for i in 0..<c { output.scalars[b * c + i] += input.scalars[base + i] }
            }
            for i in 0..<c { output.scalars[b * c + i] *= scale }
        }
        return output
    }
}
