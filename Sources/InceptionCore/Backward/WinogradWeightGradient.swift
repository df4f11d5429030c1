import CInceptionKernels

extension ConvolutionGradient {
    /// dW of a 3×3 stride-1 window (HWIO, 9·CI·CO floats, overwritten) as Winograd F(m×m, 3×3):
    /// dW = Gᵀ [Σ_tiles (A h Aᵀ) ⊙ (Bᵀ d B)] G, with d a tile's (m+2)×(m+2) input patch and h its
    /// m×m values of dZ (see `ik_winograd_output_gradient`). The sum over tiles is (m+2)² GEMMs
    /// Vᵀ_ξ · Ŭ_ξ of CI × tiles × CO, so dW costs (m+2)²/(9·m²) of the direct products
    /// (F(4×4): 4× fewer, F(2×2): 2.25×) plus transforms of O(CI + CO) per tile.
    ///
    /// Many tiles: chunks of tiles (``Winograd/gradientChunkFloats`` of transformed X and dZ per
    /// chunk, in one thread's scratch) go to one group per thread in a fixed pattern; each group
    /// sums its chunks' (m+2)² products into its own CI×CO matrices, and the final transform adds
    /// the groups in group order. Few tiles (``Winograd/wholeBatchTilesPerThread``): all tiles
    /// are transformed first, then each matrix ξ is one GEMM over all of them. Either way the
    /// result does not depend on thread timing.
    static func winogradWeightGradient(tile m: Int, input x: ActivationSlab, outputGradient dz: ActivationSlab,
                                       geometry g: WindowGeometry, into dw: UnsafeMutablePointer<Float>,
                                       workspace: Workspace?) {
        let (ci, co) = (x.channels, dz.channels)
        let tilesY = (g.outputHeight + m - 1) / m, tilesX = (g.outputWidth + m - 1) / m
        let tiles = x.batch * tilesY * tilesX
        guard tiles > 0, ci > 0, co > 0 else { dw.update(repeating: 0, count: 9 * ci * co); return }
        let desc = ik_winograd(
            m: Int32(m), relu: 0, input: x.base, height: x.height, width: x.width, in_channels: ci,
            pad_top: g.padTop, pad_left: g.padLeft,
            out_height: g.outputHeight, out_width: g.outputWidth, out_channels: co,
            tiles_y: tilesY, tiles_x: tilesX, weights: nil, weight_stride: 0,
            output: dz.base, channel_stride: dz.stride, bias: nil, pass_panels: 1,
            in_stride: x.stride, accumulate: 0)
        let own = workspace ?? Workspace()
        withExtendedLifetime(own) {
            withUnsafePointer(to: desc) { w in
                let a2 = (m + 2) * (m + 2), perTile = a2 * (ci + (co + 15) / 16 * 16)
                let (sums, groups): (UnsafeMutablePointer<Float>, Int)
                if tiles <= Winograd.wholeBatchTilesPerThread * Parallel.threadCount
                    && tiles * perTile <= Winograd.wholeBatchGradientFloats {
                    (sums, groups) = (winogradGradientSumsAtOnce(w, tiles: tiles, workspace: own), 1)
                } else {
                    (sums, groups) = winogradGradientSumsInChunks(w, tiles: tiles, perTile: perTile, workspace: own)
                }
                // dW = Gᵀ M G, M the groups' sums added in group order; split over input channels.
                let result = SendableMutablePointer(dw), partial = SendablePointer(UnsafePointer(sums))
                let pieces = min(ci, 4 * Parallel.threadCount)
                Parallel.forEach(count: pieces) { piece in
                    ik_winograd_weight_gradient(Int32(m), partial.pointer, groups, a2 * ci * co, ci, co,
                                                piece * ci / pieces, (piece + 1) * ci / pieces, result.pointer)
                }
            }
        }
    }

    /// The (m+2)² sums M_ξ = Σ_tiles V_ξᵀ · Ŭ_ξ over `tiles` tiles as per-thread groups: chunks of
    /// tiles (``Winograd/gradientChunkFloats`` of transformed X and dZ per chunk, in one thread's
    /// scratch), chunk c into group c mod threads, each group summing into its own CI×CO matrices.
    private static func winogradGradientSumsInChunks(_ w: UnsafePointer<ik_winograd>, tiles: Int, perTile: Int,
                                                     workspace: Workspace) -> (UnsafeMutablePointer<Float>, Int) {
        let (m, ci, co) = (Int(w.pointee.m), w.pointee.in_channels, w.pointee.out_channels)
        let a2 = (m + 2) * (m + 2), threads = Parallel.threadCount
        // Tiles per chunk: as many as the budget holds, at least one 12-row tile of the kernel,
        // and evened out so that every thread gets the same number of chunks.
        let largest = max(12, Winograd.gradientChunkFloats / perTile)
        var chunks = (tiles + largest - 1) / largest
        chunks = (chunks + threads - 1) / threads * threads
        let count = (tiles + chunks - 1) / chunks
        chunks = (tiles + count - 1) / count
        let groups = min(chunks, threads)
        // V_ξ: count rows of CI floats; Ŭ_ξ: a packed count × CO matrix. Matrix strides padded by
        // a cache line so that the (m+2)² streams do not share one L1 set.
        let vs = (count * ci + 15) / 16 * 16 + 16, us = ik_packed_count(count, co) + 16
        let sums = WeightGradientChunking.accumulate(chunks: chunks, groups: groups, size: a2 * ci * co,
                                                     workspace: workspace) { chunk, acc, first in
            let t0 = chunk * count, n = min(count, tiles - t0)
            guard let v = ik_thread_scratch(a2 * (vs + us)) else { fatalError("out of memory") }
            let u = v + a2 * vs
            ik_winograd_input(w, t0, n, v, ci, vs)
            ik_winograd_output_gradient(w, t0, n, u, us, n)
            for xi in 0..<a2 {
                // M_ξ (CI × CO) += V_ξᵀ · Ŭ_ξ: V_ξ's rows are the columns of its transpose.
                ik_gemm_transposed_a(ci, n, co, v + xi * vs, ci, n, n * ci, u + xi * us,
                                     acc + xi * ci * co, co, first ? 0 : 1)
            }
        }
        return (sums, groups)
    }

    /// The same sums with few tiles for their channels (the 7x7 and 14x14 grids), where
    /// per-thread chunks would each read and write all (m+2)²·CI·CO sums for a short K: every
    /// tile transformed first (in parallel, into the calling thread's scratch), then whole
    /// matrices ξ to each thread, one GEMM of K = tiles each.
    private static func winogradGradientSumsAtOnce(_ w: UnsafePointer<ik_winograd>, tiles: Int,
                                                   workspace: Workspace) -> UnsafeMutablePointer<Float> {
        let (m, ci, co) = (Int(w.pointee.m), w.pointee.in_channels, w.pointee.out_channels)
        let a2 = (m + 2) * (m + 2), threads = Parallel.threadCount
        let vs = (tiles * ci + 15) / 16 * 16 + 16, us = ik_packed_count(tiles, co) + 16
        guard let scratch = ik_thread_scratch_slot(1, a2 * (vs + us)) else { fatalError("out of memory") }
        let (v, u) = (SendableMutablePointer(scratch), SendableMutablePointer(scratch + a2 * vs))
        let sums = SendableMutablePointer(workspace.floats(a2 * ci * co))
        let pieces = min(tiles, 4 * threads)
        Parallel.forEach(count: pieces) { piece in
            let t0 = piece * tiles / pieces, t1 = (piece + 1) * tiles / pieces
            ik_winograd_input(w, t0, t1 - t0, v.pointer + t0 * ci, ci, vs)
            ik_winograd_output_gradient(w, t0, t1 - t0, u.pointer + t0 * 16, us, tiles)
        }
        Parallel.forEach(count: a2) { xi in
            ik_gemm_transposed_a(ci, tiles, co, v.pointer + xi * vs, ci, tiles, tiles * ci, u.pointer + xi * us,
                                 sums.pointer + xi * ci * co, co, 0)
        }
        return sums.pointer
    }
}
