import CInceptionKernels
import Foundation

/// A 2-D convolution ready to run: weights packed for the GEMM, with an optional per-channel bias
/// (where a folded batch norm lands) and an optional fused ReLU.
///
/// Shapes: input NHWC [N, H, W, CI]; weights HWIO [KH, KW, CI, CO]; output NHWC [N, OH, OW, CO].
/// As a matrix product: rows are output pixels (M = N·OH·OW), the reduction runs over one
/// receptive field (K = KH·KW·CI, in HWIO order), columns are output channels (CO).
public struct Convolution2D: Sendable {
    public let window: Window2D
    public let inputChannels: Int
    public let outputChannels: Int
    public let bias: [Float]?
    public let relu: Bool
    /// The HWIO weights and the forms derived from them, made on first use and shared by copies.
    let store: ConvolutionWeights

    /// The weights packed for the direct path's GEMM (packed on first use).
    public var weights: PackedMatrix { store.packed }

    /// How ``run(_:batch:height:width:into:channelStride:algorithm:)`` computes the convolution.
    public enum Algorithm: Sendable, Equatable {
        /// GEMM on the input (1x1) or on gathered receptive fields (implicit im2col).
        case direct
        /// Winograd where ``Winograd/mode`` picks it for this shape, otherwise direct.
        case automatic
        /// Winograd F(tile×tile, 3×3), tile 2 or 4 (3×3 stride-1 windows only; others run direct).
        case winograd(tile: Int)
    }

    /// A convolution with HWIO `weights` (shape [KH, KW, CI, CO]), output channel `o` scaled by
    /// `outputScale[o]` when given (where a folded batch norm's scale lands).
    ///
    /// Nothing is copied here: the tensor's storage is shared (copy-on-write) with the caller's,
    /// and each form the kernels read is made from it on first use: the packed GEMM operand
    /// for the direct path, the transformed weights for a Winograd tile size. So an inference
    /// model holds only the forms its input shapes use (a layer that always runs as Winograd
    /// never holds the packed direct weights: at 224×224, batch 8, that is 14 MB less).
    public init(weights: Tensor, outputScale: [Float]? = nil, bias: [Float]?, stride: Int = 1,
                padding: Padding = .same, relu: Bool) {
        precondition(weights.rank == 4, "convolution weights must be HWIO, got \(weights.shape)")
        let s = weights.shape
        precondition(bias == nil || bias!.count == s[3])
        precondition(outputScale == nil || outputScale!.count == s[3])
        window = Window2D(kernel: (s[0], s[1]), stride: (stride, stride), padding: padding)
        inputChannels = s[2]
        outputChannels = s[3]
        store = ConvolutionWeights(hwio: weights, outputScale: outputScale)
        self.bias = bias
        self.relu = relu
    }

    /// The output shape for an NHWC input shape, or nil when the window does not fit.
    public func outputShape(for input: [Int]) -> [Int]? {
        guard input.count == 4, input[3] == inputChannels,
              let g = window.geometry(inputHeight: input[1], inputWidth: input[2]) else { return nil }
        return [input[0], g.outputHeight, g.outputWidth, outputChannels]
    }

    /// Runs the convolution into a fresh tensor (direct unless `algorithm` says otherwise:
    /// training builds its convolutions with this form and keeps the direct path's numbers).
    public func callAsFunction(_ input: Tensor, algorithm: Algorithm = .direct) -> Tensor {
        guard let shape = outputShape(for: input.shape) else {
            preconditionFailure("convolution \(window) with \(inputChannels) input channels does not fit input \(input.shape)")
        }
        var output = Tensor(zeros: shape)
        output.scalars.withUnsafeMutableBufferPointer { out in
            run(input, into: out.baseAddress!, channelStride: outputChannels, algorithm: algorithm)
        }
        return output
    }

    /// Runs the convolution, writing output channel `c` of pixel `p` at `output[p * channelStride + c]`:
    /// with `channelStride` larger than `outputChannels` and `output` pointing at a channel offset,
    /// an Inception branch writes straight into its slice of the concatenated block output.
    public func run(_ input: Tensor, into output: UnsafeMutablePointer<Float>, channelStride: Int,
                    algorithm: Algorithm = .direct) {
        precondition(input.rank == 4 && input.shape[3] == inputChannels, "convolution does not fit input \(input.shape)")
        input.scalars.withUnsafeBufferPointer { source in
            run(source.baseAddress!, batch: input.shape[0], height: input.shape[1], width: input.shape[2],
                into: output, channelStride: channelStride, algorithm: algorithm)
        }
    }

    /// Runs on a raw NHWC input of `inputChannels` channels (the form the inference plan uses, on
    /// its reused buffers; there the 3×3 stride-1 convolutions may run as Winograd, see
    /// ``Winograd/mode``).
    public func run(_ source: UnsafePointer<Float>, batch n: Int, height h: Int, width w: Int,
                    into output: UnsafeMutablePointer<Float>, channelStride: Int, algorithm: Algorithm = .automatic) {
        guard let g = window.geometry(inputHeight: h, inputWidth: w) else {
            preconditionFailure("convolution \(window) does not fit a \(h)x\(w) input")
        }
        let tile: Int?
        switch algorithm {
        case .direct: tile = nil
        case .automatic: tile = Winograd.tileSize(for: g, batch: n, inputChannels: inputChannels, outputChannels: outputChannels)
        case .winograd(let t):
            precondition(t == 2 || t == 4, "Winograd tiles are 2x2 or 4x4, not \(t)x\(t)")
            tile = Winograd.applies(to: window) ? t : nil
        }
        if let tile {
            runWinograd(tile: tile, source, batch: n, geometry: g, into: output, channelStride: channelStride)
            return
        }
        let m = n * g.outputHeight * g.outputWidth
        // A 1x1 stride-1 convolution on NHWC *is* a matrix product with the input as A:
        // every pixel's channels are one contiguous row. No copy.
        if window.isPointwise {
            withBias { biasPointer in
                GEMM.multiply(m: m, a: source, lda: inputChannels, b: weights, c: output, ldc: channelStride,
                              bias: biasPointer, relu: relu)
            }
            return
        }
        if Convolution2D.readsPaddedInput(window: window, channels: inputChannels, outputWidth: g.outputWidth) {
            runOnPaddedInput(source, batch: n, geometry: g, into: output, channelStride: channelStride)
            return
        }
        // Otherwise gather receptive fields row block by row block (implicit im2col): the GEMM
        // asks for rows start..<start+count and we copy each (kh, kw) tap's CI channels, or zeros
        // where the tap falls in the padding.
        let gather = ReceptiveFieldGather(source: source, batch: n, geometry: g, channels: inputChannels)
        withBias { biasPointer in
            GEMM.multiply(m: m, gatherRows: { start, count, buffer in gather.rows(start, count, into: buffer) },
                          b: weights, c: output, ldc: channelStride, bias: biasPointer, relu: relu)
        }
    }
}

extension Convolution2D {
    /// Whether the direct path reads a zero-padded copy of the input in place
    /// (``runOnPaddedInput(_:batch:geometry:into:channelStride:)``) instead of gathering
    /// receptive fields: when a kernel row's inputs are a short run (KW·CI ≤ 64 floats, where a
    /// copy per run costs as much as the multiply-adds: gathering took a third of the 3-channel
    /// 7x7 stem's time, 1.38 → 0.96 ms on one core at 224×224) and output rows are long enough
    /// for whole register tiles (the kernels' row tiles cannot span output rows). The static
    /// variable is a switch for tests.
    nonisolated(unsafe) static var paddedInputPath = true

    static func readsPaddedInput(window: Window2D, channels: Int, outputWidth: Int) -> Bool {
        paddedInputPath && window.kernelWidth * channels <= 64 && outputWidth >= 24
            && !(window.kernelHeight == 1 && window.kernelWidth == 1)
    }

    /// The direct convolution on a zero-padded copy of each image (`ik_conv_window_rows`): the
    /// GEMM kernels read each output row's receptive fields straight from the padded rows, with
    /// no im2col copy. One image at a time, so the copy (in the calling thread's scratch) stays
    /// one image large; output rows are split over the threads.
    func runOnPaddedInput(_ source: UnsafePointer<Float>, batch n: Int, geometry g: WindowGeometry,
                          into output: UnsafeMutablePointer<Float>, channelStride: Int) {
        let w = window, ci = inputChannels
        precondition(g.padTop >= 0 && g.padLeft >= 0)
        let paddedHeight = (g.outputHeight - 1) * w.strideHeight + w.kernelHeight
        let paddedWidth = (g.outputWidth - 1) * w.strideWidth + w.kernelWidth
        let rowFloats = paddedWidth * ci
        guard let padded = ik_thread_scratch_slot(1, paddedHeight * rowFloats) else { fatalError("out of memory") }
        let images = ActivationSlab(base: UnsafeMutablePointer(mutating: source), batch: n, height: g.inputHeight,
                                    width: g.inputWidth, channels: ci)
        let copyChunks = min(paddedHeight, 4 * Parallel.threadCount)
        let packedWeights = weights
        packedWeights.storage.withUnsafeBufferPointer { storage in
            withBias { bias in
                for image in 0..<n {
                    Parallel.forEach(count: copyChunks) { chunk in
                        let r0 = chunk * paddedHeight / copyChunks, r1 = (chunk + 1) * paddedHeight / copyChunks
                        ConvolutionGradient.copyPaddedBand(images, geometry: g, image: image, firstRow: r0 - g.padTop, rows: r1 - r0,
                                                           paddedWidth: paddedWidth, into: padded + r0 * rowFloats)
                    }
                    var descriptor = ik_conv_window(
                        input: padded, padded_height: paddedHeight, padded_width: paddedWidth, channels: ci,
                        kernel_h: w.kernelHeight, kernel_w: w.kernelWidth, stride_h: w.strideHeight, stride_w: w.strideWidth,
                        out_height: g.outputHeight, out_width: g.outputWidth, out_channels: outputChannels,
                        packed: storage.baseAddress! + packedWeights.offset,
                        output: output + image * g.outputHeight * g.outputWidth * channelStride,
                        channel_stride: channelStride, bias: bias, relu: relu ? 1 : 0)
                    withUnsafePointer(to: &descriptor) { d in
                        let pointer = UnsafeRawPointer(d)
                        Parallel.forEach(count: g.outputHeight) { row in
                            ik_conv_window_rows(pointer.assumingMemoryBound(to: ik_conv_window.self), row, row + 1)
                        }
                    }
                }
            }
        }
    }

    func withBias<R>(_ body: (UnsafePointer<Float>?) -> R) -> R { withOptionalPointer(bias, body) }
}

/// The weights of one convolution: HWIO as given (with an optional per-output-channel scale), and
/// the packed forms the kernels read, each made once on first use: the direct path's GEMM
/// operand, and for 3×3 stride-1 windows the Winograd weights per tile size (see ``Winograd``).
/// A class, so that copies of a ``Convolution2D`` (the model's cache, the inference plan's
/// steps) share one set of forms. Training builds its convolutions afresh every step and never
/// makes a Winograd form here.
final class ConvolutionWeights: @unchecked Sendable {
    let hwio: Tensor
    let outputScale: [Float]?
    private let lock = NSLock()
    private var direct: PackedMatrix?
    private var winogradByTile: [Int: WinogradWeights] = [:]

    init(hwio: Tensor, outputScale: [Float]?) {
        self.hwio = hwio
        self.outputScale = outputScale
    }

    /// The transformed weights for F(`tile`×`tile`, 3×3).
    func winograd(tile: Int) -> WinogradWeights {
        lock.lock(); defer { lock.unlock() }
        if let made = winogradByTile[tile] { return made }
        let made = WinogradWeights(tile: tile, hwio: hwio, outputScale: outputScale)
        winogradByTile[tile] = made
        return made
    }

    /// Whether the packed direct form has been made (for tests).
    var hasPackedDirect: Bool { lock.lock(); defer { lock.unlock() }; return direct != nil }

    /// (KH·KW·CI)×CO, scaled, in the GEMM's packed layout.
    var packed: PackedMatrix {
        lock.lock(); defer { lock.unlock() }
        if let direct { return direct }
        let s = hwio.shape
        let made = hwio.scalars.withUnsafeBufferPointer { b in
            withOptionalPointer(outputScale) { scale in GEMM.pack(b, rows: s[0] * s[1] * s[2], columns: s[3], columnScale: scale) }
        }
        direct = made
        return made
    }
}

/// `body` with a pointer to the array's elements, or nil for a nil array.
func withOptionalPointer<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// Copies receptive fields of an NHWC input into rows of an im2col matrix (K = KH·KW·CI, HWIO order).
struct ReceptiveFieldGather: @unchecked Sendable {
    let source: UnsafePointer<Float>
    let batch: Int
    let geometry: WindowGeometry
    let channels: Int

    func rows(_ start: Int, _ count: Int, into buffer: UnsafeMutablePointer<Float>) {
        let g = geometry, wnd = g.window, ci = channels
        let rowLength = wnd.kernelWidth * ci  // one kernel row: KW taps of CI channels
        let k = wnd.kernelHeight * rowLength
        let pixelsPerImage = g.outputHeight * g.outputWidth
        for r in 0..<count {
            let pixel = start + r
            let image = pixel / pixelsPerImage
            let oh = (pixel % pixelsPerImage) / g.outputWidth
            let ow = pixel % g.outputWidth
            var row = buffer + r * k
            let imageBase = source + image * g.inputHeight * g.inputWidth * ci
            // The taps of one kernel row that fall inside the input, kw in first..<last, are
            // adjacent pixels of one input row, and NHWC stores them as one contiguous run of
            // (last − first)·CI floats, in the HWIO order A wants: one copy per kernel row
            // (KW·CI floats at once instead of KW copies of CI; for the 3-channel 7x7 stem
            // convolution, 21 floats per call instead of 3).
            let iw0 = ow * wnd.strideWidth - g.padLeft
            let first = max(0, -iw0), last = min(wnd.kernelWidth, g.inputWidth - iw0)
            for kh in 0..<wnd.kernelHeight {
                let ih = oh * wnd.strideHeight + kh - g.padTop
                if ih < 0 || ih >= g.inputHeight || first >= last {
                    row.update(repeating: 0, count: rowLength)
                } else {
                    if first > 0 { row.update(repeating: 0, count: first * ci) }
                    row.advanced(by: first * ci).update(from: imageBase + (ih * g.inputWidth + iw0 + first) * ci,
                                                        count: (last - first) * ci)
                    if last < wnd.kernelWidth {
                        row.advanced(by: last * ci).update(repeating: 0, count: (wnd.kernelWidth - last) * ci)
                    }
                }
                row += rowLength
            }
        }
    }
}

extension Convolution2D {
    /// The plain direct convolution (seven nested loops), kept beside the fast path for tests.
    public static func reference(_ input: Tensor, weights: Tensor, bias: [Float]?, stride: Int,
                                 padding: Padding, relu: Bool) -> Tensor {
        let (n, h, w, ci) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (kh, kw, co) = (weights.shape[0], weights.shape[1], weights.shape[3])
        precondition(weights.shape[2] == ci)
        let g = Window2D(kernel: (kh, kw), stride: (stride, stride), padding: padding)
            .geometry(inputHeight: h, inputWidth: w)!
        var out = Tensor(zeros: [n, g.outputHeight, g.outputWidth, co])
        for b in 0..<n {
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    for o in 0..<co {
                        var acc: Float = bias?[o] ?? 0
                        for y in 0..<kh {
                            let iy = oy * stride + y - g.padTop
                            if iy < 0 || iy >= h { continue }
                            for x in 0..<kw {
                                let ix = ox * stride + x - g.padLeft
                                if ix < 0 || ix >= w { continue }
                                for c in 0..<ci {
                                    acc += input.scalars[((b * h + iy) * w + ix) * ci + c]
                                        * weights.scalars[((y * kw + x) * ci + c) * co + o]
                                }
                            }
                        }
                        out.scalars[((b * g.outputHeight + oy) * g.outputWidth + ox) * co + o] = relu ? max(acc, 0) : acc
                    }
                }
            }
        }
        return out
    }
}
