/// PyTorch's adaptive average pooling (``Pooling/adaptiveAverage(_:outputHeight:outputWidth:)``,
/// torchvision's auxiliary heads) on ``ActivationSlab``s, and its input gradient.
///
/// Shapes: X [N, H, W, C] → Y [N, OH, OW, C]; the output size is the slab `y`'s (or `dy`'s).
/// Output row i averages input rows [floor(i·H/OH), ceil((i+1)·H/OH)), and the same for columns,
/// so each bin has at least one pixel. When OH does not divide H the bins overlap: 14 → 4 gives
/// rows [0,4), [3,7), [7,11), [10,14), and rows 3 and 10 belong to two bins each.
/// Gradient: dX[n, y, x, c] = Σ over the bins (i, j) containing (y, x) of dY[n, i, j, c] / |bin(i, j)|,
/// a scatter-add of each dY / |bin| over its bin; overlaps simply add up.
extension PoolingGradient {
    /// The bin of output index `i` along an axis of `input` pixels cut into `output` bins.
    @inline(__always) static func adaptiveBin(_ i: Int, input: Int, output: Int) -> Range<Int> {
        (i * input / output)..<(((i + 1) * input + output - 1) / output)
    }

    /// Y = adaptive average of X into `y` (whose height and width set the bins). Same arithmetic,
    /// in the same order, as ``Pooling/adaptiveAverage(_:outputHeight:outputWidth:)``.
    public static func adaptiveAverage(input x: ActivationSlab, into y: ActivationSlab) {
        precondition(y.batch == x.batch && y.channels == x.channels, "adaptive pooling output \(y.shape) does not match input \(x.shape)")
        precondition((x.height > 0 && x.width > 0) || y.pixels == 0, "adaptive pooling of an empty \(x.height)x\(x.width) input")
        let rows = y.batch * y.height
        let c = x.channels
        let perTask = max(1, (rows + 4 * Parallel.threadCount - 1) / (4 * Parallel.threadCount))
        Parallel.forEach(count: (rows + perTask - 1) / perTask) { part in
            for r in (part * perTask)..<min(rows, (part + 1) * perTask) {
                let b = r / y.height, oy = r % y.height
                let rowsIn = adaptiveBin(oy, input: x.height, output: y.height)
                for ox in 0..<y.width {
                    let columnsIn = adaptiveBin(ox, input: x.width, output: y.width)
                    let dst = y.row(r * y.width + ox)
                    dst.update(repeating: 0, count: c)
                    for iy in rowsIn {
                        for ix in columnsIn {
                            let src = x.row((b * x.height + iy) * x.width + ix)
                            for i in 0..<c { dst[i] += src[i] }
                        }
                    }
                    let scale = 1 / Float(rowsIn.count * columnsIn.count)
                    for i in 0..<c { dst[i] *= scale }
                }
            }
        }
    }

    /// dX of adaptive average pooling (see the extension's documentation); `dx` gives the input
    /// size, `dy` the output size. With `accumulate` false `dx` is zeroed first. Bins overlap, so
    /// the scatter is split by (image, block of channels), as for the other pooling gradients.
    public static func adaptiveAverageInputGradient(outputGradient dy: ActivationSlab, into dx: ActivationSlab, accumulate: Bool) {
        precondition(dy.batch == dx.batch && dy.channels == dx.channels, "adaptive pooling gradient \(dy.shape) does not match \(dx.shape)")
        precondition((dx.height > 0 && dx.width > 0) || dy.pixels == 0, "adaptive pooling of an empty \(dx.height)x\(dx.width) input")
        if !accumulate { dx.fill(0) }
        let blocks = ChannelBlocks(channels: dx.channels, images: dx.batch)
        Parallel.forEach(count: blocks.tasks) { task in
            let (b, c0, c1) = blocks.task(task)
            for oy in 0..<dy.height {
                let rowsIn = adaptiveBin(oy, input: dx.height, output: dy.height)
                for ox in 0..<dy.width {
                    let columnsIn = adaptiveBin(ox, input: dx.width, output: dy.width)
                    let scale = 1 / Float(rowsIn.count * columnsIn.count)
                    let grad = dy.row((b * dy.height + oy) * dy.width + ox)
                    for iy in rowsIn {
                        for ix in columnsIn {
                            let dst = dx.row((b * dx.height + iy) * dx.width + ix)
                            for c in c0..<c1 { dst[c] += grad[c] * scale }
                        }
                    }
                }
            }
        }
    }

    // MARK: Tensor forms (tests and tools)

    public static func adaptiveAverage(_ x: Tensor, outputHeight: Int, outputWidth: Int) -> Tensor {
        var x = x
        var y = Tensor(zeros: [x.shape[0], outputHeight, outputWidth, x.shape[3]])
        x.withSlab { xs in y.withSlab { adaptiveAverage(input: xs, into: $0) } }
        return y
    }

    public static func adaptiveAverageInputGradient(_ dy: Tensor, inputShape: [Int]) -> Tensor {
        var dy = dy
        var dx = Tensor(zeros: inputShape)
        dy.withSlab { dys in dx.withSlab { adaptiveAverageInputGradient(outputGradient: dys, into: $0, accumulate: false) } }
        return dx
    }
}
