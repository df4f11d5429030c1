import CInceptionKernels
import Foundation

/// The convolution of the training pass and its two gradients, all on ``ActivationSlab``s and
/// all through the packed GEMM (`CInceptionKernels`).
///
/// Shapes (TF semantics, NHWC / HWIO, SAME padding split smaller-half-before as TF does):
/// - input X: [N, H, W, CI]; weights W: [KH, KW, CI, CO]; output Z: [N, OH, OW, CO].
/// - forward:  Z[n,oh,ow,o] = Σ_{kh,kw,c} X[n, oh·sh + kh − padTop, ow·sw + kw − padLeft, c] · W[kh,kw,c,o]
///   (taps in the padding read 0), plus an optional bias[o]: a GEMM for 1x1 stride 1; the
///   kernels reading zero-padded bands of X in place for output rows of 24+ pixels
///   (``readsPaddedBands(_:)``); else a GEMM on gathered receptive fields.
/// - ``inputGradient(outputGradient:transposedWeights:window:into:accumulate:)``: dX = ∂L/∂X from
///   dZ = ∂L/∂Z, [N, H, W, CI]. Written as a convolution of dZ, so no scatter and threads never
///   collide: each input pixel gathers the dZ pixels whose windows cover it (a "transposed"
///   receptive field of KH·KW·CO values) and multiplies by Wᵀ packed as [(kh, kw, o) × c]; or,
///   from HWIO weights with stride 1 and long rows, padded bands of dZ with the kernel turned by 180°.
/// - ``weightGradient(input:outputGradient:window:into:)``: dW = ∂L/∂W, [KH, KW, CI, CO] =
///   im2col(X)ᵀ · dZ, one GEMM per kernel row reading the (padded) input in place, column by
///   column, against dZ packed once per chunk of output pixels (no im2col copy, no transposes).
///   Chunks are dealt to a few groups in a fixed pattern; each group sums its chunks' products
///   into its own accumulator and the accumulators are added in order, so the result does not
///   depend on thread timing. Every element of dW is written (it may start uninitialised).
/// - bias gradient: Σ over pixels of dZ (``BatchNormTraining/channelSums(_:)``).
public enum ConvolutionGradient {
    /// Z = conv(X, W) (+ bias): the forward these gradients differentiate, reading a slab (so a
    /// convolution can read a channel slice of a concatenation and write into one).
    /// `weights` is the HWIO tensor packed as a (KH·KW·CI) × CO matrix (``GEMM/pack(_:rows:columns:)``).
    public static func forward(input x: ActivationSlab, weights: PackedMatrix, window: Window2D,
                               bias: UnsafePointer<Float>?, into z: ActivationSlab) {
        guard let g = window.geometry(inputHeight: x.height, inputWidth: x.width) else {
            preconditionFailure("convolution \(window) does not fit a \(x.height)x\(x.width) input")
        }
        let k = window.kernelHeight * window.kernelWidth * x.channels
        precondition(weights.rows == k && weights.columns == z.channels, "weights \(weights.rows)x\(weights.columns) do not fit")
        precondition(z.batch == x.batch && z.height == g.outputHeight && z.width == g.outputWidth)
        guard z.pixels > 0 else { return }
        if window.isPointwise {
            GEMM.multiply(m: z.pixels, a: x.base, lda: x.stride, b: weights, c: z.base, ldc: z.stride,
                          bias: bias, relu: false)
            return
        }
        if readsPaddedBands(g) {
            convolvePaddedBands(input: x, weights: weights, geometry: g, bias: bias, into: z)
            return
        }
        let gather = SlabGather(source: x, geometry: g)
        GEMM.multiply(m: z.pixels, gatherRows: { start, count, buffer in gather.rows(start, count, into: buffer) },
                      b: weights, c: z.base, ldc: z.stride, bias: bias, relu: false)
    }

    /// A window that covers its whole input exactly once (no padding, one output pixel) is a fully
    /// connected layer (torchvision's auxiliary `fc1` on a 4x4 map): on a dense slab, the same
    /// products as a 1x1 convolution of the image seen as one pixel of KH·KW·CI channels (HWIO
    /// weights are already that (KH·KW·CI) × CO matrix). As a 1x1, the batch is the GEMM's M;
    /// as a window, the input gradient would gather KH·KW mostly-zero taps per pixel and the
    /// weight gradient would run one GEMM per image. nil when it is not such a window.
    static func fullyConnectedView(_ x: ActivationSlab, _ g: WindowGeometry) -> ActivationSlab? {
        let w = g.window
        guard g.outputHeight == 1 && g.outputWidth == 1 && g.padTop == 0 && g.padLeft == 0,
              w.kernelHeight == x.height && w.kernelWidth == x.width, x.height * x.width > 1, x.stride == x.channels
        else { return nil }
        return ActivationSlab(base: x.base, batch: x.batch, height: 1, width: 1, channels: x.height * x.width * x.channels)
    }

    /// Whether a convolution with this geometry reads zero-padded bands of its input in place
    /// (``convolvePaddedBands(input:weights:geometry:bias:into:moments:)``) rather than gathering receptive
    /// fields: windows other than 1x1 stride 1 (a plain GEMM) with output rows of 24+ pixels.
    /// Shorter rows would run about as fast in the kernels (on one core Mixed_4b's 3x3 at 14x14:
    /// 249 GFLOP/s read in place, 252 for the GEMM alone; benchmarks/gemm) and 224/32 steps
    /// measured ~15 ms faster with them, but the changed rounding moves the small test networks'
    /// float32 forward across different ReLU and max-pool kinks, and the gradient-accuracy tests
    /// (GradientModelTests, TrainingStepParityTests: errors against the exact gradient that kinks
    /// dominate) then miss their margins. Kept to long rows until those tests separate the two.
    static func readsPaddedBands(_ g: WindowGeometry) -> Bool {
        g.outputWidth >= 24 && g.padTop >= 0 && g.padLeft >= 0
            && !g.window.isPointwise
    }

    /// Z = conv(X, W) (+ bias) without an im2col copy: each task copies the input rows under a band
    /// of output rows of one image, zero-padded, into its thread's scratch (≤ 256 KB, so it stays
    /// in L2), and `ik_conv_window_rows` multiplies the windows straight from there (the kernels
    /// walk A's K axis in kernel-row segments, a padded row apart). The copies move 1-2 floats per
    /// input float where an im2col gather moves KH·KW.
    ///
    /// With `moments`, also batch norm's block sums of Z (``ChannelMoments``): bands then hold a
    /// whole number of 32-pixel blocks (when the image does and the pass's tasks are whole
    /// blocks; else no sums, and false), Z's first output row is computed first for the shift,
    /// and each task sums its blocks as its output rows finish (`ik_conv_window_rows_block_sums`).
    @discardableResult
    static func convolvePaddedBands(input x: ActivationSlab, weights: PackedMatrix, geometry g: WindowGeometry,
                                    bias: UnsafePointer<Float>?, into z: ActivationSlab, moments: ChannelMoments? = nil) -> Bool {
        let w = g.window, ci = x.channels, (oh, ow) = (g.outputHeight, g.outputWidth)
        let paddedWidth = (ow - 1) * w.strideWidth + w.kernelWidth
        let rowFloats = paddedWidth * ci
        var bandRows = max(1, min(oh, ((1 << 16) / rowFloats - w.kernelHeight) / w.strideHeight + 1))
        // Rows per band such that a band is whole 32-pixel blocks (rows·ow a multiple of 32).
        let blockRows = 32 / gcd(ow, 32)
        let sums = moments != nil && (oh * ow) % 32 == 0 && (bandRows >= blockRows || oh <= blockRows)
            && SlabChunks.rowsPerTask(z.pixels) % 32 == 0  // the pass's tasks are whole blocks
        if sums { bandRows = min(oh, max(blockRows, bandRows / blockRows * blockRows)) }
        let bandsPerImage = (oh + bandRows - 1) / bandRows
        if sums { moments!.reserveBlocks(rows: z.pixels, columns: z.channels) }
        weights.storage.withUnsafeBufferPointer { storage in
            let packed = storage.baseAddress! + weights.offset
            // Output rows `rows` of band `task` (from its first), with sums when `blocks` is given.
            func band(_ task: Int, rows: Range<Int>?, shift: UnsafePointer<Float>?, blocks: UnsafeMutablePointer<Float>?) {
                let image = task / bandsPerImage, oy0 = (task % bandsPerImage) * bandRows
                let count = min(bandRows, oh - oy0), bandHeight = (count - 1) * w.strideHeight + w.kernelHeight
                guard let scratch = ik_thread_scratch_slot(1, bandHeight * rowFloats) else { fatalError("out of memory") }
                copyPaddedBand(x, geometry: g, image: image, firstRow: oy0 * w.strideHeight - g.padTop, rows: bandHeight,
                               paddedWidth: paddedWidth, into: scratch)
                var descriptor = ik_conv_window(
                    input: scratch, padded_height: bandHeight, padded_width: paddedWidth, channels: ci,
                    kernel_h: w.kernelHeight, kernel_w: w.kernelWidth, stride_h: w.strideHeight, stride_w: w.strideWidth,
                    out_height: count, out_width: ow, out_channels: z.channels, packed: packed,
                    output: z.row((image * oh + oy0) * ow), channel_stride: z.stride, bias: bias, relu: 0)
                let r = rows ?? 0..<count
                ik_conv_window_rows_block_sums(&descriptor, r.lowerBound, r.upperBound, shift, blocks)
            }
            if sums {
                let moments = moments!
                band(0, rows: 0..<1, shift: nil, blocks: nil)
                moments.shift.update(from: z.base, count: z.channels)
                let shift = UnsafePointer(moments.shift)
                Parallel.forEach(count: x.batch * bandsPerImage) { task in
                    let first = ((task / bandsPerImage) * oh + (task % bandsPerImage) * bandRows) * ow
                    band(task, rows: nil, shift: shift, blocks: moments.blocks(atRow: first))
                }
            } else {
                Parallel.forEach(count: x.batch * bandsPerImage) { task in band(task, rows: nil, shift: nil, blocks: nil) }
            }
        }
        return sums
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    /// Z = conv(X, W) (+ bias) from HWIO weights `w` (KH·KW·CI·CO floats, CO = `z.channels`),
    /// as training runs it every step: with ``Winograd/inTraining``, 3×3 stride-1 windows run as
    /// Winograd where ``Winograd/trainingTileSize(for:batch:inputChannels:outputChannels:)``
    /// picks it (the weights transformed afresh, in the calling thread's scratch: they change
    /// every step), everything else on the packed direct path.
    public static func forward(input x: ActivationSlab, hwio w: UnsafePointer<Float>, window: Window2D,
                               bias: UnsafePointer<Float>?, into z: ActivationSlab) {
        if BFloat16Training.isEnabled { return forwardBFloat16(input: x, hwio: w, window: window, bias: bias, into: z) }
        guard let g = window.geometry(inputHeight: x.height, inputWidth: x.width) else {
            preconditionFailure("convolution \(window) does not fit a \(x.height)x\(x.width) input")
        }
        let ci = x.channels, co = z.channels
        if let flat = fullyConnectedView(x, g) {
            forward(input: flat, hwio: w, window: Window2D(1), bias: bias, into: z)
            return
        }
        if let tile = Winograd.trainingTileSize(for: g, batch: x.batch, inputChannels: ci, outputChannels: co) {
            winograd(tile: tile, hwio: w, turned: false, input: x, geometry: g, into: z, bias: bias, accumulate: false)
            return
        }
        let k = window.kernelHeight * window.kernelWidth * ci
        let packed = GEMM.pack(UnsafeBufferPointer(start: w, count: k * co), rows: k, columns: co)
        forward(input: x, weights: packed, window: window, bias: bias, into: z)
    }

    /// ``forward(input:hwio:window:bias:into:)`` without a bias (float32), also gathering batch
    /// norm's statistics of Z in `moments` as Z is written where the path allows (Winograd, 1x1,
    /// padded bands of whole blocks); false when it did not.
    static func forward(input x: ActivationSlab, hwio w: UnsafePointer<Float>, window: Window2D, into z: ActivationSlab,
                        moments: ChannelMoments) -> Bool {
        guard let g = window.geometry(inputHeight: x.height, inputWidth: x.width), fullyConnectedView(x, g) == nil else {
            forward(input: x, hwio: w, window: window, bias: nil, into: z)
            return false
        }
        let ci = x.channels, co = z.channels
        if let tile = Winograd.trainingTileSize(for: g, batch: x.batch, inputChannels: ci, outputChannels: co) {
            winograd(tile: tile, hwio: w, turned: false, input: x, geometry: g, into: z, bias: nil, accumulate: false,
                     moments: moments)
            return true
        }
        if window.isPointwise && z.pixels > 0 {  // packs W itself (see there)
            GEMM.multiply(m: z.pixels, a: x.base, lda: x.stride, unpacked: w, rows: ci, columns: co, c: z.base,
                          ldc: z.stride, bias: nil, moments: moments)
            return true
        }
        let k = window.kernelHeight * window.kernelWidth * ci
        let packed = GEMM.pack(UnsafeBufferPointer(start: w, count: k * co), rows: k, columns: co)
        guard z.pixels > 0, readsPaddedBands(g) else {
            forward(input: x, weights: packed, window: window, bias: nil, into: z)
            return false
        }
        // Padded bands: ChannelMoments' blocks (the same bits as the pass) when they are whole blocks.
        return convolvePaddedBands(input: x, weights: packed, geometry: g, bias: nil, into: z, moments: moments)
    }

    /// A 3×3 stride-1 convolution of slab `x` into slab `y` as Winograd F(tile×tile, 3×3), the HWIO
    /// weights transformed now (training's change every step) into the calling thread's scratch,
    /// by all threads, one panel of 16 output channels per task: a transform writes 4x the
    /// weights (36 matrices for 9 taps), and one thread alone took ~8 ms of a 112x112 step.
    /// `turned`: `hwio` is the kernel of the convolution whose input gradient this is
    /// ([3, 3, CO, CI] for this call's CI, CO), used turned by 180° with its channel axes swapped.
    private static func winograd(tile: Int, hwio: UnsafePointer<Float>, turned: Bool, input x: ActivationSlab,
                                 geometry g: WindowGeometry, into y: ActivationSlab, bias: UnsafePointer<Float>?,
                                 accumulate: Bool, moments: ChannelMoments? = nil) {
        let (ci, co) = (x.channels, y.channels)
        let stride = ik_packed_count(ci, co), a2 = (tile + 2) * (tile + 2)
        guard let u = ik_thread_scratch_slot(2, a2 * stride) else { fatalError("out of memory") }
        GEMM.forEachPanel(columns: co) { panel in
            ik_winograd_weights_panels(Int32(tile), hwio, ci, co, nil, turned ? 1 : 0, u, stride, panel, panel + 1)
        }
        Winograd.convolve(tile: tile, weights: u, matrixStride: stride, input: x.base, inputStride: x.stride,
                          batch: x.batch, geometry: g, inputChannels: ci, outputChannels: co,
                          output: y.base, channelStride: y.stride, bias: bias, relu: false, accumulate: accumulate,
                          moments: moments)
    }

    /// dX from dZ and HWIO weights `w` (KH·KW·CI·CO floats), as training runs it every step.
    ///
    /// A 3×3 stride-1 window's dX is itself a 3×3 stride-1 convolution: of dZ, with the kernel
    /// turned by 180° and its channel axes swapped (W′[kh, kw, o, c] = W[2 − kh, 2 − kw, c, o]),
    /// padded by 2 − pad before the first row and column. With ``Winograd/inTraining`` that runs
    /// as Winograd where ``Winograd/trainingTileSize(for:batch:inputChannels:outputChannels:)``
    /// picks it, adding into `dx` directly when accumulating; other windows use
    /// ``inputGradient(outputGradient:transposedWeights:window:into:accumulate:workspace:)``.
    public static func inputGradient(outputGradient dz: ActivationSlab, hwio w: UnsafePointer<Float>, window: Window2D,
                                     into dx: ActivationSlab, accumulate: Bool, workspace: Workspace? = nil) {
        if BFloat16Training.isEnabled {
            return inputGradientBFloat16(outputGradient: dz, hwio: w, window: window, into: dx, accumulate: accumulate)
        }
        guard let g = window.geometry(inputHeight: dx.height, inputWidth: dx.width) else {
            preconditionFailure("convolution \(window) does not fit a \(dx.height)x\(dx.width) input")
        }
        let ci = dx.channels, co = dz.channels
        if let flat = fullyConnectedView(dx, g) {
            inputGradient(outputGradient: dz, hwio: w, window: Window2D(1), into: flat, accumulate: accumulate, workspace: workspace)
            return
        }
        let transposed = WindowGeometry(window: window, inputHeight: dz.height, inputWidth: dz.width,
                                        outputHeight: dx.height, outputWidth: dx.width,
                                        padTop: window.kernelHeight - 1 - g.padTop, padLeft: window.kernelWidth - 1 - g.padLeft)
        if dx.pixels > 0, let tile = Winograd.trainingTileSize(for: transposed, batch: dz.batch, inputChannels: co, outputChannels: ci) {
            winograd(tile: tile, hwio: w, turned: true, input: dz, geometry: transposed, into: dx, bias: nil, accumulate: accumulate)
            return
        }
        if window.strideHeight == 1 && window.strideWidth == 1 && readsPaddedBands(transposed) && dx.pixels > 0 {
            // dX = conv(dZ, W′) read in padded bands (W′ as above).
            let packed = packTransposedWeights(w, kernelHeight: window.kernelHeight, kernelWidth: window.kernelWidth,
                                               inputChannels: ci, outputChannels: co, turned: true)
            writingOrAdding(into: dx, accumulate: accumulate, workspace: workspace) { out in
                convolvePaddedBands(input: dz, weights: packed, geometry: transposed, bias: nil, into: out)
            }
            return
        }
        let wt = packTransposedWeights(w, kernelHeight: window.kernelHeight, kernelWidth: window.kernelWidth,
                                       inputChannels: ci, outputChannels: co)
        inputGradient(outputGradient: dz, transposedWeights: wt, window: window, into: dx, accumulate: accumulate,
                      workspace: workspace)
    }

    /// Runs `write` (which overwrites its output) into `dx`, or with `accumulate` into a dense
    /// temporary from `workspace` that is then added to `dx`.
    private static func writingOrAdding(into dx: ActivationSlab, accumulate: Bool, workspace: Workspace?,
                                        _ write: (ActivationSlab) -> Void) {
        guard accumulate else { return write(dx) }
        let own = workspace ?? Workspace()
        let t = ActivationSlab(base: own.floats(dx.pixels * dx.channels), batch: dx.batch, height: dx.height,
                               width: dx.width, channels: dx.channels)
        write(t)
        dx.add(t)
    }

    /// Packs HWIO weights (`w`: KH·KW·CI·CO floats) for ``inputGradient(outputGradient:transposedWeights:window:into:accumulate:)``:
    /// the matrix B′[(kh·KW + kw)·CO + o, c] = W[kh, kw, c, o], (KH·KW·CO) × CI; with `turned`, the
    /// taps in reverse order (W′ of ``inputGradient(outputGradient:hwio:window:into:accumulate:workspace:)``).
    public static func packTransposedWeights(_ w: UnsafePointer<Float>, kernelHeight kh: Int, kernelWidth kw: Int,
                                             inputChannels ci: Int, outputChannels co: Int, turned: Bool = false) -> PackedMatrix {
        let taps = kh * kw
        let count = ik_packed_count(taps * co, ci)
        let (storage, offset) = GEMM.alignedFloats(count) { packed in
            guard count > 0 else { return }
            GEMM.forEachPanel(columns: ci) { panel in
                ik_pack_transposed_taps_panels(w, taps, ci, co, turned ? 1 : 0, packed, panel, panel + 1)
            }
        }
        return PackedMatrix(rows: taps * co, columns: ci, storage: storage, offset: offset)
    }

    /// dX from dZ (see the type's documentation). `transposedWeights` comes from
    /// ``packTransposedWeights(_:kernelHeight:kernelWidth:inputChannels:outputChannels:)``.
    /// With `accumulate` the result is added to `dx`, else it replaces it.
    public static func inputGradient(outputGradient dz: ActivationSlab, transposedWeights wt: PackedMatrix,
                                     window: Window2D, into dx: ActivationSlab, accumulate: Bool,
                                     workspace: Workspace? = nil) {
        guard let g = window.geometry(inputHeight: dx.height, inputWidth: dx.width) else {
            preconditionFailure("convolution \(window) does not fit a \(dx.height)x\(dx.width) input")
        }
        precondition(dz.batch == dx.batch && dz.height == g.outputHeight && dz.width == g.outputWidth)
        precondition(wt.rows == window.kernelHeight * window.kernelWidth * dz.channels && wt.columns == dx.channels)
        guard dx.pixels > 0, dx.channels > 0 else { return }
        if accumulate {
            writingOrAdding(into: dx, accumulate: true, workspace: workspace) { out in
                inputGradient(outputGradient: dz, transposedWeights: wt, window: window, into: out, accumulate: false)
            }
            return
        }
        if window.isPointwise {
            GEMM.multiply(m: dx.pixels, a: dz.base, lda: dz.stride, b: wt, c: dx.base, ldc: dx.stride, bias: nil, relu: false)
            return
        }
        let gather = TransposedGather(gradient: dz, geometry: g)
        GEMM.multiply(m: dx.pixels, gatherRows: { start, count, buffer in gather.rows(start, count, into: buffer) },
                      b: wt, c: dx.base, ldc: dx.stride, bias: nil, relu: false)
    }

    /// dW = im2col(X)ᵀ · dZ into `dw` (HWIO, KH·KW·CI·CO floats, overwritten), without im2col.
    ///
    /// For kernel row kh, the rows (kw, c) of dW[kh] are KW·CI adjacent floats of a zero-padded
    /// input row, so dW[kh] ((KW·CI) × CO) = Σ_pixels Xpad[window row kh of the pixel]ᵀ · dZ[pixel]
    /// is one GEMM whose A is read in place, column by column (`ik_gemm_transposed_a`: one column
    /// per output pixel, stride·CI floats apart, a padded row apart at each output row's end), and
    /// whose B is dZ, packed once per chunk and shared by the KH kernel rows. The result comes
    /// out in HWIO order: no transpose of dZ, none of dW.
    ///
    /// Chunks (``WeightGradientChunking``): a 1x1 stride-1 window reads X itself (any pixel range,
    /// across images); other windows bands of output rows of one image, their input rows copied
    /// zero-padded into thread scratch. Sums are grouped so the result does not depend on thread timing.
    public static func weightGradient(input x: ActivationSlab, outputGradient dz: ActivationSlab, window: Window2D,
                                      into dw: UnsafeMutablePointer<Float>, workspace: Workspace? = nil) {
        if BFloat16Training.isEnabled {
            return weightGradientBFloat16(input: x, outputGradient: dz, window: window, into: dw, workspace: workspace)
        }
        guard let g = window.geometry(inputHeight: x.height, inputWidth: x.width) else {
            preconditionFailure("convolution \(window) does not fit a \(x.height)x\(x.width) input")
        }
        precondition(dz.batch == x.batch && dz.height == g.outputHeight && dz.width == g.outputWidth)
        if let flat = fullyConnectedView(x, g) {
            weightGradient(input: flat, outputGradient: dz, window: Window2D(1), into: dw, workspace: workspace)
            return
        }
        if let tile = Winograd.trainingTileSize(for: g, batch: x.batch, inputChannels: x.channels,
                                                outputChannels: dz.channels) {
            return winogradWeightGradient(tile: tile, input: x, outputGradient: dz, geometry: g, into: dw, workspace: workspace)
        }
        let (kh, kw, sh, sw) = (window.kernelHeight, window.kernelWidth, window.strideHeight, window.strideWidth)
        let (ci, co) = (x.channels, dz.channels)
        let rowFloats = kw * ci * co  // one kernel row of dW
        let packedRow = ((co + 15) / 16) * 16  // floats of one packed dZ row
        let chunking = WeightGradientChunking(x, dz, geometry: g, packedRowFloats: packedRow)
        if chunking.direct && chunking.chunks == 1 && Parallel.threadCount > 1 {
            return pointwiseWeightGradientByRows(input: x, outputGradient: dz, into: dw)
        }
        chunking.sumInGroups(size: kh * rowFloats, into: dw, workspace: workspace) { chunk, acc, first in
            if chunking.direct {
                let (start, rows) = chunking.pixels(ofChunk: chunk)
                guard let packed = ik_thread_scratch(rows * packedRow) else { fatalError("out of memory") }
                ik_pack(dz.row(start), dz.stride, rows, co, packed)
                ik_gemm_transposed_a(ci, rows, co, x.row(start), x.stride, rows, rows * x.stride,
                                     packed, acc, co, first ? 0 : 1)
                return
            }
            let band = chunking.band(ofChunk: chunk)
            guard let input = ik_thread_scratch(band.inputFloats + band.pixels * packedRow) else { fatalError("out of memory") }
            let packed = input + band.inputFloats
            chunking.copyInput(of: band, into: input)
            chunking.packOutputGradient(dz, of: band, into: packed)
            // A for kernel row r: column (pixel) (oh, j, ow) at (oh·sh + r) padded rows, j images
            // and ow·sw pixels in. Output rows are segments of OW columns; with the images side by
            // side (stride 1) the next segment is the next image's row, one image's row width on.
            let rowStep = chunking.inputRowFloats(of: band)
            for r in 0..<kh {
                ik_gemm_transposed_a(kw * ci, band.pixels, co, input + r * rowStep, sw * ci, band.outputWidth,
                                     sh * chunking.paddedWidth * ci, packed, acc + r * rowFloats, co, first ? 0 : 1)
            }
        }
    }

    /// Input rows firstRow ..< firstRow + rows of `image` (rows outside the input are zeros), each
    /// with g.padLeft zero pixels before and zeros after up to `paddedWidth` pixels, as a dense
    /// rows × paddedWidth × CI block (its rows `rowStride` floats apart when given): the padded
    /// input the window kernels read in place (training's bands, and inference's padded image in
    /// ``Convolution2D``).
    static func copyPaddedBand(_ x: ActivationSlab, geometry g: WindowGeometry, image: Int, firstRow: Int, rows: Int,
                               paddedWidth: Int, rowStride: Int? = nil, into band: UnsafeMutablePointer<Float>) {
        let ci = x.channels, width = g.inputWidth
        let left = min(g.padLeft, paddedWidth), copied = max(0, min(width, paddedWidth - left))
        for r in 0..<rows {
            let dst = band + r * (rowStride ?? paddedWidth * ci)
            let ih = firstRow + r
            guard ih >= 0 && ih < g.inputHeight else { dst.update(repeating: 0, count: paddedWidth * ci); continue }
            dst.update(repeating: 0, count: left * ci)
            let src = x.row((image * g.inputHeight + ih) * width)
            if x.stride == ci {
                (dst + left * ci).update(from: src, count: copied * ci)
            } else {
                for p in 0..<copied { (dst + (left + p) * ci).update(from: src + p * x.stride, count: ci) }
            }
            (dst + (left + copied) * ci).update(repeating: 0, count: (paddedWidth - left - copied) * ci)
        }
    }

    /// Tensor form of ``forward(input:weights:window:bias:into:)`` (for tests and tools).
    public static func forward(_ x: Tensor, weights: Tensor, bias: [Float]? = nil, window: Window2D) -> Tensor {
        let s = weights.shape
        precondition(s.count == 4 && s[0] == window.kernelHeight && s[1] == window.kernelWidth && s[2] == x.shape[3])
        let g = window.geometry(inputHeight: x.shape[1], inputWidth: x.shape[2])!
        var x = x
        var z = Tensor(zeros: [x.shape[0], g.outputHeight, g.outputWidth, s[3]])
        let packed = GEMM.pack(weights.scalars, rows: s[0] * s[1] * s[2], columns: s[3])
        x.withSlab { xs in
            z.withSlab { zs in
                if let bias {
                    bias.withUnsafeBufferPointer { forward(input: xs, weights: packed, window: window, bias: $0.baseAddress, into: zs) }
                } else {
                    forward(input: xs, weights: packed, window: window, bias: nil, into: zs)
                }
            }
        }
        return z
    }

    /// Tensor form of ``inputGradient(outputGradient:transposedWeights:window:into:accumulate:)``:
    /// dX [N, H, W, CI] for an input of spatial size `inputHeight`×`inputWidth`.
    public static func inputGradient(_ dz: Tensor, weights: Tensor, window: Window2D, inputHeight: Int, inputWidth: Int) -> Tensor {
        let s = weights.shape
        var dz = dz
        var dx = Tensor(zeros: [dz.shape[0], inputHeight, inputWidth, s[2]])
        let wt = weights.scalars.withUnsafeBufferPointer {
            packTransposedWeights($0.baseAddress!, kernelHeight: s[0], kernelWidth: s[1], inputChannels: s[2], outputChannels: s[3])
        }
        dz.withSlab { dzs in dx.withSlab { dxs in inputGradient(outputGradient: dzs, transposedWeights: wt, window: window, into: dxs, accumulate: false) } }
        return dx
    }

    /// A 1x1 weight gradient small enough for one chunk (the logits', Mixed_5's Branch_3 at 112x112):
    /// dW = Xᵀ·dZ as one product, its rows (input channels) split over the threads. The chunked
    /// schedule would run this one chunk on one thread; split by rows, every element's sum is
    /// the same, in the same order, as that one product's.
    private static func pointwiseWeightGradientByRows(input x: ActivationSlab, outputGradient dz: ActivationSlab,
                                                      into dw: UnsafeMutablePointer<Float>) {
        let (ci, co, pixels) = (x.channels, dz.channels, dz.pixels)
        guard let packed = ik_thread_scratch(ik_packed_count(pixels, co)) else { fatalError("out of memory") }
        ik_pack(dz.row(0), dz.stride, pixels, co, packed)
        // Row blocks: a multiple of 12 rows (every kernel's register tile divides 12), two per thread.
        let blocks = 2 * Parallel.threadCount
        let rowsPerBlock = ((ci + blocks - 1) / blocks + 11) / 12 * 12
        Parallel.forEach(count: (ci + rowsPerBlock - 1) / rowsPerBlock) { block in
            let r0 = block * rowsPerBlock, rows = min(rowsPerBlock, ci - r0)
            ik_gemm_transposed_a(rows, pixels, co, x.row(0) + r0, x.stride, pixels, pixels * x.stride,
                                 packed, dw + r0 * co, co, 0)
        }
    }

    /// Tensor form of ``weightGradient(input:outputGradient:window:into:)``: dW [KH, KW, CI, CO].
    public static func weightGradient(_ x: Tensor, _ dz: Tensor, window: Window2D) -> Tensor {
        var x = x, dz = dz
        var dw = Tensor(zeros: [window.kernelHeight, window.kernelWidth, x.shape[3], dz.shape[3]])
        x.withSlab { xs in
            dz.withSlab { dzs in
                dw.scalars.withUnsafeMutableBufferPointer { weightGradient(input: xs, outputGradient: dzs, window: window, into: $0.baseAddress!) }
            }
        }
        return dw
    }
}

/// How a weight gradient's output pixels are cut into chunks and the chunks into groups (shared by
/// the float32 and the bfloat16 products).
///
/// A 1x1 stride-1 window reads X itself, so a chunk is any pixel range (across images), sized so
/// its packed dZ fits the L2 budget and every thread gets two chunks. Other windows work on bands
/// of whole output rows of one image, whose input rows, zero-padded, are copied into thread
/// scratch next to the packed dZ rows (≤ the budget together, so both stay in L2 while the kernel
/// rows sweep them).
///
/// Chunks go to a few groups in a fixed pattern (chunk c to group c mod groups), each group summing
/// its chunks' products into its own accumulator, and the accumulators are added in group order:
/// the result does not depend on thread timing.
struct WeightGradientChunking: @unchecked Sendable {
    /// Floats of scratch per chunk (band plus packed dZ).
    static let budget = 1 << 17

    let x: ActivationSlab
    let geometry: WindowGeometry
    let direct: Bool
    let paddedWidth: Int
    /// Output rows per band (1 when direct).
    let bandRows: Int
    /// Whole images per band chunk (1 unless `balanced` or `sideBySide`, and an image fits
    /// several times).
    let imagesPerChunk: Int
    /// A chunk's images lie side by side in its band copy (see ``Band``), else one after another.
    let sideBySide: Bool
    let pixelsPerChunk: Int
    let chunks: Int

    /// `packedRowFloats`: scratch floats one packed dZ row takes. `balanced` (the bfloat16
    /// products): direct chunks small enough that every thread gets two, of an even pixel count
    /// (pixel pairs), and small images grouped into chunks of several, so a chunk's product has a
    /// K of hundreds of pixels rather than 16 or 49 (each product reads and writes all of dW).
    /// Otherwise direct chunks are as large as the budget allows, in a multiple of the group
    /// count, all the same size; and small images of a stride-1 window are grouped too, laid
    /// side by side (the float32 kernel's A operand has one segment stride, no image stride).
    init(_ x: ActivationSlab, _ dz: ActivationSlab, geometry g: WindowGeometry, packedRowFloats: Int, balanced: Bool = false) {
        let w = g.window, threads = Parallel.threadCount
        sideBySide = !balanced && w.strideHeight == 1
        self.x = x
        geometry = g
        direct = w.isPointwise
        paddedWidth = (g.outputWidth - 1) * w.strideWidth + w.kernelWidth
        if direct {
            // At most the budget; balanced, also small enough that every thread gets two chunks
            // (the 7x7 layers' 1568 pixels at batch 32 would otherwise be one chunk on one core).
            let perThread = (dz.pixels + 2 * threads - 1) / (2 * threads)
            let plain = max(64, min(4096, Self.budget / packedRowFloats))
            bandRows = 1
            imagesPerChunk = 1
            if balanced {
                pixelsPerChunk = max(64, min(plain, perThread) + 1) / 2 * 2
            } else {
                // As many chunks as the budget needs, rounded up to a multiple of the group count
                // and made equal, so every thread gets the same work (5 chunks of 341 pixels for a
                // 7x7 layer at batch 32 left one thread a third of the products to do alone).
                let groups = 2 * threads
                var count = (dz.pixels + plain - 1) / plain
                if count > 1 { count = (count + groups - 1) / groups * groups }
                pixelsPerChunk = max(1, (dz.pixels + count - 1) / count)
            }
            chunks = (dz.pixels + pixelsPerChunk - 1) / pixelsPerChunk
            return
        }
        let perRow = w.strideHeight * paddedWidth * x.channels + g.outputWidth * packedRowFloats
        let halo = (w.kernelHeight - w.strideHeight) * paddedWidth * x.channels
        bandRows = max(1, min(g.outputHeight, (Self.budget - halo) / perRow))
        if (balanced || sideBySide) && bandRows == g.outputHeight {
            let perImage = halo + g.outputHeight * perRow
            let perThread = (dz.batch + 2 * threads - 1) / (2 * threads)
            imagesPerChunk = max(1, min(Self.budget / perImage, perThread))
        } else {
            imagesPerChunk = 1
        }
        pixelsPerChunk = imagesPerChunk * bandRows * g.outputWidth
        let bandsPerImage = (g.outputHeight + bandRows - 1) / bandRows
        chunks = imagesPerChunk > 1 ? (dz.batch + imagesPerChunk - 1) / imagesPerChunk : dz.batch * bandsPerImage
    }

    var bandsPerImage: Int { (geometry.outputHeight + bandRows - 1) / bandRows }

    /// A direct chunk's pixels: start and count.
    func pixels(ofChunk chunk: Int) -> (start: Int, count: Int) {
        let start = chunk * pixelsPerChunk
        return (start, min(pixelsPerChunk, x.batch * geometry.outputHeight * geometry.outputWidth - start))
    }

    /// Output rows of one image, or all rows of `images` consecutive images, and the input rows
    /// under them: `inputRows` zero-padded rows per image, `imageFloats` apart in the copy, or
    /// (`sideBySide`) row r of every image in turn, then row r + 1 (``inputRowFloats(of:)``).
    struct Band {
        let image, images, firstOutputRow, outputRows, outputWidth, inputRows, imageFloats: Int
        var pixels: Int { images * outputRows * outputWidth }
        var inputFloats: Int { images * imageFloats }
        /// The band's first output pixel (row of dZ).
        let firstPixel: Int
    }

    func band(ofChunk chunk: Int) -> Band {
        let g = geometry, w = g.window
        let image: Int, images: Int, oh0: Int
        if imagesPerChunk > 1 {
            (image, oh0) = (chunk * imagesPerChunk, 0)
            images = min(imagesPerChunk, x.batch - image)
        } else {
            (image, images, oh0) = (chunk / bandsPerImage, 1, (chunk % bandsPerImage) * bandRows)
        }
        let rows = min(bandRows, g.outputHeight - oh0), inputRows = (rows - 1) * w.strideHeight + w.kernelHeight
        return Band(image: image, images: images, firstOutputRow: oh0, outputRows: rows, outputWidth: g.outputWidth,
                    inputRows: inputRows, imageFloats: (inputRows * paddedWidth * x.channels + 15) / 16 * 16,
                    firstPixel: (image * g.outputHeight + oh0) * g.outputWidth)
    }

    /// The band's input rows, zero-padded, image after image
    /// (``ConvolutionGradient/copyPaddedBand(_:geometry:image:firstRow:rows:paddedWidth:into:)``).
    func copyInput(of band: Band, into buffer: UnsafeMutablePointer<Float>) {
        let rowFloats = paddedWidth * x.channels
        for j in 0..<band.images {
            ConvolutionGradient.copyPaddedBand(x, geometry: geometry, image: band.image + j,
                                               firstRow: band.firstOutputRow * geometry.window.strideHeight - geometry.padTop,
                                               rows: band.inputRows, paddedWidth: paddedWidth,
                                               rowStride: sideBySide ? band.images * rowFloats : rowFloats,
                                               into: buffer + j * (sideBySide ? rowFloats : band.imageFloats))
        }
    }

    /// The float32 product's padded input rows: one row of every image of the band side by side
    /// (`sideBySide`), else one image's row.
    func inputRowFloats(of band: Band) -> Int { (sideBySide ? band.images : 1) * paddedWidth * x.channels }

    /// The band's dZ rows packed as the product's B (`co` columns, band.pixels rows), in the order
    /// of the product's pixels: image by image, or side by side, output row by output row with
    /// each row taking the images in turn (pixel (oh, j, ow)).
    func packOutputGradient(_ dz: ActivationSlab, of band: Band, into packed: UnsafeMutablePointer<Float>) {
        guard sideBySide && band.images > 1 else {
            return ik_pack(dz.row(band.firstPixel), dz.stride, band.pixels, dz.channels, packed)
        }
        let ow = band.outputWidth, perImage = band.outputRows * ow
        for oh in 0..<band.outputRows {
            for j in 0..<band.images {
                ik_pack_rows_at(dz.row(band.firstPixel + j * perImage + oh * ow), dz.stride, ow, dz.channels, band.pixels,
                                (oh * band.images + j) * ow, packed)
            }
        }
    }

    /// dw (`size` floats) = Σ over chunks of `product(chunk, accumulator, first)`, where `product`
    /// writes (first) or adds its chunk's product into the accumulator; grouped as described above.
    func sumInGroups(size: Int, into dw: UnsafeMutablePointer<Float>, workspace: Workspace?,
                     _ product: (Int, UnsafeMutablePointer<Float>, Bool) -> Void) {
        guard size > 0 else { return }
        guard chunks > 0 && x.batch > 0 else { dw.update(repeating: 0, count: size); return }
        let groups = max(1, min(chunks, 2 * Parallel.threadCount))
        let own = workspace ?? Workspace()
        defer { withExtendedLifetime(own) {} }
        let shared = SendableMutablePointer(Self.accumulate(chunks: chunks, groups: groups, size: size,
                                                            workspace: own, product))
        // dw = Σ_groups acc[group], in group order; 4096-float blocks per task.
        let out = SendableMutablePointer(dw)
        Parallel.forEach(count: (size + 4095) / 4096) { block in
            let j0 = block * 4096, j1 = min(size, j0 + 4096)
            (out.pointer + j0).update(from: shared.pointer + j0, count: j1 - j0)
            for group in 1..<groups {
                let src = UnsafePointer(shared.pointer) + group * size
                for j in j0..<j1 { out.pointer[j] += src[j] }
            }
        }
    }

    /// Runs `product(chunk, accumulator, first)` for chunks 0..<`chunks`, chunk c into the
    /// accumulator of group c mod `groups` (`size` floats each, `first` when it is the group's
    /// first chunk, so the product overwrites), the groups in parallel. Returns the accumulators,
    /// `size` floats apart in `workspace` (a group without chunks is zeros). The split is fixed,
    /// so the sums do not depend on thread timing.
    static func accumulate(chunks: Int, groups: Int, size: Int, workspace: Workspace,
                           _ product: (Int, UnsafeMutablePointer<Float>, Bool) -> Void) -> UnsafeMutablePointer<Float> {
        let shared = SendableMutablePointer(workspace.floats(groups * size))
        Parallel.forEach(count: groups) { group in
            let acc = shared.pointer + group * size
            var first = true
            for chunk in stride(from: group, to: chunks, by: groups) {
                product(chunk, acc, first)
                first = false
            }
            if first { acc.update(repeating: 0, count: size) }
        }
        return shared.pointer
    }
}

/// Rows of im2col(X) (one per output pixel; K = KH·KW·CI columns in HWIO order, zeros for taps in
/// the padding) read from a slab, contiguous: the forward GEMM's gathered A.
struct SlabGather: @unchecked Sendable {
    let source: ActivationSlab
    let geometry: WindowGeometry

    func rows(_ start: Int, _ count: Int, into buffer: UnsafeMutablePointer<Float>) {
        let k = geometry.window.kernelHeight * geometry.window.kernelWidth * source.channels
        for r in 0..<count { row(start + r, into: buffer + r * k) }
    }

    /// One receptive field (K floats). When the slab is dense, the taps of one kernel row are
    /// adjacent pixels in memory and go in one copy.
    @inline(__always)
    func row(_ pixel: Int, into out: UnsafeMutablePointer<Float>) {
        let g = geometry, wnd = g.window, ci = source.channels
        let perImage = g.outputHeight * g.outputWidth
        let image = pixel / perImage
        let oh = (pixel % perImage) / g.outputWidth, ow = pixel % g.outputWidth
        let dense = source.stride == ci
        let iw0 = ow * wnd.strideWidth - g.padLeft
        let kw0 = max(0, -iw0), kw1 = min(wnd.kernelWidth, g.inputWidth - iw0)
        var row = out
        for kh in 0..<wnd.kernelHeight {
            let ih = oh * wnd.strideHeight + kh - g.padTop
            if ih < 0 || ih >= g.inputHeight || kw1 <= kw0 {
                row.update(repeating: 0, count: wnd.kernelWidth * ci)
                row += wnd.kernelWidth * ci
                continue
            }
            let base = (image * g.inputHeight + ih) * g.inputWidth + iw0
            if kw0 > 0 { row.update(repeating: 0, count: kw0 * ci) }
            if dense {
                (row + kw0 * ci).update(from: source.row(base + kw0), count: (kw1 - kw0) * ci)
            } else {
                for kw in kw0..<kw1 { (row + kw * ci).update(from: source.row(base + kw), count: ci) }
            }
            if kw1 < wnd.kernelWidth { (row + kw1 * ci).update(repeating: 0, count: (wnd.kernelWidth - kw1) * ci) }
            row += wnd.kernelWidth * ci
        }
    }
}

/// Rows of the transposed receptive fields of dZ: for input pixel (n, ih, iw) and tap (kh, kw), the
/// CO values of dZ[n, oh, ow] with oh·sh = ih + padTop − kh and ow·sw = iw + padLeft − kw (zeros
/// where no such output pixel exists). K′ = KH·KW·CO columns, tap-major.
struct TransposedGather: @unchecked Sendable {
    let gradient: ActivationSlab
    let geometry: WindowGeometry

    func rows(_ start: Int, _ count: Int, into buffer: UnsafeMutablePointer<Float>) {
        let g = geometry, wnd = g.window, co = gradient.channels
        let k = wnd.kernelHeight * wnd.kernelWidth * co
        let perImage = g.inputHeight * g.inputWidth
        for r in 0..<count {
            let pixel = start + r
            let image = pixel / perImage
            let ih = (pixel % perImage) / g.inputWidth, iw = pixel % g.inputWidth
            var row = buffer + r * k
            for kh in 0..<wnd.kernelHeight {
                let t = ih + g.padTop - kh
                let oh = t / wnd.strideHeight
                if t < 0 || t % wnd.strideHeight != 0 || oh >= g.outputHeight {
                    row.update(repeating: 0, count: wnd.kernelWidth * co)
                    row += wnd.kernelWidth * co
                    continue
                }
                for kw in 0..<wnd.kernelWidth {
                    let u = iw + g.padLeft - kw
                    let ow = u / wnd.strideWidth
                    if u < 0 || u % wnd.strideWidth != 0 || ow >= g.outputWidth {
                        row.update(repeating: 0, count: co)
                    } else {
                        row.update(from: gradient.row((image * g.outputHeight + oh) * g.outputWidth + ow), count: co)
                    }
                    row += co
                }
            }
        }
    }
}
