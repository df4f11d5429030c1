/// Matrix multiplication, the engine under every convolution and fully connected layer.
///
/// Shapes: `A` is M×K (row-major; for a convolution, one row per output pixel), `B` is K×N
/// (row-major; the HWIO weights seen as (KH·KW·CI)×CO), `C` is M×N with row stride `ldc`, so a
/// convolution can write straight into its channel slice of a concatenated output.
///
/// `B` is packed once (at weight-load time) into ``PackedMatrix``; `A` is read in place, or gathered
/// block by block through a closure (implicit im2col for K×K convolutions, no full copy).
///
/// NOTE: this is the plain reference implementation; the fast C micro-kernel path replaces the
/// bodies of `pack` and `multiply` and keeps `referenceMultiply` for tests to compare against.
public struct PackedMatrix: @unchecked Sendable {
    /// K: the rows of the original B.
    public let rows: Int
    /// N: the columns of the original B.
    public let columns: Int
    /// The packed elements (layout private to the kernels).
    public let storage: [Float]

    init(rows: Int, columns: Int, storage: [Float]) {
        self.rows = rows
        self.columns = columns
        self.storage = storage
    }
}

public enum GEMM {
    /// Packs a row-major K×N matrix for ``multiply(m:a:lda:b:c:ldc:bias:relu:)``.
    public static func pack(_ b: UnsafeBufferPointer<Float>, rows k: Int, columns n: Int) -> PackedMatrix {
        precondition(b.count >= k * n)
        return PackedMatrix(rows: k, columns: n, storage: Array(b[0..<(k * n)]))
    }

    /// Packs a row-major K×N matrix given as an array.
    public static func pack(_ b: [Float], rows k: Int, columns n: Int) -> PackedMatrix {
        b.withUnsafeBufferPointer { pack($0, rows: k, columns: n) }
    }

    /// C[i, j] = Σ_k A[i, k]·B[k, j] + bias[j] (bias optional), then max(0, ·) when `relu`,
    /// for i < m, j < b.columns. A has row stride `lda`; C has row stride `ldc`.
    /// Uses every worker thread of ``Parallel``.
    public static func multiply(
        m: Int, a: UnsafePointer<Float>, lda: Int, b: PackedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, relu: Bool
    ) {
        referenceMultiply(m: m, a: a, lda: lda, b: b, c: c, ldc: ldc, bias: bias, relu: relu)
    }

    /// The same product, with A produced on demand: `gatherRows(start, count, buffer)` must write
    /// rows start..<start+count of A (K = b.rows elements each, contiguous) into `buffer`.
    /// It may be called concurrently from several threads with disjoint row ranges.
    public static func multiply(
        m: Int, gatherRows: @Sendable (Int, Int, UnsafeMutablePointer<Float>) -> Void, b: PackedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, relu: Bool
    ) {
        let block = 64
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: block * b.rows)
        defer { buffer.deallocate() }
        var start = 0
        while start < m {
            let count = min(block, m - start)
            gatherRows(start, count, buffer)
            referenceMultiply(m: count, a: buffer, lda: b.rows, b: b, c: c + start * ldc, ldc: ldc,
                              bias: bias, relu: relu)
            start += count
        }
    }

    /// The plain triple loop (reference for tests): same contract as `multiply`.
    public static func referenceMultiply(
        m: Int, a: UnsafePointer<Float>, lda: Int, b: PackedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, relu: Bool
    ) {
        let k = b.rows, n = b.columns
        b.storage.withUnsafeBufferPointer { bp in
            for i in 0..<m {
                let row = c + i * ldc
                for j in 0..<n { row[j] = bias?[j] ?? 0 }
                for p in 0..<k {
                    let aip = a[i * lda + p]
                    if aip == 0 { continue }
                    let brow = bp.baseAddress! + p * n
                    for j in 0..<n { row[j] += aip * brow[j] }
                }
                if relu { for j in 0..<n { row[j] = max(row[j], 0) } }
            }
        }
    }
}
