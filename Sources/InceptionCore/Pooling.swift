import CInceptionKernels

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
        precondition(input.rank == 4)
        input.scalars.withUnsafeBufferPointer { source in
            pool(kind, source.baseAddress!, shape: input.shape, window, into: output, channelStride: channelStride)
        }
    }

    /// Pools a raw NHWC input of the given shape whose pixels are `inputStride` floats apart
    /// (default: its channel count). Output rows are spread over the worker threads; the kernel
    /// is C (`pool.c`), vectorised for the active instruction set. A max pool given `argmax`
    /// (output pixels × channels bytes) also records where each maximum came from
    /// (``PoolingGradient/maxPoolInputGradient(argmax:outputGradient:window:into:accumulate:)``).
    public static func pool(_ kind: Kind, _ source: UnsafePointer<Float>, shape: [Int], inputStride: Int? = nil,
                            _ window: Window2D, into output: UnsafeMutablePointer<Float>, channelStride: Int,
                            argmax: UnsafeMutablePointer<UInt8>? = nil) {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        guard let g = window.geometry(inputHeight: h, inputWidth: w) else {
            preconditionFailure("pooling window \(window) does not fit a \(h)x\(w) input")
        }
        precondition(channelStride >= c && (inputStride ?? c) >= c)
        precondition(argmax == nil || (kind == .max && window.kernelHeight * window.kernelWidth <= 255),
                     "window positions are recorded for max pools of at most 255 taps")
        let rows = n * g.outputHeight
        let desc = ik_pooling(
            input: source, input_stride: inputStride ?? c, height: h, width: w, channels: c,
            kernel_h: window.kernelHeight, kernel_w: window.kernelWidth,
            stride_h: window.strideHeight, stride_w: window.strideWidth, pad_top: g.padTop, pad_left: g.padLeft,
            out_height: g.outputHeight, out_width: g.outputWidth,
            output: output, channel_stride: channelStride, average: kind == .average ? 1 : 0, argmax: argmax)
        // A few chunks of whole output rows per thread, for balance without much overhead.
        let chunk = max(1, (rows + Parallel.threadCount * 4 - 1) / (Parallel.threadCount * 4))
        withUnsafePointer(to: desc) { p in
            Parallel.forEach(count: (rows + chunk - 1) / chunk) { part in
                ik_pool_rows(p, part * chunk, min(rows, (part + 1) * chunk))
            }
        }
    }

    /// The mean over height and width, keeping them as extent 1: [N, H, W, C] → [N, 1, 1, C].
    public static func globalAverage(_ input: Tensor) -> Tensor {
        var output = Tensor(zeros: [input.shape[0], 1, 1, input.shape[3]])
        input.scalars.withUnsafeBufferPointer { source in
            output.scalars.withUnsafeMutableBufferPointer { out in
                globalAverage(source.baseAddress!, shape: input.shape, into: out.baseAddress!)
            }
        }
        return output
    }

    /// The global mean of a raw NHWC input into `output` ([N, C], contiguous).
    public static func globalAverage(_ source: UnsafePointer<Float>, shape: [Int], into output: UnsafeMutablePointer<Float>) {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let scale = 1 / Float(h * w)
        for b in 0..<n {
            let dst = output + b * c
            dst.update(repeating: 0, count: c)
            for p in 0..<(h * w) {
                let src = source + (b * h * w + p) * c
                for i in 0..<c { dst[i] += src[i] }
            }
            for i in 0..<c { dst[i] *= scale }
        }
    }
}

extension Pooling {
    /// PyTorch's adaptive average pooling to a fixed output size: output cell (i, j) averages input
    /// rows floor(i·H/OH) ..< ceil((i+1)·H/OH) and the same for columns (torchvision's auxiliary heads).
    public static func adaptiveAverage(_ input: Tensor, outputHeight oh: Int, outputWidth ow: Int) -> Tensor {
        let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        var output = Tensor(zeros: [n, oh, ow, c])
        for b in 0..<n {
            for i in 0..<oh {
                let y0 = i * h / oh, y1 = ((i + 1) * h + oh - 1) / oh
                for j in 0..<ow {
                    let x0 = j * w / ow, x1 = ((j + 1) * w + ow - 1) / ow
                    let base = ((b * oh + i) * ow + j) * c
                    for y in y0..<y1 {
                        for x in x0..<x1 {
                            let src = ((b * h + y) * w + x) * c
                            for ch in 0..<c { output.scalars[base + ch] += input.scalars[src + ch] }
                        }
                    }
                    let scale = 1 / Float((y1 - y0) * (x1 - x0))
                    for ch in 0..<c { output.scalars[base + ch] *= scale }
                }
            }
        }
        return output
    }
}
