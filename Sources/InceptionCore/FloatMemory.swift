import CInceptionKernels

/// Raw float buffers for the big, long-lived scratch of training and inference (the training
/// step's activation and gradient slots, workspaces, per-thread scratch, the inference arena).
///
/// Written by hand because the system allocator never asks for huge pages: with Linux's
/// transparent huge pages in their usual `madvise` mode, only memory marked `MADV_HUGEPAGE`
/// gets 2 MB pages. A training step streams hundreds of MB through passes that touch dozens of
/// places at once (a Winograd transform writes 36 matrices, a GEMM tile reads 12 rows), and with
/// 4 KB pages those walks miss the TLB. Measured on a 2-core Zen 4, batch 32, alternating runs:
/// 224×224 27.0 → 28.7 images/s, 112×112 with global pooling 92.5 → 96.8, for ~40 MB more peak
/// memory (buffers round up to whole 2 MB pages). Elsewhere (macOS, or with huge pages off) these
/// are plain 64-byte-aligned allocations.
public enum FloatMemory {
    /// `count` uninitialised floats, 64-byte aligned; 2 MB or more are 2 MB aligned and marked for
    /// transparent huge pages. Free with ``free(_:)``.
    public static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        guard let p = ik_alloc_floats(max(count, 1)) else { fatalError("out of memory (\(count) floats)") }
        return p
    }

    /// Frees a buffer from ``allocate(_:)`` (nil is ignored).
    public static func free(_ pointer: UnsafeMutablePointer<Float>?) { ik_free_floats(pointer) }
}
