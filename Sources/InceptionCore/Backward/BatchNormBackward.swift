import CInceptionKernels
import Foundation

/// Batch normalisation in training mode followed by ReLU (slim's `conv2d` → `batch_norm` → ReLU
/// with `is_training=True`), and its gradient, over the channels of an ``ActivationSlab``.
///
/// Shapes: Z [N, H, W, C] (the convolution's output), per-channel vectors [C]; M = N·H·W.
/// - forward: μ = mean(Z), σ² = mean((Z − μ)²) (biased, as TF normalises with), r = 1/√(σ² + ε),
///   x̂ = (Z − μ)·r, Y = max(γ·x̂ + β, 0) (γ = 1 without `gamma`, as slim's default);
///   computed as Y = max((Z − μ)·s + β, 0) with s = γ·r.
/// - backward, from dY = ∂L/∂Y: g = dY where the ReLU passed (γ·x̂ + β > 0), else 0;
///   dβ = Σ g, dγ = Σ g·x̂, dZ = s·(g − Σg/M − x̂·Σ(g·x̂)/M) (TF's fused batch norm gradient).
///   Only Z and the statistics are needed: x̂ and the ReLU mask are recomputed.
/// Sums are accumulated in Double. The moving averages (which use σ²·M/(M − 1), as TF's
/// fused batch norm reports) are the caller's business.
public enum BatchNormTraining {
    /// Per-channel mean and biased variance over every pixel of `z`, accumulated in Double around
    /// a per-channel shift (the first pixel) so that a large mean does not cancel the variance away.
    /// Each task (``SlabChunks``) sums its rows in float blocks of 32 from its first, flushed to
    /// Double; ``ChannelMoments`` reproduces exactly these blocks.
    public static func moments(_ z: ActivationSlab) -> (mean: [Float], variance: [Float]) {
        let c = z.channels, m = z.pixels
        guard m > 0, c > 0 else { return ([Float](repeating: 0, count: c), [Float](repeating: 0, count: c)) }
        let shift = (0..<c).map { z.base[$0] }
        let tasks = SlabChunks.count(rows: m)
        var partial = [Double](repeating: 0, count: tasks * 2 * c)
        partial.withUnsafeMutableBufferPointer { part in
            let out = part.baseAddress!
            shift.withUnsafeBufferPointer { sh in
                let shiftBase = sh.baseAddress!
                Parallel.forEach(count: tasks) { t in
                    // Float sums of (x − shift) and its square over blocks of 32 rows, flushed to Double (C: batchnorm.c).
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * c) { scratch in
                        let rows = SlabChunks.range(t, rows: m)
                        let s1 = out + t * 2 * c
                        ik_bn_moments(z.row(rows.lowerBound), z.stride, rows.count, c, shiftBase, s1, s1 + c, scratch.baseAddress!)
                    }
                }
            }
        }
        var s1 = [Double](repeating: 0, count: c), s2 = s1
        for i in 0..<c {
            for t in 0..<tasks { s1[i] += partial[t * 2 * c + i]; s2[i] += partial[t * 2 * c + c + i] }
        }
        return shift.withUnsafeBufferPointer { moments(shift: $0, s1: s1, s2: s2, count: m) }
    }

    /// Mean and biased variance from the sums of `count` values around `shift`:
    /// s1 = Σ (z − shift), s2 = Σ (z − shift)².
    static func moments(shift: UnsafeBufferPointer<Float>, s1: [Double], s2: [Double], count: Int)
        -> (mean: [Float], variance: [Float]) {
        var mean = [Float](repeating: 0, count: shift.count), variance = mean
        for i in 0..<shift.count {
            let d = s1[i] / Double(count)
            mean[i] = Float(Double(shift[i]) + d)
            variance[i] = Float(max(s2[i] / Double(count) - d * d, 0))
        }
        return (mean, variance)
    }

    /// s = γ/√(σ² + ε) per channel (γ = 1 when nil).
    public static func scale(variance: [Float], gamma: [Float]?, epsilon: Float) -> [Float] {
        (0..<variance.count).map { (gamma?[$0] ?? 1) / (variance[$0] + epsilon).squareRoot() }
    }

    /// Y = (Z − μ)·s + β, then max(·, 0) when `relu`, from slab `z` into slab `y` (same shape; may be
    /// the same memory).
    public static func normalize(_ z: ActivationSlab, mean: [Float], scale: [Float], beta: [Float], relu: Bool,
                                 into y: ActivationSlab) {
        let c = z.channels
        precondition(y.pixels == z.pixels && y.channels == c && mean.count == c && scale.count == c && beta.count == c)
        mean.withUnsafeBufferPointer { mu in scale.withUnsafeBufferPointer { s in beta.withUnsafeBufferPointer { b in
            let (mu, s, b) = (mu.baseAddress!, s.baseAddress!, b.baseAddress!)
            SlabChunks.forEachElementwise(rows: z.pixels) { rows in
                ik_bn_normalize(z.row(rows.lowerBound), z.stride, y.row(rows.lowerBound), y.stride, rows.count, c,
                                mu, s, b, relu ? 1 : 0)
            }
        } } }
    }

    /// The gradient (see the type's documentation): reads `z` and `dy`, writes `dz` (which may be
    /// the same memory as `dy`), returns dβ and dγ. `scale` is γ·r (``scale(variance:gamma:epsilon:)``).
    public static func backward(z: ActivationSlab, outputGradient dy: ActivationSlab, mean: [Float], variance: [Float],
                                scale: [Float], beta: [Float], epsilon: Float, relu: Bool,
                                into dz: ActivationSlab) -> (dBeta: [Float], dGamma: [Float]) {
        let c = z.channels, m = z.pixels
        precondition(dy.pixels == m && dy.channels == c && dz.pixels == m && dz.channels == c)
        let rstd = variance.map { 1 / ($0 + epsilon).squareRoot() }
        let tasks = SlabChunks.count(rows: m)
        var partial = [Double](repeating: 0, count: tasks * 2 * c)
        var dBeta = [Float](repeating: 0, count: c), dGamma = dBeta
        mean.withUnsafeBufferPointer { mu in scale.withUnsafeBufferPointer { s in
        beta.withUnsafeBufferPointer { b in
            let (mu, s, b) = (mu.baseAddress!, s.baseAddress!, b.baseAddress!)
            // Pass 1: Σg and Σg·(z − μ) per channel (Float over 32-row blocks, then Double).
            partial.withUnsafeMutableBufferPointer { part in
                let out = part.baseAddress!
                Parallel.forEach(count: tasks) { t in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * c) { scratch in
                        let rows = SlabChunks.range(t, rows: m)
                        let sg = out + t * 2 * c
                        ik_bn_gradient_sums(z.row(rows.lowerBound), z.stride, dy.row(rows.lowerBound), dy.stride, rows.count, c,
                                            mu, s, b, relu ? 1 : 0, sg, sg + c, scratch.baseAddress!)
                    }
                }
            }
            // dz = s·(g − Σg/M − (z − μ)·r²·Σg(z − μ)/M)
            var a = [Float](repeating: 0, count: c), k = a
            for i in 0..<c {
                var s1 = 0.0, s2 = 0.0
                for t in 0..<tasks { s1 += partial[t * 2 * c + i]; s2 += partial[t * 2 * c + c + i] }
                let r = Double(rstd[i])
                dBeta[i] = Float(s1)
                dGamma[i] = Float(s2 * r)
                a[i] = Float(s1 / Double(m))
                k[i] = Float(s2 * r * r / Double(m))
            }
            a.withUnsafeBufferPointer { a in k.withUnsafeBufferPointer { k in
                let (a, k) = (a.baseAddress!, k.baseAddress!)
                SlabChunks.forEachElementwise(rows: m) { rows in
                    ik_bn_gradient_apply(z.row(rows.lowerBound), z.stride, dy.row(rows.lowerBound), dy.stride,
                                         dz.row(rows.lowerBound), dz.stride, rows.count, c, mu, s, b, relu ? 1 : 0, a, k)
                }
            } }
        } } }
        return (dBeta, dGamma)
    }

    /// Y = max(Z, 0) where Z already holds the bias (a convolution with biases and no batch norm).
    public static func relu(_ z: ActivationSlab, into y: ActivationSlab) {
        let c = z.channels
        SlabChunks.forEachElementwise(rows: z.pixels) { rows in
            for p in rows {
                let src = z.row(p), dst = y.row(p)
                for i in 0..<c { dst[i] = max(src[i], 0) }
            }
        }
    }

    /// The gradient of ``relu(_:into:)`` for a convolution with biases: dZ = dY where Z > 0 (TF's
    /// `ReluGrad`: zero at exactly 0), written to `dz` (may be `dy`'s memory); returns the bias gradient Σ dZ.
    public static func reluBackward(z: ActivationSlab, outputGradient dy: ActivationSlab, into dz: ActivationSlab) -> [Float] {
        let c = z.channels
        SlabChunks.forEachElementwise(rows: z.pixels) { rows in
            for p in rows {
                let zr = z.row(p), gr = dy.row(p), out = dz.row(p)
                for i in 0..<c { out[i] = zr[i] > 0 ? gr[i] : 0 }
            }
        }
        return channelSums(dz)
    }

    /// Σ over pixels, per channel, in Double (a bias gradient).
    public static func channelSums(_ x: ActivationSlab) -> [Float] {
        let c = x.channels, m = x.pixels
        let tasks = SlabChunks.count(rows: m)
        var partial = [Double](repeating: 0, count: max(1, tasks) * c)
        partial.withUnsafeMutableBufferPointer { part in
            let out = part.baseAddress!
            Parallel.forEach(count: tasks) { t in
                let s = out + t * c
                for p in SlabChunks.range(t, rows: m) {
                    let row = x.row(p)
                    for i in 0..<c { s[i] += Double(row[i]) }
                }
            }
        }
        return (0..<c).map { i in Float((0..<max(1, tasks)).reduce(0.0) { $0 + partial[$1 * c + i] }) }
    }

    // MARK: Tensor forms (tests and tools)

    /// Training-mode batch norm (+ ReLU) of an NHWC tensor: (Y, batch mean, biased batch variance).
    public static func forward(_ z: Tensor, beta: [Float], gamma: [Float]?, epsilon: Float, relu: Bool)
        -> (output: Tensor, mean: [Float], variance: [Float]) {
        var z = z
        var y = Tensor(zeros: z.shape)
        var stats: (mean: [Float], variance: [Float]) = ([], [])
        z.withSlab { zs in
            stats = moments(zs)
            let s = scale(variance: stats.variance, gamma: gamma, epsilon: epsilon)
            y.withSlab { ys in normalize(zs, mean: stats.mean, scale: s, beta: beta, relu: relu, into: ys) }
        }
        return (y, stats.mean, stats.variance)
    }

    /// The gradient of ``forward(_:beta:gamma:epsilon:relu:)``: (dZ, dβ, dγ).
    public static func backward(_ z: Tensor, _ dy: Tensor, beta: [Float], gamma: [Float]?, epsilon: Float, relu: Bool)
        -> (inputGradient: Tensor, dBeta: [Float], dGamma: [Float]) {
        var z = z, dy = dy
        var dz = Tensor(zeros: z.shape)
        var result: (dBeta: [Float], dGamma: [Float]) = ([], [])
        z.withSlab { zs in dy.withSlab { dys in dz.withSlab { dzs in
            let (mean, variance) = moments(zs)
            let s = scale(variance: variance, gamma: gamma, epsilon: epsilon)
            result = backward(z: zs, outputGradient: dys, mean: mean, variance: variance, scale: s, beta: beta,
                              epsilon: epsilon, relu: relu, into: dzs)
        } } }
        return (dz, result.dBeta, result.dGamma)
    }
}

/// Batch norm's per-channel statistics gathered by a float32 convolution as it writes Z, each
/// block of Z read while it is still in cache, instead of another pass over the whole of Z from
/// memory. Two forms:
/// - blocks (the 1x1 GEMM's row blocks, padded bands' output rows): Z's first pixel is computed
///   first as the shift, and each 32-row block's float sums are exactly those
///   ``BatchNormTraining/moments(_:)`` takes, added up in its order: the same bits as that pass;
/// - pairwise (Winograd, whose tiles scatter their pixels over rows): per-task (count, mean, M2)
///   merged by Chan, Golub and LeVeque's pairwise update, each output-transform call summing
///   around its own first values; the same statistics to rounding.
/// Either way the result does not depend on which thread ran what. Reusable: keep one per layer,
/// and its memory serves every step.
public final class ChannelMoments {
    private(set) var columns = 0
    private let slotMemory = DoubleSlots()
    private var slots: UnsafeMutablePointer<Double>?
    private let blockMemory = Workspace()
    private var blockStorage: UnsafeMutablePointer<Float>?
    private var tasks = 0, rows = 0
    private var usesBlocks = false
    /// Blocks: rows per task of ``BatchNormTraining/moments(_:)`` and 32-row blocks per task.
    private(set) var rowsPerTask = 0
    private var blocksPerTask = 0

    public init() {}

    /// Empty pairwise slots for `tasks` tasks of `columns` channels.
    func reserve(tasks: Int, columns: Int) {
        slots = slotMemory.zeroed(tasks * 3 * columns)
        (self.tasks, self.columns, usesBlocks) = (tasks, columns, false)
    }

    /// Task `t`'s count, mean and M2 (`columns` Doubles each, in that order).
    func slot(_ t: Int) -> UnsafeMutablePointer<Double> { slots! + t * 3 * columns }

    /// Room for the shift and the block sums of `rows` rows of `columns` channels: the blocks of
    /// ``BatchNormTraining/moments(_:)``, 32 rows from the first of each of its tasks
    /// (``rowsPerTask`` rows; a task's last block is shorter when that is not a multiple of 32).
    func reserveBlocks(rows: Int, columns: Int) {
        rowsPerTask = SlabChunks.rowsPerTask(rows)
        blocksPerTask = (rowsPerTask + 31) / 32
        (self.rows, self.columns, usesBlocks) = (rows, columns, true)
        blockStorage = blockMemory.floats(columns + max(1, blockCount(rows: rows)) * 2 * columns)
    }

    private func blockCount(rows: Int) -> Int {
        let full = rows / rowsPerTask, rest = rows - full * rowsPerTask
        return full * blocksPerTask + (rest + 31) / 32
    }

    /// The shift: Z's first pixel, `columns` floats.
    var shift: UnsafeMutablePointer<Float> { blockStorage! }

    /// The sums of the block that starts at `row` (a task's first row plus a multiple of 32);
    /// the blocks of one task follow each other.
    func blocks(atRow row: Int) -> UnsafeMutablePointer<Float> {
        let task = row / rowsPerTask, block = task * blocksPerTask + (row - task * rowsPerTask) / 32
        return blockStorage! + columns + block * 2 * columns
    }

    /// Per-channel mean and biased variance of Z (`count` pixels), or nil unless every channel
    /// saw exactly `count` values.
    func moments(count: Int) -> (mean: [Float], variance: [Float])? {
        let c = columns
        if usesBlocks {
            guard count == rows else { return nil }
            var s1 = [Double](repeating: 0, count: c), s2 = s1, scratch = [Double](repeating: 0, count: 2 * c)
            ik_bn_add_block_sums(blockStorage! + c, blockCount(rows: count), blocksPerTask, c, &s1, &s2, &scratch)
            return BatchNormTraining.moments(shift: UnsafeBufferPointer(start: shift, count: c), s1: s1, s2: s2, count: count)
        }
        var n = [Double](repeating: 0, count: c), mu = n, m2 = n
        ik_bn_merge_slots(slots!, tasks, c, &n, &mu, &m2)
        guard n.allSatisfy({ $0 == Double(count) }) else { return nil }
        return (mu.map { Float($0) }, (0..<c).map { Float(max(m2[$0] / n[$0], 0)) })
    }
}

/// Per-task Double slots kept from call to call and zeroed for each (the statistics that every
/// training step refills: ``ColumnSums``, ``ChannelMoments``).
final class DoubleSlots {
    private var storage = UnsafeMutableBufferPointer<Double>(start: nil, count: 0)

    deinit { storage.deallocate() }

    /// At least `count` zeroed Doubles, valid until the next call.
    func zeroed(_ count: Int) -> UnsafeMutablePointer<Double> {
        let needed = max(1, count)
        if storage.count < needed {
            storage.deallocate()
            storage = .allocate(capacity: needed)
        }
        UnsafeMutableBufferPointer(rebasing: storage[0..<needed]).update(repeating: 0)
        return storage.baseAddress!
    }
}
