import CInceptionKernels
import Foundation

/// Winograd F(m×m, 3×3) for the 3×3 stride-1 convolutions of the inference path (m = 2 or 4).
///
/// The output is cut into m×m tiles; each tile's (m+2)×(m+2) input patch d is transformed to
/// V = Bᵀ d B, the weights once to U = G g Gᵀ, and the tile's outputs are Y = Aᵀ (U ⊙ V) A summed
/// over input channels, so the convolution becomes (m+2)² independent GEMMs
/// (tiles × CI)·(CI × CO) run on the same packed micro-kernels as the direct path. Multiplies per
/// output: 9·CI·CO direct, (m+2)²/m²·CI·CO here (F(2×2): 4, 2.25× fewer; F(4×4): 2.25, 4× fewer),
/// plus the transforms, which cost O(CI + CO) per output instead of O(CI·CO).
///
/// The transforms are C (`winograd.c`, per instruction set); this file transforms the weights,
/// picks the variant and splits the work over ``Parallel``'s threads.
public enum Winograd {
    /// Where the inference path uses Winograd.
    public enum Mode: Int, Sendable, CaseIterable {
        /// Direct convolution everywhere.
        case off = 0
        /// Where it measured faster (the default; see
        /// ``tileSize(batch:outputHeight:outputWidth:inputChannels:outputChannels:)``).
        case automatic = 1
        /// F(2×2, 3×3) on every 3×3 stride-1 convolution.
        case f2 = 2
        /// F(4×4, 3×3) on every 3×3 stride-1 convolution.
        case f4 = 4
    }

    /// The mode in use. Starts from the environment variable `INCEPTION_WINOGRAD`: `0` off,
    /// `2` or `4` to force a tile size, anything else (or unset) automatic. So
    /// `INCEPTION_WINOGRAD=0 inception bench ...` times the direct path for comparison. Do not
    /// change it while convolutions run.
    public static var mode: Mode {
        get { Mode(rawValue: Int(ik_winograd_mode())) ?? .automatic }
        set { ik_winograd_set_mode(Int32(newValue.rawValue)) }
    }

    /// Whether training runs its 3×3 stride-1 convolutions (the forward, the input gradient and
    /// the weight gradient) as Winograd too. Off by default in the library, so a `Trainer` used
    /// directly takes the direct path that the TF-slim training parity tests check; the
    /// environment variable `INCEPTION_WINOGRAD_TRAINING=1` turns it on. The `inception train`
    /// and `inception bench --train` commands turn it on unless given `--no-winograd`: a training
    /// step is arithmetic-bound, and with it steps are ~1.3–1.5× faster (224×224, batch 32, 2
    /// threads: 20.0 → 30.5 images/s on a Zen 4 machine, 40.0 → 57.4 on a Zen 5 one), where the
    /// direct path is no faster than TF-slim's own step. The cost is rounding: Winograd's is ~10×
    /// the direct path's, and on the parity tests' randomly initialised network the dense
    /// max-pool and ReLU kinks turn that into gradient differences of ~1e-3 (relative to the
    /// largest), beyond those tests' tolerances (which the direct path meets with ~2e-5). On a
    /// trained network (the digits model) the weight gradients stay within 1e-4 of the direct
    /// path's (median; 0.6% at worst). Do not change it while a step runs.
    nonisolated(unsafe) public static var inTraining = ProcessInfo.processInfo.environment["INCEPTION_WINOGRAD_TRAINING"] == "1"

    /// The tile size the automatic mode uses for a 3×3 stride-1 convolution call, or nil for the
    /// direct path.
    ///
    /// Decided from measurements on the development machine (2-core AMD EPYC, Zen 5, AVX-512,
    /// 1 MB L2 per core, quiet): `WinogradBenchmarkTests` times every 3×3 layer of Inception V1
    /// in network order (so each layer's weights come cold from memory, as in a forward pass),
    /// and `inception bench` the whole network. Time relative to direct:
    ///
    ///     layer (output, CI·CO)            batch 1: F2    F4     batch 8: F2    F4
    ///     56×56 and 28×28, CI·CO ≥ 12288     0.62–0.69  0.50–0.59      0.67–0.75  0.45–0.51
    ///     28×28, 32→96 (3072)                  1.12      0.93            1.03      0.71
    ///     28×28, 16→32 (512)                   1.29      1.02            1.41      0.98
    ///     14×14, CI·CO ≥ 19968               0.74–0.84  0.88–0.96      0.62–0.68  0.60–0.66
    ///     7×7, CI·CO ≥ 51200                 1.12–1.18  1.85–1.92        0.82     0.71–0.74
    ///     14×14 and 7×7, CI·CO ≤ 6144        1.36–1.61  1.23–1.92      1.04–1.68  0.87–1.30
    ///
    /// Winograd needs enough tiles per call to pay for (m+2)² weight matrices streamed from
    /// memory per call (the 7×7 layers at batch 1 have 16 or 4 tiles) and enough channels to
    /// pay for the transforms and the short GEMMs (K = CI). So: direct below 196 output pixels
    /// per call or CI·CO < 2048 (or < 8192 below 784 pixels), F(2×2) from 196 pixels, F(4×4)
    /// from 392.
    ///
    /// Memory: the transformed weights are (m+2)²/9 times the direct ones (4× for F(4×4)), but a
    /// layer that runs as Winograd never holds its packed direct weights (``Convolution2D`` makes
    /// each form on first use), and the inference plan runs the large early layers image by
    /// image, so at batch 8 the whole network peaks at about 136 MB (it was 189 MB with both
    /// weight forms and whole-batch buffers). Whole network (`inception bench`, random weights,
    /// 2 threads, medians of alternating runs), ms per image at batch 8: direct 7.8, this
    /// policy 4.2–4.5.
    public static func tileSize(batch: Int, outputHeight: Int, outputWidth: Int, inputChannels: Int,
                                outputChannels: Int) -> Int? {
        let pixels = batch * outputHeight * outputWidth, products = inputChannels * outputChannels
        if pixels < 196 || products < 2048 || (products < 8192 && pixels < 784) { return nil }
        return pixels < 392 ? 2 : 4
    }

    /// The tile size training uses for a 3×3 stride-1 convolution (forward, dX or dW) when
    /// ``inTraining`` is on, or nil for the direct path: as
    /// ``tileSize(for:batch:inputChannels:outputChannels:)``, but direct below 1024 output pixels
    /// per call, because training transforms the weights afresh every call ((m+2)²·CI·CO floats
    /// written and read), which small grids do not pay back. Measured per layer, 112×112 with
    /// global pooling, batch 32 (ms, direct / F(4×4), forward, dX, dW): Mixed_5c's 4×4 grid (512
    /// pixels) 1.8/2.0, 2.2/2.6, 3.2/3.1; Mixed_4f's 7×7 (1568 pixels) 3.6/2.5, 3.8/3.1, 4.8/3.8.
    static func trainingTileSize(for g: WindowGeometry, batch: Int, inputChannels: Int, outputChannels: Int) -> Int? {
        guard inTraining, batch * g.outputHeight * g.outputWidth >= 1024 else { return nil }
        return tileSize(for: g, batch: batch, inputChannels: inputChannels, outputChannels: outputChannels)
    }

    /// Whether Winograd F(m×m, 3×3) computes this window: 3×3, stride 1 (any padding).
    static func applies(to w: Window2D) -> Bool {
        w.kernelHeight == 3 && w.kernelWidth == 3 && w.strideHeight == 1 && w.strideWidth == 1
    }

    /// The tile size to use for `window` on this input under the current mode, or nil.
    static func tileSize(for g: WindowGeometry, batch: Int, inputChannels: Int, outputChannels: Int) -> Int? {
        guard applies(to: g.window) else { return nil }
        let mode = self.mode
        switch mode {
        case .off: return nil
        case .f2: return 2
        case .f4: return 4
        case .automatic:
            return tileSize(batch: batch, outputHeight: g.outputHeight, outputWidth: g.outputWidth,
                            inputChannels: inputChannels, outputChannels: outputChannels)
        }
    }

    /// L2 budget per thread for a block of tiles: its transformed inputs and one pass of GEMM
    /// results, (m+2)²·(CI + 16·passPanels) floats per tile. Three quarters of the core's L2
    /// (768 KB of Zen 4/5's 1 MB; measured 2% faster at batch 1 than a third of it, the same at
    /// batch 8), leaving room for the weights streaming through; 384 KB where the L2 size is
    /// unknown.
    static let blockBytes: Int = {
        #if os(Linux)
        let l2 = sysconf(Int32(_SC_LEVEL2_CACHE_SIZE))
        if l2 >= 256 * 1024 { return l2 * 3 / 4 }
        #endif
        return 384 * 1024
    }()
    /// Output-channel panels (16 channels each) per GEMM + output-transform pass: bounds the
    /// GEMM results a block keeps in cache whatever CO is.
    static let passPanels = 8
    /// Blocks are whole 12-row tiles of the AVX-512 micro-kernel (also whole AVX2 / portable
    /// tiles), at most 96 rows (its row block), before evening out over the threads.
    static let blockMultiple = 12
    static let maxBlock = 96
    /// Per-thread blocks when there are at least this many per thread, otherwise the split
    /// schedule (measured: per-thread blocks down to one per thread lose 10–30% on the 14×14
    /// layers at batch 1; the split schedule everywhere is no faster on the large ones).
    static let fusedFactor = 4
    /// Floats of transformed X and dZ per chunk of tiles in training's weight gradient
    /// (``ConvolutionGradient``'s Winograd dW), in one thread's scratch. (A variable so that
    /// tests can make small layers take many chunks per thread.)
    nonisolated(unsafe) static var gradientChunkFloats = 1 << 20
    /// Training's weight gradient transforms all tiles at once (then one GEMM of K = tiles per
    /// matrix ξ) when there are at most this many tiles per thread and their transforms fit
    /// ``wholeBatchGradientFloats``: with few tiles per thread, per-thread chunks are short of K
    /// and each reads and writes all (m+2)²·CI·CO sums. Measured at 224×224, batch 32 (ms per dW):
    /// the 14×14 and 7×7 grids (512 and 128 tiles) Mixed_4f 11.9 → 7.8–8.4, Mixed_5c 5.5 → 3.0;
    /// the 28×28 grids (1568 tiles) lose (Mixed_3b 5.1 → 7.8), so they keep the chunks. Whole
    /// step, alternating A/B: 224 53.0 → 53.8 images/s, 112 with global pooling 157.2 → 158.8.
    static let wholeBatchTilesPerThread = 256
    static let wholeBatchGradientFloats = 1 << 24
}

/// The transformed, packed weights of one convolution for one tile size: (m+2)² matrices
/// U_ξ (CI × CO), each in the packed layout of ``PackedMatrix`` (`ik_pack`'s), `matrixStride`
/// floats apart starting at `storage[offset]` (64-byte aligned).
struct WinogradWeights: @unchecked Sendable {
    let storage: [Float]
    let offset: Int
    let matrixStride: Int

    /// Transforms HWIO 3×3 weights g (output channel o times `outputScale[o]`): U = G g Gᵀ per
    /// (ci, co), written straight into the packed layout by the C kernel (`ik_winograd_weights`,
    /// 16 output channels per vector; no scaled or unpacked copy: this runs during the first
    /// inference pass, when the activations are allocated too, and a transient copy of up to
    /// 3.5 MB would count in the peak RSS).
    init(tile: Int, hwio: Tensor, outputScale: [Float]?) {
        precondition(tile == 2 || tile == 4)
        precondition(hwio.rank == 4 && hwio.shape[0] == 3 && hwio.shape[1] == 3)
        let ci = hwio.shape[2], co = hwio.shape[3]
        let stride = ik_packed_count(ci, co)
        matrixStride = stride
        (storage, offset) = GEMM.alignedFloats((tile + 2) * (tile + 2) * stride) { u in
            hwio.scalars.withUnsafeBufferPointer { source in
                withOptionalPointer(outputScale) { scale in
                    ik_winograd_weights(Int32(tile), source.baseAddress!, ci, co, scale, u, stride)
                }
            }
        }
    }
}

extension Convolution2D {
    func runWinograd(tile m: Int, _ source: UnsafePointer<Float>, batch n: Int, geometry g: WindowGeometry,
                     into output: UnsafeMutablePointer<Float>, channelStride: Int) {
        let u = store.winograd(tile: m)
        withBias { bias in
            u.storage.withUnsafeBufferPointer { storage in
                Winograd.convolve(tile: m, weights: storage.baseAddress! + u.offset, matrixStride: u.matrixStride,
                                  input: source, inputStride: inputChannels, batch: n, geometry: g,
                                  inputChannels: inputChannels, outputChannels: outputChannels,
                                  output: output, channelStride: channelStride, bias: bias, relu: relu, accumulate: false)
            }
        }
    }
}

extension Winograd {
    /// A 3×3 stride-1 convolution with F(`tile`×`tile`, 3×3) and transformed weights `weights`
    /// ((tile+2)² packed CI×CO matrices, `matrixStride` floats apart; see `ik_winograd_weights`).
    /// Input pixels are `inputStride` floats apart; output pixel p, channel c goes to
    /// `output[p·channelStride + c]`, added to what is there with `accumulate`.
    ///
    /// Work split: with enough tiles (at least four blocks per thread), each task is a block of
    /// tiles sized to stay in L2 (``Winograd/blockBytes``), and one thread transforms its inputs,
    /// runs the (m+2)² GEMMs and the output transform back to back in its own scratch, so the
    /// intermediate matrices never leave its cache. With few tiles (the 14×14 and 7×7 layers at
    /// small batches) that would leave threads idle, so all tiles are transformed first (in
    /// parallel, into a buffer of the calling thread), then the GEMMs + output transforms are
    /// split into rectangles of tiles × output channels exactly as ``GEMM`` splits a small-M
    /// product (``GEMM/Plan``).
    public static func convolve(tile m: Int, weights: UnsafePointer<Float>, matrixStride: Int,
                                input source: UnsafePointer<Float>, inputStride: Int, batch n: Int, geometry g: WindowGeometry,
                                inputChannels ci: Int, outputChannels co: Int,
                                output: UnsafeMutablePointer<Float>, channelStride: Int,
                                bias: UnsafePointer<Float>?, relu: Bool, accumulate: Bool,
                                moments: ChannelMoments? = nil) {
        let alpha = m + 2, a2 = alpha * alpha
        let tilesY = (g.outputHeight + m - 1) / m, tilesX = (g.outputWidth + m - 1) / m
        let tiles = n * tilesY * tilesX
        guard tiles > 0, co > 0 else { return }
        let threads = Parallel.threadCount
        let panels = (co + PackedMatrix.panelWidth - 1) / PackedMatrix.panelWidth
        let passPanels = min(panels, Winograd.passPanels)
        let chunkColumns = passPanels * PackedMatrix.panelWidth
        // Tiles per block: fill the L2 budget, in whole 12-row tiles of the AVX-512 kernel.
        let perTile = a2 * (ci + chunkColumns) * MemoryLayout<Float>.stride
        let mult = Winograd.blockMultiple
        let largest = min(Winograd.maxBlock, max(mult, Winograd.blockBytes / perTile / mult * mult))
        // As many blocks as that needs, rounded up to a multiple of the thread count and evened
        // out, so that every thread gets the same number of equal blocks.
        var blocks = (tiles + largest - 1) / largest
        blocks = (blocks + threads - 1) / threads * threads
        let block = (tiles + blocks - 1) / blocks
        blocks = (tiles + block - 1) / block
        // Row stride of V: the GEMM reads CI floats per row. Matrix stride padded by a cache line
        // so that the (m+2)² streams do not all fall in one L1 set (see ik_winograd_multiply).
        func vStride(_ rows: Int) -> Int { (rows * ci + 15) / 16 * 16 + 16 }
        func mFloats(_ rows: Int) -> Int { a2 * (rows * chunkColumns + 16) }

        let desc = ik_winograd(
            m: Int32(m), relu: relu ? 1 : 0, input: source,
            height: g.inputHeight, width: g.inputWidth, in_channels: ci,
            pad_top: g.padTop, pad_left: g.padLeft,
            out_height: g.outputHeight, out_width: g.outputWidth, out_channels: co,
            tiles_y: tilesY, tiles_x: tilesX,
            weights: weights, weight_stride: matrixStride,
            output: output, channel_stride: channelStride, bias: bias, pass_panels: passPanels,
            in_stride: inputStride, accumulate: accumulate ? 1 : 0)
        withUnsafePointer(to: desc) { w in
            if threads == 1 || blocks >= Winograd.fusedFactor * threads {
                let vs = vStride(block)
                moments?.reserve(tasks: blocks, columns: co)
                Parallel.forEach(count: blocks, threads: threads) { index in
                    let t0 = index * block, count = min(block, tiles - t0)
                    guard let v = ik_thread_scratch(a2 * vs + mFloats(block)) else { fatalError("out of memory") }
                    ik_winograd_input(w, t0, count, v, ci, vs)
                    ik_winograd_multiply_moments(w, v, ci, vs, t0, count, 0, panels, v + a2 * vs, moments?.slot(index))
                }
                return
            }
            let vs = vStride(tiles)
            guard let v = ik_thread_scratch_slot(1, a2 * vs) else { fatalError("out of memory") }
            let pieces = min(tiles, 4 * threads)
            Parallel.forEach(count: pieces, threads: threads) { piece in
                let t0 = piece * tiles / pieces, t1 = (piece + 1) * tiles / pieces
                ik_winograd_input(w, t0, t1 - t0, v + t0 * ci, ci, vs)
            }
            let plan = GEMM.Plan(m: tiles, k: a2 * ci, n: co, threads: threads)
            moments?.reserve(tasks: plan.tasks, columns: co)
            Parallel.forEach(count: plan.tasks, threads: plan.threads) { task in
                let slot = moments?.slot(task)
                plan.forEachRectangle(ofTask: task) { rows, range in
                    guard let scratch = ik_thread_scratch(mFloats(rows.count)) else { fatalError("out of memory") }
                    ik_winograd_multiply_moments(w, v + rows.lowerBound * ci, ci, vs, rows.lowerBound, rows.count,
                                                 range.lowerBound, range.upperBound, scratch, slot)
                }
            }
        }
    }
}
