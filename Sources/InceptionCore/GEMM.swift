import CInceptionKernels

/// Matrix multiplication, the engine under every convolution and fully connected layer.
///
/// Shapes: `A` is M×K (row-major; for a convolution, one row per output pixel), `B` is K×N
/// (row-major; the HWIO weights seen as (KH·KW·CI)×CO), `C` is M×N with row stride `ldc`, so a
/// convolution can write straight into its channel slice of a concatenated output.
///
/// `B` is packed once (at weight-load time) into ``PackedMatrix``; `A` is read in place, or gathered
/// block by block through a closure (implicit im2col for K×K convolutions, no full copy).
///
/// The arithmetic is done by register-blocked C micro-kernels (`CInceptionKernels`) chosen at run
/// time for the CPU: AVX-512 (12×32 tile), AVX2+FMA (6×16 tile) or portable C (4×16 tile, compiler
/// vectorised). All accumulate in float32. Work is split over ``Parallel``'s threads by rows of C
/// when M is large and by column panels when it is small, so every core is busy for every shape.
public struct PackedMatrix: @unchecked Sendable {
    /// K: the rows of the original B.
    public let rows: Int
    /// N: the columns of the original B.
    public let columns: Int
    /// The packed elements (layout private to the kernels): panels of 16 columns, each K×16
    /// row-major with zero padding past N, starting at `storage[offset]`.
    public let storage: [Float]
    /// Index in `storage` of the first packed element (chosen so it is 64-byte aligned).
    let offset: Int

    init(rows: Int, columns: Int, storage: [Float], offset: Int) {
        self.rows = rows
        self.columns = columns
        self.storage = storage
        self.offset = offset
    }

    /// Columns per packed panel.
    static let panelWidth = Int(IK_PANEL_WIDTH)

    /// The number of 16-column panels.
    var panels: Int { (columns + PackedMatrix.panelWidth - 1) / PackedMatrix.panelWidth }

    /// B[k, j] of the original matrix (slow; for tests and the reference).
    func element(_ k: Int, _ j: Int) -> Float {
        let w = PackedMatrix.panelWidth
        return storage[offset + (j / w) * w * rows + k * w + j % w]
    }
}

public enum GEMM {
    /// The micro-kernel families.
    public enum Kernel: Int, Sendable, CaseIterable {
        /// Plain C, vectorised by the compiler for the baseline target (any CPU).
        case portable = 0
        /// AVX2 + FMA (x86-64 since Haswell / Zen).
        case avx2 = 1
        /// AVX-512F (Skylake-X, Zen 4 and later).
        case avx512 = 2
    }

    /// The kernel in use. Defaults to the best the CPU supports (the environment variable
    /// `INCEPTION_GEMM_ISA=portable|avx2|avx512` lowers the default). Setting a kernel the CPU
    /// lacks selects the best supported one below it. Do not change it while multiplications run.
    public static var kernel: Kernel {
        get { Kernel(rawValue: Int(ik_gemm_isa())) ?? .portable }
        set { _ = ik_gemm_set_isa(Int32(newValue.rawValue)) }
    }

    /// Whether this CPU can run `kernel`.
    public static func isSupported(_ kernel: Kernel) -> Bool {
        switch kernel {
        case .portable: return true
        case .avx2: return ik_cpu_has_avx2_fma() != 0
        case .avx512: return ik_cpu_has_avx512() != 0
        }
    }

    /// Packs a row-major K×N matrix for ``multiply(m:a:lda:b:c:ldc:bias:relu:)``, column j times
    /// `columnScale[j]` when given (a folded batch norm, without a scaled copy of B).
    public static func pack(_ b: UnsafeBufferPointer<Float>, rows k: Int, columns n: Int,
                            columnScale: UnsafePointer<Float>? = nil) -> PackedMatrix {
        pack(b, rows: k, columns: n, columnScale: columnScale) { _, _ in }
    }

    /// ``pack(_:rows:columns:columnScale:)``, calling `afterPanel(panel, packed)` on the thread
    /// that packed each panel, right after it (`packed`: the whole packed matrix's start).
    static func pack(_ b: UnsafeBufferPointer<Float>, rows k: Int, columns n: Int, columnScale: UnsafePointer<Float>? = nil,
                     afterPanel: (_ panel: Int, _ packed: UnsafePointer<Float>) -> Void) -> PackedMatrix {
        precondition(k >= 0 && n >= 0 && b.count >= k * n)
        let count = ik_packed_count(k, n)
        let (storage, offset) = alignedFloats(count) { packed in
            guard count > 0 else { return }
            let source = b.baseAddress!
            forEachPanel(columns: n) { panel in
                // Panel p of the whole matrix is panel 0 of its own 16 columns (same K).
                let j0 = panel * PackedMatrix.panelWidth
                ik_pack_scaled(source + j0, n, k, min(PackedMatrix.panelWidth, n - j0), columnScale.map { $0 + j0 },
                               packed + j0 * k)
                afterPanel(panel, packed)
            }
        }
        return PackedMatrix(rows: k, columns: n, storage: storage, offset: offset)
    }

    /// `body(panel)` for each panel of 16 columns of an N-column packed matrix, spread over the
    /// threads: training packs its weights afresh every step (they change), and one thread
    /// packing them all left the other idle for milliseconds per step.
    static func forEachPanel(columns n: Int, _ body: (Int) -> Void) {
        Parallel.forEach(count: (n + PackedMatrix.panelWidth - 1) / PackedMatrix.panelWidth, body)
    }

    /// An array holding `count` floats from a 64-byte boundary at `storage[offset]` (the packed
    /// layouts' alignment: each panel row is one cache line), written by `fill`, which must
    /// write all `count` (only the alignment slack around them is zeroed here).
    static func alignedFloats(_ count: Int, fill: (UnsafeMutablePointer<Float>) -> Void) -> (storage: [Float], offset: Int) {
        let slack = 15  // room to start on a 64-byte boundary
        var offset = 0
        let storage = [Float](unsafeUninitializedCapacity: count + slack) { buffer, initialized in
            let base = buffer.baseAddress!
            offset = ((64 - Int(bitPattern: base) % 64) % 64) / MemoryLayout<Float>.stride
            base.initialize(repeating: 0, count: offset)
            (base + offset + count).initialize(repeating: 0, count: slack - offset)
            fill(base + offset)
            initialized = count + slack
        }
        return (storage, offset)
    }

    /// Packs a row-major K×N matrix given as an array.
    public static func pack(_ b: [Float], rows k: Int, columns n: Int) -> PackedMatrix {
        b.withUnsafeBufferPointer { pack($0, rows: k, columns: n) }
    }

    /// C[i, j] = Σ_k A[i, k]·B[k, j] + bias[j] (bias optional), then max(0, ·) when `relu`,
    /// for i < m, j < b.columns. A has row stride `lda`; C has row stride `ldc`; columns of C at
    /// and past `b.columns` are never touched. Uses every worker thread of ``Parallel``.
    public static func multiply(
        m: Int, a: UnsafePointer<Float>, lda: Int, b: PackedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, relu: Bool
    ) {
        precondition(m >= 0 && lda >= b.rows && ldc >= b.columns)
        guard m > 0, b.columns > 0 else { return }
        let k = b.rows, n = b.columns
        let plan = Plan(m: m, k: k, n: n, threads: Parallel.threadCount)
        b.storage.withUnsafeBufferPointer { storage in
            let packed = storage.baseAddress! + b.offset
            Parallel.forEach(count: plan.tasks, threads: plan.threads) { task in
                plan.forEachRectangle(ofTask: task) { rows, panels in
                    ik_gemm(rows.count, k, n, a + rows.lowerBound * lda, lda,
                            packed, panels.lowerBound, panels.upperBound,
                            c + rows.lowerBound * ldc, ldc, bias, relu ? 1 : 0)
                }
            }
        }
    }

    /// ``multiply(m:a:lda:b:c:ldc:bias:relu:)`` without ReLU, for B given unpacked (K × N, row
    /// stride N), also writing batch norm's sums of C (``ChannelMoments``' blocks) for each block
    /// while it is in L2 (`ik_gemm_block_sums`). The blocks are summed around C's row 0 (the
    /// shift), so row 0 comes first: B is packed here (``pack(_:rows:columns:columnScale:)``), and
    /// each task of the pack also multiplies A's row 0 by the panel it has just packed, while the
    /// panel is in cache. (Row 0 computed after the pack, by
    /// one thread, read all of B again from memory while the other thread waited: ~300 µs per
    /// 1x1 layer, 5.6 ms of a 112×112 training step; per panel it is the same kernel, so the same
    /// bits.) Then tasks of up to 96 rows (32 when M is short, for balance) cut within the
    /// blocks' own tasks, so that every block lies in one call.
    static func multiply(m: Int, a: UnsafePointer<Float>, lda: Int, unpacked b: UnsafePointer<Float>, rows k: Int,
                         columns n: Int, c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?,
                         moments: ChannelMoments) {
        precondition(m >= 0 && lda >= k && ldc >= n)
        moments.reserveBlocks(rows: m, columns: n)
        guard m > 0, n > 0 else { return }
        let packedB = pack(UnsafeBufferPointer(start: b, count: k * n), rows: k, columns: n) { panel, packed in
            ik_gemm(1, k, n, a, lda, packed, panel, panel + 1, c, ldc, bias, 0)
        }
        moments.shift.update(from: c, count: n)
        let plan = Plan(m: m, k: k, n: n, threads: Parallel.threadCount)
        let per = moments.rowsPerTask, unit = plan.rowChunk > 0 ? Plan.chunkRows : 32
        let unitsPerTask = (per + unit - 1) / unit, fullTasks = m / per
        let units = fullTasks * unitsPerTask + (m - fullTasks * per + unit - 1) / unit
        packedB.storage.withUnsafeBufferPointer { storage in
            let packed = storage.baseAddress! + packedB.offset
            Parallel.forEach(count: units, threads: plan.threads) { u in
                let task = u / unitsPerTask, start = task * per + (u % unitsPerTask) * unit
                let rows = min(unit, (task + 1) * per - start, m - start)
                ik_gemm_block_sums(rows, k, n, a + start * lda, lda, packed, 0, packedB.panels,
                                   c + start * ldc, ldc, bias, moments.shift, moments.blocks(atRow: start))
            }
        }
    }

    /// The same product, with A produced on demand: `gatherRows(start, count, buffer)` must write
    /// rows start..<start+count of A (K = b.rows elements each, contiguous) into `buffer`.
    /// It may be called concurrently from several threads with disjoint row ranges.
    ///
    /// Each thread gathers a block of rows small enough to stay in its L2 cache into its own
    /// buffer and multiplies it at once. When M is too small to give every thread four row
    /// blocks, all of A is gathered first and the threads split rows and columns in equal units
    /// as in the pointer variant.
    public static func multiply(
        m: Int, gatherRows: @Sendable (Int, Int, UnsafeMutablePointer<Float>) -> Void, b: PackedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, relu: Bool
    ) {
        precondition(m >= 0 && ldc >= b.columns)
        guard m > 0, b.columns > 0 else { return }
        let k = b.rows, n = b.columns
        let threads = Parallel.threadCount
        let chunk = gatherRowBlock(k: k)
        let chunks = (m + chunk - 1) / chunk

        if threads > 1 && chunks < 4 * threads {
            // Small M: too few blocks to balance the threads. Gather all of A (in parallel; at
            // most 4·threads blocks of 256 KB), then split it like the pointer variant does.
            guard let a = ik_thread_scratch(max(1, m * k)) else { fatalError("out of memory") }
            let pieces = min(threads, (m + 11) / 12)
            let per = (m + pieces - 1) / pieces
            Parallel.forEach(count: pieces, threads: threads) { piece in
                let start = piece * per, count = min(per, m - start)
                if count > 0 { gatherRows(start, count, a + start * k) }
            }
            multiply(m: m, a: a, lda: max(k, 1), b: b, c: c, ldc: ldc, bias: bias, relu: relu)
            return
        }

        b.storage.withUnsafeBufferPointer { storage in
            let packed = storage.baseAddress! + b.offset
            let panels = b.panels
            Parallel.forEach(count: chunks, threads: threads) { index in
                let start = index * chunk, count = min(chunk, m - start)
                guard let a = ik_thread_scratch(max(1, count * k)) else { fatalError("out of memory") }
                gatherRows(start, count, a)
                ik_gemm(count, k, n, a, max(k, 1), packed, 0, panels, c + start * ldc, ldc, bias, relu ? 1 : 0)
            }
        }
    }

    /// Rows per gathered block: about 256 KB of A (half of a Zen 3 L2), a multiple of 12 rows
    /// (the AVX-512 tile height; also a multiple of the AVX2 and portable ones), 24...96 rows.
    static func gatherRowBlock(k: Int) -> Int {
        let rows = (256 * 1024 / MemoryLayout<Float>.stride) / max(k, 1)
        return min(96, max(24, rows / 12 * 12))
    }

    /// How one multiplication is cut into tasks for the thread pool.
    ///
    /// Large M (at least four 96-row chunks per thread): tasks are chunks of 96 rows (the
    /// kernels' own row block) × all columns; each task reads all of B but only its rows of A.
    ///
    /// Small M (e.g. the 7×7 layers, M = 49 at batch 1): the product is cut into equal units of
    /// 12 rows (the AVX-512 tile height; the last unit takes the remainder) × 32 columns (a pair
    /// of panels, the AVX-512 tile width), numbered pair by pair, and each task takes a run of
    /// consecutive units. The number of tasks (T…4T for T threads) is the one whose dynamic
    /// schedule finishes first, so both cores get the same work to within a unit. Units are
    /// aligned to the same 12-row tiles whatever the split, so results do not depend on the
    /// thread count.
    struct Plan {
        let threads: Int
        let tasks: Int
        let m: Int
        let panels: Int
        /// Large M: rows per task; 0 in the small-M mode.
        let rowChunk: Int
        /// Small M: row units and units in all.
        let rowUnits: Int
        let units: Int

        static let tileRows = 12
        static let chunkRows = 96

        init(m: Int, k: Int, n: Int, threads requested: Int) {
            self.m = m
            panels = (n + PackedMatrix.panelWidth - 1) / PackedMatrix.panelWidth
            let pairs = (panels + 1) / 2
            let flops = 2 * m * max(k, 1) * n
            // Below ~0.25 MFLOP (a couple of microseconds) a second thread costs more than it saves.
            var threads = flops < 250_000 ? 1 : max(1, requested)
            let chunks = (m + Plan.chunkRows - 1) / Plan.chunkRows
            rowUnits = max(1, m / Plan.tileRows)
            units = rowUnits * pairs
            threads = min(threads, units)
            self.threads = threads
            if threads == 1 {
                rowChunk = m; tasks = 1
            } else if chunks >= 4 * threads {
                rowChunk = Plan.chunkRows; tasks = chunks
            } else {
                rowChunk = 0
                tasks = Plan.bestTaskCount(units: units, threads: threads)
            }
        }

        /// The task count in T…4T (and `units` itself when smaller) whose greedy dynamic schedule
        /// of near-equal runs of units has the shortest makespan; ties go to more tasks (better
        /// balance when a core is shared with another process).
        static func bestTaskCount(units: Int, threads: Int) -> Int {
            var best = 0, bestSpan = Int.max
            var candidates = Array(stride(from: threads, through: 4 * threads, by: 1))
            if units < 4 * threads { candidates = candidates.filter { $0 < units } + [units] }
            var finish = [Int](repeating: 0, count: threads)
            for count in candidates {
                for t in 0..<threads { finish[t] = 0 }
                for task in 0..<count {  // tasks are claimed in order by the first free thread
                    let size = (task + 1) * units / count - task * units / count
                    var first = 0
                    for t in 1..<threads where finish[t] < finish[first] { first = t }
                    finish[first] += size
                }
                let span = finish.max()!
                if span <= bestSpan { best = count; bestSpan = span }
            }
            return best
        }

        /// Calls `body(rows, panels)` for the rectangles of C that task `index` computes.
        @inline(__always)
        func forEachRectangle(ofTask index: Int, _ body: (Range<Int>, Range<Int>) -> Void) {
            if rowChunk > 0 {
                let start = index * rowChunk
                body(start..<min(m, start + rowChunk), 0..<panels)
                return
            }
            // Units u0..<u1, numbered pair-major: unit u is row unit u % rowUnits of pair u / rowUnits.
            let u0 = index * units / tasks, u1 = (index + 1) * units / tasks
            var u = u0
            while u < u1 {
                let pair = u / rowUnits, r0 = u % rowUnits
                let r1 = min(rowUnits, r0 + (u1 - u))
                let rows = (r0 * Plan.tileRows)..<(r1 == rowUnits ? m : r1 * Plan.tileRows)
                body(rows, (2 * pair)..<min(panels, 2 * pair + 2))
                u += r1 - r0
            }
        }
    }

    /// The plain triple loop (reference for tests): same contract as `multiply`.
    public static func referenceMultiply(
        m: Int, a: UnsafePointer<Float>, lda: Int, b: PackedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, relu: Bool
    ) {
        let k = b.rows, n = b.columns, w = PackedMatrix.panelWidth
        b.storage.withUnsafeBufferPointer { storage in
            let bp = storage.baseAddress! + b.offset
            for i in 0..<m {
                let row = c + i * ldc
                for j in 0..<n {
                    let column = bp + (j / w) * w * k + j % w  // B[0, j]; B[p, j] at column[p·16]
                    var sum: Float = bias?[j] ?? 0
                    for p in 0..<k { sum += a[i * lda + p] * column[p * w] }
                    row[j] = relu ? max(sum, 0) : sum
                }
            }
        }
    }
}
