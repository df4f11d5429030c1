import CInceptionKernels
import Foundation

/// Pooling on ``ActivationSlab``s and its gradients (TF semantics).
///
/// Shapes: input X [N, H, W, C]; output Y [N, OH, OW, C] (``Window2D`` geometry, TF SAME/VALID).
/// - max pool: Y = max over the window's real pixels (padding never wins). Gradient: each dY goes
///   to the window's arg-max, the *first* maximum in window (row-major) order on ties, as TF's
///   CPU `MaxPoolGrad` does; the arg-max is recomputed from X, or read from the positions the
///   forward recorded (one byte per output element, so training keeps neither X nor Y for it).
/// - average pool: Y = mean over the window's real pixels (SAME counts only real pixels).
///   Gradient: each dY / count is added to every real pixel of its window.
/// - global average: Y [N, 1, 1, C] = mean over H and W. Gradient: dX[n, h, w, c] = dY[n, c] / (H·W).
///
/// Backward kernels scatter-add, so work is split by (image, block of channels): two tasks never
/// touch the same element, for any window overlap.
public enum PoolingGradient {
    /// Y = pool(X) from slab to slab (the forward of ``maxPoolInputGradient(input:outputGradient:window:into:accumulate:)``
    /// and ``averagePoolInputGradient(outputGradient:window:into:accumulate:)``).
    /// A max pool given `argmax` (Y's pixels × channels bytes) also records each maximum's window
    /// position for ``maxPoolInputGradient(argmax:outputGradient:window:into:accumulate:)``.
    public static func forward(_ kind: Pooling.Kind, input x: ActivationSlab, window: Window2D, into y: ActivationSlab,
                               argmax: UnsafeMutablePointer<UInt8>? = nil) {
        guard let g = window.geometry(inputHeight: x.height, inputWidth: x.width) else {
            preconditionFailure("pooling window \(window) does not fit a \(x.height)x\(x.width) input")
        }
        precondition(y.batch == x.batch && y.height == g.outputHeight && y.width == g.outputWidth && y.channels == x.channels)
        Pooling.pool(kind, x.base, shape: x.shape, inputStride: x.stride, window, into: y.base, channelStride: y.stride,
                     argmax: argmax)
    }

    /// dX of max pooling: adds each dY to its window's first maximum of X. With `accumulate` false
    /// `dx` is overwritten (the kernel zeroes each row just before the first window reaches it,
    /// so the sums then find it in cache). `output` (the forward's Y, if still at hand) saves recomputing the maxima.
    public static func maxPoolInputGradient(input x: ActivationSlab, outputGradient dy: ActivationSlab, window: Window2D,
                                            into dx: ActivationSlab, accumulate: Bool, output: ActivationSlab? = nil) {
        let g = window.geometry(inputHeight: x.height, inputWidth: x.width)!
        precondition(dx.batch == x.batch && dx.height == x.height && dx.width == x.width && dx.channels == x.channels)
        precondition(dy.batch == x.batch && dy.height == g.outputHeight && dy.width == g.outputWidth && dy.channels == x.channels)
        maxPoolGradient(input: x, output: output, argmax: nil, outputGradient: dy, window: window, geometry: g,
                        into: dx, accumulate: accumulate)
    }

    /// dX of max pooling from the window positions the forward recorded (`argmax`, as
    /// ``forward(_:input:window:into:argmax:)`` wrote them): the same sums as
    /// ``maxPoolInputGradient(input:outputGradient:window:into:accumulate:output:)``, bit for bit,
    /// reading one byte per output element instead of X and Y. With `accumulate` false `dx` is
    /// overwritten.
    public static func maxPoolInputGradient(argmax: UnsafePointer<UInt8>, outputGradient dy: ActivationSlab, window: Window2D,
                                            into dx: ActivationSlab, accumulate: Bool) {
        let g = window.geometry(inputHeight: dx.height, inputWidth: dx.width)!
        precondition(dy.batch == dx.batch && dy.height == g.outputHeight && dy.width == g.outputWidth && dy.channels == dx.channels)
        maxPoolGradient(input: nil, output: nil, argmax: argmax, outputGradient: dy, window: window, geometry: g,
                        into: dx, accumulate: accumulate)
    }

    /// Both routes: the C kernel (`pool.c`, vectorised for the active instruction set like the
    /// forward) over (image, block of channels) tasks.
    private static func maxPoolGradient(input x: ActivationSlab?, output: ActivationSlab?, argmax: UnsafePointer<UInt8>?,
                                        outputGradient dy: ActivationSlab, window: Window2D, geometry g: WindowGeometry,
                                        into dx: ActivationSlab, accumulate: Bool) {
        let desc = ik_max_pool_grad(
            input: x?.base, input_stride: x?.stride ?? 0, output: output?.base, output_stride: output?.stride ?? 0,
            argmax: argmax, channels: dx.channels, grad: dy.base, grad_stride: dy.stride, dx: dx.base, dx_stride: dx.stride,
            height: dx.height, width: dx.width, kernel_h: window.kernelHeight, kernel_w: window.kernelWidth,
            stride_h: window.strideHeight, stride_w: window.strideWidth, pad_top: g.padTop, pad_left: g.padLeft,
            out_height: g.outputHeight, out_width: g.outputWidth, zero_first: accumulate ? 0 : 1)
        let blocks = ChannelBlocks(channels: dx.channels, images: dx.batch)
        withUnsafePointer(to: desc) { p in
            Parallel.forEach(count: blocks.tasks) { task in
                let (b, c0, c1) = blocks.task(task)
                ik_max_pool_backward(p, b, c0, c1)
            }
        }
    }

    /// dX of average pooling (SAME divides by the real pixels under the window). With
    /// `accumulate` false `dx` is zeroed first.
    public static func averagePoolInputGradient(outputGradient dy: ActivationSlab, window: Window2D,
                                                into dx: ActivationSlab, accumulate: Bool) {
        let g = window.geometry(inputHeight: dx.height, inputWidth: dx.width)!
        precondition(dy.batch == dx.batch && dy.height == g.outputHeight && dy.width == g.outputWidth && dy.channels == dx.channels)
        if !accumulate { dx.fill(0) }
        let blocks = ChannelBlocks(channels: dx.channels, images: dx.batch)
        Parallel.forEach(count: blocks.tasks) { task in
            let (b, c0, c1) = blocks.task(task)
            for oy in 0..<g.outputHeight {
                let y0 = max(oy * window.strideHeight - g.padTop, 0)
                let y1 = min(oy * window.strideHeight - g.padTop + window.kernelHeight, dx.height)
                for ox in 0..<g.outputWidth {
                    let x0 = max(ox * window.strideWidth - g.padLeft, 0)
                    let x1 = min(ox * window.strideWidth - g.padLeft + window.kernelWidth, dx.width)
                    let count = Float((y1 - y0) * (x1 - x0))
                    let grad = dy.row((b * g.outputHeight + oy) * g.outputWidth + ox)
                    for iy in y0..<y1 {
                        for ix in x0..<x1 {
                            let dst = dx.row((b * dx.height + iy) * dx.width + ix)
                            for c in c0..<c1 { dst[c] += grad[c] / count }
                        }
                    }
                }
            }
        }
    }

    /// Y[n, c] = mean over H and W of X (into `y`, [N, 1, 1, C]); sums in Double.
    public static func globalAverage(input x: ActivationSlab, into y: ActivationSlab) {
        precondition(y.pixels == x.batch && y.channels == x.channels)
        let hw = x.height * x.width, c = x.channels
        Parallel.forEach(count: x.batch) { b in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: c) { sum in
                for i in 0..<c { sum[i] = 0 }
                for p in 0..<hw {
                    let src = x.row(b * hw + p)
                    for i in 0..<c { sum[i] += Double(src[i]) }
                }
                let dst = y.row(b)
                for i in 0..<c { dst[i] = Float(sum[i] / Double(hw)) }
            }
        }
    }

    /// dX[n, h, w, c] = dY[n, c] / (H·W) (replaces `dx`, or adds to it with `accumulate`).
    public static func globalAverageInputGradient(outputGradient dy: ActivationSlab, into dx: ActivationSlab, accumulate: Bool) {
        precondition(dy.pixels == dx.batch && dy.channels == dx.channels)
        let hw = dx.height * dx.width, c = dx.channels
        let count = Float(hw)
        Parallel.forEach(count: dx.batch) { b in
            let grad = dy.row(b)
            for p in 0..<hw {
                let dst = dx.row(b * hw + p)
                if accumulate { for i in 0..<c { dst[i] += grad[i] / count } } else { for i in 0..<c { dst[i] = grad[i] / count } }
            }
        }
    }

    // MARK: Tensor forms (tests and tools)

    public static func forward(_ kind: Pooling.Kind, _ x: Tensor, window: Window2D) -> Tensor {
        var x = x
        var y = Tensor(zeros: Pooling.outputShape(window, input: x.shape)!)
        x.withSlab { xs in y.withSlab { ys in forward(kind, input: xs, window: window, into: ys) } }
        return y
    }

    public static func maxPoolInputGradient(_ x: Tensor, _ dy: Tensor, window: Window2D) -> Tensor {
        var x = x, dy = dy
        var dx = Tensor(zeros: x.shape)
        x.withSlab { xs in dy.withSlab { dys in dx.withSlab { dxs in
            maxPoolInputGradient(input: xs, outputGradient: dys, window: window, into: dxs, accumulate: false)
        } } }
        return dx
    }

    public static func averagePoolInputGradient(_ dy: Tensor, window: Window2D, inputShape: [Int]) -> Tensor {
        var dy = dy
        var dx = Tensor(zeros: inputShape)
        dy.withSlab { dys in dx.withSlab { dxs in averagePoolInputGradient(outputGradient: dys, window: window, into: dxs, accumulate: false) } }
        return dx
    }

    public static func globalAverageInputGradient(_ dy: Tensor, inputShape: [Int]) -> Tensor {
        var dy = dy
        var dx = Tensor(zeros: inputShape)
        dy.withSlab { dys in dx.withSlab { dxs in globalAverageInputGradient(outputGradient: dys, into: dxs, accumulate: false) } }
        return dx
    }
}

/// Work split for the scatter-adding pooling gradients: one task per (image, block of ≤ 64 channels).
struct ChannelBlocks {
    let channels: Int, images: Int, blockWidth: Int, blocks: Int
    init(channels: Int, images: Int) {
        self.channels = channels
        self.images = images
        blockWidth = 64
        blocks = max(1, (channels + 63) / 64)
    }
    var tasks: Int { images * blocks }
    func task(_ index: Int) -> (image: Int, c0: Int, c1: Int) {
        let b = index / blocks, j = index % blocks
        return (b, j * blockWidth, min(channels, (j + 1) * blockWidth))
    }
}
