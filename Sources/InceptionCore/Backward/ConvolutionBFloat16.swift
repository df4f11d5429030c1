import CInceptionKernels
import Foundation

/// Training's opt-in mixed precision (`inception train --bf16`, `bench --train --bf16`): every
/// convolution's three products (forward, input gradient, weight gradient) take their operands
/// rounded to bfloat16 and sum in float32 (`ik_gemm_bf16`); weights, activations, batch norm,
/// the optimizer and everything else stay float32. This is mixed precision as PyTorch's CPU
/// autocast and Keras' `mixed_bfloat16` policy do it; on CPUs with AVX512-BF16 one instruction
/// does twice the multiply-adds of a float32 FMA.
///
/// It is not TF-slim's arithmetic: bfloat16 keeps 8 significant bits, so each operand carries a
/// relative rounding of up to 2⁻⁹. On the trained digits model the loss matches float32 to 3e-4
/// and the weight gradients to a median 3% (relative L2; up to 14% in early layers, where the
/// rounding accumulates through the backward pass), which fine-tuning tolerates (the digits run
/// reaches the same validation accuracy), but training-step parity with TF-slim does not hold (the
/// float32 default is what the parity tests check). Off by default; the environment variable
/// INCEPTION_BF16_TRAINING=1 turns it on from the start.
public enum BFloat16Training {
    nonisolated(unsafe) public static var isEnabled = ProcessInfo.processInfo.environment["INCEPTION_BF16_TRAINING"] == "1"

    /// Whether this CPU runs the AVX512-BF16 kernels (else a portable loop computes the same
    /// products, about 200 times slower).
    public static var isNative: Bool { ik_bf16_native() != 0 }
}

/// A K×N float32 matrix rounded to bfloat16 and packed for `ik_gemm_bf16` (panels of 16 columns,
/// rows in adjacent pairs).
struct BFloat16Matrix {
    let rows: Int
    let columns: Int
    let storage: [UInt16]

    /// Packs row-major `b` (row stride `ldb`).
    init(_ b: UnsafePointer<Float>, ldb: Int, rows: Int, columns: Int) {
        self.init(rows: rows, columns: columns) { ik_bf16_pack(b, ldb, rows, columns, $0) }
    }

    /// A rows × columns matrix that `pack` writes in the packed layout (ik_bf16_packed_count values).
    init(rows: Int, columns: Int, pack: (UnsafeMutablePointer<UInt16>) -> Void) {
        self.rows = rows
        self.columns = columns
        storage = [UInt16](unsafeUninitializedCapacity: ik_bf16_packed_count(rows, columns)) { buffer, count in
            pack(buffer.baseAddress!)
            count = buffer.count
        }
    }
}

/// Σ and Σ² of each output column of a bfloat16 product, summed by the kernel's epilogue as it
/// stores them, one slot per parallel task (so the totals, added in task order, do not depend on
/// which thread ran what): batch norm's statistics without another pass over Z.
/// Reusable: keep one per layer, and its memory serves every step.
public final class ColumnSums {
    private(set) var columns = 0
    private let slots = DoubleSlots()
    private var storage: UnsafeMutablePointer<Double>?
    private var tasks = 0

    public init() {}

    /// Zeroed slots for `tasks` tasks of `columns` columns.
    func reserve(tasks: Int, columns: Int) {
        storage = slots.zeroed(tasks * 2 * columns)
        self.tasks = tasks
        self.columns = columns
    }

    /// Task `t`'s Σ (columns Doubles) then Σ² (columns Doubles).
    func slot(_ t: Int) -> UnsafeMutablePointer<Double> { storage! + t * 2 * columns }

    /// Per-column mean and biased variance over `count` rows.
    func moments(count: Int) -> (mean: [Float], variance: [Float]) {
        var mean = [Float](repeating: 0, count: columns), variance = mean
        for j in 0..<columns {
            var s1 = 0.0, s2 = 0.0
            for t in 0..<tasks { s1 += slot(t)[j]; s2 += slot(t)[columns + j] }
            let m = s1 / Double(count)
            mean[j] = Float(m)
            variance[j] = Float(max(s2 / Double(count) - m * m, 0))
        }
        return (mean, variance)
    }
}

/// The A operand of `ik_gemm_bf16` for rows of a slab (one pixel per row, K contiguous channels).
private func plainRows(_ base: UnsafePointer<Float>, rows: Int, stride: Int, k: Int) -> ik_bf16_operand {
    ik_bf16_operand(a: base, line_len: max(rows, 1), line_stride: 0, row_step: stride, seg_len: max(k, 1), seg_stride: 0,
                    col_step: 1, image_rows: 0, image_columns: 0, image_stride: 0)
}

extension ConvolutionGradient {
    /// Rows per task when a bfloat16 product is split by rows: 8 register tiles (one packed A block).
    static let bfloat16RowChunk = 96

    /// ``forward(input:hwio:window:bias:into:)`` in bfloat16 products; with `sums`, also each
    /// output channel's Σ and Σ².
    static func forwardBFloat16(input x: ActivationSlab, hwio w: UnsafePointer<Float>, window: Window2D,
                                bias: UnsafePointer<Float>?, into z: ActivationSlab, sums: ColumnSums? = nil) {
        guard let g = window.geometry(inputHeight: x.height, inputWidth: x.width) else {
            preconditionFailure("convolution \(window) does not fit a \(x.height)x\(x.width) input")
        }
        if let flat = fullyConnectedView(x, g) {
            return forwardBFloat16(input: flat, hwio: w, window: Window2D(1), bias: bias, into: z, sums: sums)
        }
        let k = window.kernelHeight * window.kernelWidth * x.channels
        let packed = BFloat16Matrix(w, ldb: z.channels, rows: k, columns: z.channels)
        convolveBFloat16(input: x, weights: packed, geometry: g, bias: bias, into: z, accumulate: false, sums: sums)
    }

    /// The forward of a convolution that batch norm follows (no bias): Z = conv(X, W), and Z's
    /// per-channel mean and biased variance gathered as Z is written, so that
    /// ``BatchNormTraining/moments(_:)`` need not read Z again from memory. In bfloat16
    /// products (``BFloat16Training``) the kernel's epilogue sums them; in float32 each block of
    /// Z is merged while it is in cache (``ChannelMoments``: Winograd's output transform, the
    /// 1x1 GEMM's row blocks, the rows of padded bands). nil where the path does not gather them
    /// (gathered windows), and the caller computes them. `sums` and `moments` are working
    /// memory, kept by the caller from call to call.
    public static func forwardWithMoments(input x: ActivationSlab, hwio w: UnsafePointer<Float>, window: Window2D,
                                          into z: ActivationSlab, sums: ColumnSums,
                                          moments: ChannelMoments) -> (mean: [Float], variance: [Float])? {
        guard BFloat16Training.isEnabled else {
            guard forward(input: x, hwio: w, window: window, into: z, moments: moments) else { return nil }
            return moments.moments(count: z.pixels)
        }
        forwardBFloat16(input: x, hwio: w, window: window, bias: nil, into: z, sums: sums)
        return sums.moments(count: z.pixels)
    }

    /// ``inputGradient(outputGradient:hwio:window:into:accumulate:workspace:)`` in bfloat16
    /// products: a 1x1 stride-1 window multiplies dZ by Wᵀ; other stride-1 windows convolve dZ
    /// with the kernel turned by 180° (W′ of ``inputGradient(outputGradient:hwio:window:into:accumulate:workspace:)``,
    /// packed straight from HWIO by `ik_bf16_pack_transposed_taps`); strided windows gather
    /// transposed receptive fields (``TransposedGather``). Accumulation adds in the kernel's
    /// epilogue (no temporary).
    static func inputGradientBFloat16(outputGradient dz: ActivationSlab, hwio w: UnsafePointer<Float>, window: Window2D,
                                      into dx: ActivationSlab, accumulate: Bool) {
        guard let g = window.geometry(inputHeight: dx.height, inputWidth: dx.width) else {
            preconditionFailure("convolution \(window) does not fit a \(dx.height)x\(dx.width) input")
        }
        if let flat = fullyConnectedView(dx, g) {
            return inputGradientBFloat16(outputGradient: dz, hwio: w, window: Window2D(1), into: flat, accumulate: accumulate)
        }
        let (ci, co, taps) = (dx.channels, dz.channels, window.kernelHeight * window.kernelWidth)
        guard dx.pixels > 0, ci > 0 else { return }
        let stride1 = window.strideHeight == 1 && window.strideWidth == 1
        // [tap][o][c]: W′ (turned) for a stride-1 convolution of dZ, else Wᵀ per tap in order.
        let rows = taps * co
        let packed = BFloat16Matrix(rows: rows, columns: ci) {
            ik_bf16_pack_transposed_taps(w, taps, ci, co, stride1 ? 1 : 0, $0)
        }
        if stride1 {
            let turned = WindowGeometry(window: window, inputHeight: dz.height, inputWidth: dz.width,
                                        outputHeight: dx.height, outputWidth: dx.width,
                                        padTop: window.kernelHeight - 1 - g.padTop, padLeft: window.kernelWidth - 1 - g.padLeft)
            convolveBFloat16(input: dz, weights: packed, geometry: turned, bias: nil, into: dx, accumulate: accumulate)
            return
        }
        let gather = TransposedGather(gradient: dz, geometry: g)
        packed.storage.withUnsafeBufferPointer {
            multiplyGatheredBFloat16(m: dx.pixels, k: taps * co, gatherRows: gather.rows, packed: $0.baseAddress!, columns: ci,
                                     into: dx, bias: nil, accumulate: accumulate)
        }
    }

    /// Z (+)= conv(X, W) (+ bias) in bfloat16 products with `weights` packed as a (KH·KW·CI) × CO
    /// matrix: a 1x1 stride-1 window reads X's rows in place; a window with non-negative padding
    /// reads zero-padded bands of X in place (as ``convolvePaddedBands(input:weights:geometry:bias:into:moments:)``,
    /// whatever the row length: the product's M is the whole band, so short rows cost nothing
    /// extra); anything else gathers receptive fields (``SlabGather``).
    static func convolveBFloat16(input x: ActivationSlab, weights: BFloat16Matrix, geometry g: WindowGeometry,
                                 bias: UnsafePointer<Float>?, into z: ActivationSlab, accumulate: Bool,
                                 sums: ColumnSums? = nil) {
        let w = g.window, ci = x.channels, co = z.channels
        let k = w.kernelHeight * w.kernelWidth * ci
        precondition(weights.rows == k && weights.columns == co, "weights \(weights.rows)x\(weights.columns) do not fit")
        precondition(z.batch == x.batch && z.height == g.outputHeight && z.width == g.outputWidth)
        guard z.pixels > 0, co > 0 else { return }
        weights.storage.withUnsafeBufferPointer { storage in
            let packed = storage.baseAddress!
            if w.isPointwise {
                let chunk = ConvolutionGradient.bfloat16RowChunk
                let tasks = (z.pixels + chunk - 1) / chunk
                sums?.reserve(tasks: tasks, columns: co)
                Parallel.forEach(count: tasks) { task in
                    let start = task * chunk, rows = min(chunk, z.pixels - start)
                    var a = plainRows(x.row(start), rows: rows, stride: x.stride, k: ci)
                    ik_gemm_bf16_sums(rows, k, co, &a, packed, z.row(start), z.stride, bias, accumulate ? 1 : 0, sums?.slot(task))
                }
                return
            }
            guard g.padTop >= 0 && g.padLeft >= 0 else {
                let gather = SlabGather(source: x, geometry: g)
                multiplyGatheredBFloat16(m: z.pixels, k: k, gatherRows: gather.rows, packed: packed, columns: co,
                                         into: z, bias: bias, accumulate: accumulate, sums: sums)
                return
            }
            // Bands of output rows of one image, their input rows copied zero-padded into scratch
            // (≤ 256 KB); A's row i of a band is output pixel (i / OW, i % OW), its K columns the
            // KH kernel-row segments of KW·CI adjacent floats, a padded row apart. When a whole
            // image fits, small images go several to a task, side by side (A's image level, ≤ 512 KB
            // together, at most a fair share of the batch per thread), so the product's M is
            // ≥ 192 rows instead of 16 or 49 (partly empty register tiles).
            let (oh, ow) = (g.outputHeight, g.outputWidth)
            let paddedWidth = (ow - 1) * w.strideWidth + w.kernelWidth
            let rowFloats = paddedWidth * ci
            let bandRows = max(1, min(oh, ((1 << 16) / rowFloats - w.kernelHeight) / w.strideHeight + 1))
            let bandsPerImage = (oh + bandRows - 1) / bandRows
            let imageFloats = (((oh - 1) * w.strideHeight + w.kernelHeight) * rowFloats + 15) / 16 * 16
            let imagesPerTask = bandsPerImage > 1 ? 1
                : max(1, min((192 + oh * ow - 1) / (oh * ow), (1 << 17) / imageFloats,
                             (x.batch + 2 * Parallel.threadCount - 1) / (2 * Parallel.threadCount)))
            let tasks = imagesPerTask > 1 ? (x.batch + imagesPerTask - 1) / imagesPerTask : x.batch * bandsPerImage
            sums?.reserve(tasks: tasks, columns: co)
            Parallel.forEach(count: tasks) { task in
                let image = imagesPerTask > 1 ? task * imagesPerTask : task / bandsPerImage
                let images = imagesPerTask > 1 ? min(imagesPerTask, x.batch - image) : 1
                let oy0 = imagesPerTask > 1 ? 0 : (task % bandsPerImage) * bandRows
                let rows = min(bandRows, oh - oy0), bandHeight = (rows - 1) * w.strideHeight + w.kernelHeight
                guard let band = ik_thread_scratch_slot(1, images * imageFloats) else { fatalError("out of memory") }
                for j in 0..<images {
                    copyPaddedBand(x, geometry: g, image: image + j, firstRow: oy0 * w.strideHeight - g.padTop, rows: bandHeight,
                                   paddedWidth: paddedWidth, into: band + j * imageFloats)
                }
                var a = ik_bf16_operand(a: band, line_len: ow, line_stride: w.strideHeight * rowFloats, row_step: w.strideWidth * ci,
                                        seg_len: w.kernelWidth * ci, seg_stride: rowFloats, col_step: 1,
                                        image_rows: images > 1 ? oh * ow : 0, image_columns: 0, image_stride: imageFloats)
                ik_gemm_bf16_sums(images * rows * ow, k, co, &a, packed, z.row((image * oh + oy0) * ow), z.stride, bias,
                                  accumulate ? 1 : 0, sums?.slot(task))
            }
        }
    }

    /// Z (+)= A·B in bfloat16 products where A's rows are gathered on demand into thread scratch,
    /// a 96-row block at a time.
    private static func multiplyGatheredBFloat16(m: Int, k: Int, gatherRows: (Int, Int, UnsafeMutablePointer<Float>) -> Void,
                                                 packed: UnsafePointer<UInt16>, columns co: Int, into z: ActivationSlab,
                                                 bias: UnsafePointer<Float>?, accumulate: Bool, sums: ColumnSums? = nil) {
        let chunk = bfloat16RowChunk
        let tasks = (m + chunk - 1) / chunk
        sums?.reserve(tasks: tasks, columns: co)
        Parallel.forEach(count: tasks) { task in
            let start = task * chunk, rows = min(chunk, m - start)
            guard let buffer = ik_thread_scratch(max(1, rows * k)) else { fatalError("out of memory") }
            gatherRows(start, rows, buffer)
            var a = plainRows(buffer, rows: rows, stride: k, k: k)
            ik_gemm_bf16_sums(rows, k, co, &a, packed, z.row(start), z.stride, bias, accumulate ? 1 : 0, sums?.slot(task))
        }
    }

    /// ``weightGradient(input:outputGradient:window:into:workspace:)`` in bfloat16 products: the
    /// same chunks, groups and order, with dZ packed as bfloat16 pairs of pixels and each kernel
    /// row's A (the padded band's windows, transposed) rounded as the kernel packs it.
    static func weightGradientBFloat16(input x: ActivationSlab, outputGradient dz: ActivationSlab, window: Window2D,
                                       into dw: UnsafeMutablePointer<Float>, workspace: Workspace? = nil) {
        guard let g = window.geometry(inputHeight: x.height, inputWidth: x.width) else {
            preconditionFailure("convolution \(window) does not fit a \(x.height)x\(x.width) input")
        }
        precondition(dz.batch == x.batch && dz.height == g.outputHeight && dz.width == g.outputWidth)
        if let flat = fullyConnectedView(x, g) {
            return weightGradientBFloat16(input: flat, outputGradient: dz, window: Window2D(1), into: dw, workspace: workspace)
        }
        let (kh, kw, sh, sw) = (window.kernelHeight, window.kernelWidth, window.strideHeight, window.strideWidth)
        let (ci, co) = (x.channels, dz.channels)
        let rowFloats = kw * ci * co  // one kernel row of dW
        let packedRow = (co + 15) / 16 * 16  // bfloat16 values of one packed dZ row: half as many floats
        let chunking = WeightGradientChunking(x, dz, geometry: g, packedRowFloats: packedRow / 2, balanced: true)
        chunking.sumInGroups(size: kh * rowFloats, into: dw, workspace: workspace) { chunk, acc, first in
            if chunking.direct {
                let (start, rows) = chunking.pixels(ofChunk: chunk)
                guard let scratch = ik_thread_scratch((ik_bf16_packed_count(rows, co) + 1) / 2) else { fatalError("out of memory") }
                let packed = UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt16.self)
                ik_bf16_pack(dz.row(start), dz.stride, rows, co, packed)
                var a = ik_bf16_operand(a: x.row(start), line_len: ci, line_stride: 0, row_step: 1,
                                        seg_len: rows, seg_stride: 0, col_step: x.stride, image_rows: 0, image_columns: 0, image_stride: 0)
                ik_gemm_bf16(ci, rows, co, &a, packed, acc, co, nil, first ? 0 : 1)
                return
            }
            let band = chunking.band(ofChunk: chunk)
            let packedFloats = (ik_bf16_packed_count(band.pixels, co) + 1) / 2
            guard let input = ik_thread_scratch(band.inputFloats + packedFloats) else { fatalError("out of memory") }
            let packed = UnsafeMutableRawPointer(input + band.inputFloats).assumingMemoryBound(to: UInt16.self)
            chunking.copyInput(of: band, into: input)
            ik_bf16_pack(dz.row(band.firstPixel), dz.stride, band.pixels, co, packed)
            let rowStep = chunking.paddedWidth * ci
            // A = the windows, transposed: row (r, kw, c), a kernel row's KW·CI rows adjacent
            // floats (a line), the next kernel row a padded row further; column = output pixel,
            // stride·CI apart, a padded row further at each output row's end. Several small
            // images: image_columns pixels per image, a copied image apart. One product for all
            // kernel rows when a line fills a register tile (the packer then joins two lines in a
            // tile; the stem's 7 rows of 21 are 13 tiles instead of 7 × 2), else one per row.
            let merged = kw * ci >= 12
            for r in stride(from: 0, to: kh, by: merged ? kh : 1) {
                var a = ik_bf16_operand(a: input + r * rowStep, line_len: kw * ci, line_stride: rowStep, row_step: 1,
                                        seg_len: band.outputWidth, seg_stride: sh * rowStep, col_step: sw * ci,
                                        image_rows: 0, image_columns: band.outputRows * band.outputWidth,
                                        image_stride: band.imageFloats)
                ik_gemm_bf16((merged ? kh : 1) * kw * ci, band.pixels, co, &a, packed, acc + r * rowFloats, co, nil, first ? 0 : 1)
            }
        }
    }
}
