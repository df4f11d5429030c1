/// An NHWC activation (or its gradient) seen as a matrix: one row per pixel (N·H·W rows), the
/// `channels` values of pixel `p` at `base[p·stride ..< p·stride + channels]`.
///
/// With `stride == channels` it is a plain NHWC tensor; with `stride > channels` it is a channel
/// slice of a wider buffer, e.g. one branch's part of an Inception block's concatenation, which
/// is how the training pass avoids concatenation copies forward and slice copies backward.
/// A slab does not own its memory.
public struct ActivationSlab: @unchecked Sendable {
    public var base: UnsafeMutablePointer<Float>
    public var batch: Int
    public var height: Int
    public var width: Int
    public var channels: Int
    /// Floats from one pixel's first channel to the next pixel's.
    public var stride: Int

    public init(base: UnsafeMutablePointer<Float>, batch: Int, height: Int, width: Int, channels: Int, stride: Int? = nil) {
        precondition(batch >= 0 && height >= 0 && width >= 0 && channels >= 0)
        self.base = base
        self.batch = batch
        self.height = height
        self.width = width
        self.channels = channels
        self.stride = stride ?? channels
        precondition(self.stride >= channels, "slab stride \(self.stride) below its \(channels) channels")
    }

    /// N·H·W.
    public var pixels: Int { batch * height * width }
    /// [N, H, W, C].
    public var shape: [Int] { [batch, height, width, channels] }

    /// Channels `range` of every pixel (same rows, narrower).
    public func slice(channels range: Range<Int>) -> ActivationSlab {
        precondition(range.lowerBound >= 0 && range.upperBound <= channels)
        return ActivationSlab(base: base + range.lowerBound, batch: batch, height: height, width: width,
                              channels: range.count, stride: stride)
    }

    /// The same rows seen with another spatial shape of equal pixel count (e.g. [N,1,1,C] as [N·1·1]).
    public func reshaped(batch: Int, height: Int, width: Int) -> ActivationSlab {
        precondition(batch * height * width == pixels)
        return ActivationSlab(base: base, batch: batch, height: height, width: width, channels: channels, stride: stride)
    }

    /// Pointer to pixel `p`'s first channel.
    @inline(__always) public func row(_ p: Int) -> UnsafeMutablePointer<Float> { base + p * stride }

    /// Sets every element of the slab (not the gaps between slices) to `value`.
    public func fill(_ value: Float) {
        let s = self
        SlabChunks.forEachElementwise(rows: pixels) { rows in
            if s.stride == s.channels {  // dense: the chunk's rows are one run of memory
                s.row(rows.lowerBound).update(repeating: value, count: rows.count * s.channels)
            } else {
                for p in rows { s.row(p).update(repeating: value, count: s.channels) }
            }
        }
    }

    /// self += other, element-wise (same shape).
    public func add(_ other: ActivationSlab) {
        precondition(other.pixels == pixels && other.channels == channels)
        let s = self
        SlabChunks.forEachElementwise(rows: pixels) { rows in
            for p in rows {
                let d = s.row(p), o = other.row(p)
                for c in 0..<s.channels { d[c] += o[c] }
            }
        }
    }

    /// Copies `other` (same shape) into self.
    public func copy(from other: ActivationSlab) {
        precondition(other.pixels == pixels && other.channels == channels)
        let s = self
        SlabChunks.forEachElementwise(rows: pixels) { rows in
            for p in rows { s.row(p).update(from: other.row(p), count: s.channels) }
        }
    }

    /// The slab's elements as a dense NHWC tensor (a copy; for tests and tools).
    public func tensor() -> Tensor {
        var out = Tensor(zeros: shape)
        out.scalars.withUnsafeMutableBufferPointer { o in
            for p in 0..<pixels { (o.baseAddress! + p * channels).update(from: row(p), count: channels) }
        }
        return out
    }
}

/// How slab loops are cut into tasks.
///
/// Loops that sum over rows (batch norm's statistics and gradient sums, bias gradients) take
/// ``count(rows:)`` tasks of ``range(_:rows:)``: a few thousand rows each, about four per thread
/// at most. Their results depend on the cut (each task sums its rows, then the tasks' sums are
/// added), so it stays fixed (``ChannelMoments`` reproduces it).
///
/// Element-wise loops, whose results do not depend on the cut, use
/// ``forEachElementwise(rows:_:)``'s finer one: about sixteen tasks per thread, 64 rows at
/// least. With four, the core that joins a pass late, or is slowed by the host, left the other
/// idle for up to a task at every pass (batch norm's normalize alone: ~3 ms of a 112×112
/// training step spent waiting, measured with per-call timers; ~0.1 ms with sixteen).
enum SlabChunks {
    static func rowsPerTask(_ rows: Int) -> Int {
        let threads = Parallel.threadCount
        return max(256, (rows + 4 * threads - 1) / (4 * threads))
    }
    static func count(rows: Int) -> Int { rows == 0 ? 0 : (rows + rowsPerTask(rows) - 1) / rowsPerTask(rows) }
    static func range(_ part: Int, rows: Int) -> Range<Int> {
        let per = rowsPerTask(rows)
        return (part * per)..<min(rows, (part + 1) * per)
    }

    /// `body(rows)` for consecutive ranges covering `0..<rows`, spread over the threads.
    static func forEachElementwise(rows: Int, _ body: (Range<Int>) -> Void) {
        let threads = Parallel.threadCount
        let per = max(64, (rows + 16 * threads - 1) / (16 * threads))
        Parallel.forEach(count: (rows + per - 1) / per) { t in body((t * per)..<min(rows, (t + 1) * per)) }
    }
}

extension Tensor {
    /// Runs `body` with a slab over this NHWC tensor's storage (valid only inside `body`).
    public mutating func withSlab<R>(_ body: (ActivationSlab) throws -> R) rethrows -> R {
        precondition(rank == 4, "a slab needs an NHWC tensor, got \(shape)")
        let s = shape
        return try scalars.withUnsafeMutableBufferPointer { p in
            try body(ActivationSlab(base: p.baseAddress!, batch: s[0], height: s[1], width: s[2], channels: s[3]))
        }
    }
}

/// Channel concatenation (an Inception block's output) and its gradient.
///
/// Forward: Y [N, H, W, ΣCᵢ] = concat(X₀, X₁, …) along channels (``Ops/concatChannels(_:)``; the
/// training pass gets it for free by writing each branch into its ``ActivationSlab`` slice).
/// Gradient: ∂L/∂Xᵢ = the channels of ∂L/∂Y that Xᵢ occupies (``ActivationSlab/slice(channels:)``).
public enum ConcatGradient {
    /// The gradients of the parts of a channel concatenation, given their channel counts in order.
    public static func split(_ dy: Tensor, channels: [Int]) -> [Tensor] {
        precondition(dy.rank == 4 && channels.reduce(0, +) == dy.shape[3])
        var dy = dy
        var offset = 0
        return channels.map { c in
            defer { offset += c }
            return dy.withSlab { $0.slice(channels: offset..<(offset + c)).tensor() }
        }
    }
}

/// A growable scratch buffer reused across calls (one user at a time), so that the big temporary
/// buffers of the gradient kernels are not allocated and page-faulted on every call.
public final class Workspace: @unchecked Sendable {
    private var pointer: UnsafeMutablePointer<Float>?
    public private(set) var capacity = 0

    public init() {}
    deinit { FloatMemory.free(pointer) }

    /// At least `count` floats, valid until the next call (contents undefined).
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity || pointer == nil {
            FloatMemory.free(pointer)
            capacity = max(count, 1)
            pointer = FloatMemory.allocate(capacity)
        }
        return pointer!
    }
}
