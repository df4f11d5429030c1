import Foundation

/// Local response normalization (``LocalResponseNorm``, Caffe's LRN across channels) on
/// ``ActivationSlab``s, and its input gradient.
///
/// Per pixel, with `a` its C input channels, n = size, h = n / 2, scale = α / n and
/// window(j) = [j − h, j + h] ∩ [0, C):
///
///     s_j = k + scale · Σ_{c ∈ window(j)} a_c²,     y_j = a_j · s_j^(−β)
///
/// Gradient: y_j depends on a_i directly (i = j) and through s_j whenever i ∈ window(j), with
/// ∂s_j/∂a_i = 2·scale·a_i. So
///
///     ∂L/∂a_i = g_i · s_i^(−β) − 2·β·scale · a_i · Σ_{j : i ∈ window(j)} g_j · a_j · s_j^(−β−1)
///
/// where g = ∂L/∂y. The window is symmetric (i ∈ window(j) ⇔ j ∈ window(i)), so the last sum is
/// again a sum over window(i), of t_j = g_j · a_j · s_j^(−β−1): one sliding sum gives every s,
/// a second gives every Σ t, O(C) per pixel whatever the window size (a window wider than the
/// channels is simply clipped). s is recomputed from the input, so the forward saves nothing.
///
/// Both passes are independent per pixel: work is split over pixels, no two tasks write the same row.
extension LocalResponseNorm {
    /// Y = LRN(X) from slab to slab (either may be a channel slice of a wider buffer). The same
    /// arithmetic, in the same order, as ``run(_:pixels:channels:into:)``, so the results are
    /// identical. `y` must not overlap `x`: the sliding sum still reads channels behind the one written.
    public func forward(input x: ActivationSlab, into y: ActivationSlab) {
        precondition(y.pixels == x.pixels && y.channels == x.channels, "LRN output \(y.shape) does not match input \(x.shape)")
        let c = x.channels, half = size / 2, scale = alpha / Float(size)
        guard c > 0 else { return }
        let (k, beta) = (self.k, self.beta)
        Parallel.forEach(count: SlabChunks.count(rows: x.pixels)) { part in
            for p in SlabChunks.range(part, rows: x.pixels) {
                let a = UnsafePointer(x.row(p)), b = y.row(p)
                // Σ a² over window(0) minus its last element, which the loop adds first.
                var sum: Float = 0
                for j in 0..<min(half, c) { sum += a[j] * a[j] }
                for i in 0..<c {
                    if i + half < c { sum += a[i + half] * a[i + half] }
                    if i - half - 1 >= 0 { sum -= a[i - half - 1] * a[i - half - 1] }
                    // Rounding in the sliding sum can leave a tiny negative value: clamp it.
                    b[i] = a[i] * powf(k + scale * max(sum, 0), -beta)
                }
            }
        }
    }

    /// dX = ∂L/∂X from X and dY = ∂L/∂Y (see the extension's documentation). With `accumulate`
    /// the result is added to `dx`, else it replaces it. `dx` may be the same memory as `dy` (or
    /// as `x`): each pixel's element i is written only after the last read of that element.
    public func inputGradient(input x: ActivationSlab, outputGradient dy: ActivationSlab,
                              into dx: ActivationSlab, accumulate: Bool) {
        precondition(dy.pixels == x.pixels && dy.channels == x.channels, "LRN gradient \(dy.shape) does not match input \(x.shape)")
        precondition(dx.pixels == x.pixels && dx.channels == x.channels, "LRN input gradient \(dx.shape) does not match input \(x.shape)")
        let c = x.channels, half = size / 2, scale = alpha / Float(size)
        guard c > 0 else { return }
        let (k, beta) = (self.k, self.beta)
        let coefficient = 2 * beta * scale
        Parallel.forEach(count: SlabChunks.count(rows: x.pixels)) { part in
            // Per task (not per pixel): s_j^(−β) and t_j for one pixel's channels.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * c) { scratch in
                let power = scratch.baseAddress!, t = power + c
                for p in SlabChunks.range(part, rows: x.pixels) {
                    let a = UnsafePointer(x.row(p)), g = UnsafePointer(dy.row(p)), d = dx.row(p)
                    // Pass 1: s_j by a sliding sum of squares (as the forward), then
                    // power_j = s_j^(−β) and t_j = g_j · a_j · s_j^(−β−1).
                    var squares: Float = 0
                    for j in 0..<min(half, c) { squares += a[j] * a[j] }
                    for j in 0..<c {
                        if j + half < c { squares += a[j + half] * a[j + half] }
                        if j - half - 1 >= 0 { squares -= a[j - half - 1] * a[j - half - 1] }
                        let s = k + scale * max(squares, 0)
                        let ps = powf(s, -beta)
                        power[j] = ps
                        t[j] = g[j] * a[j] * ps / s
                    }
                    // Pass 2: Σ_{j ∈ window(i)} t_j by the same sliding scheme, then the gradient.
                    var window: Float = 0
                    for j in 0..<min(half, c) { window += t[j] }
                    for i in 0..<c {
                        if i + half < c { window += t[i + half] }
                        if i - half - 1 >= 0 { window -= t[i - half - 1] }
                        let value = g[i] * power[i] - coefficient * a[i] * window
                        if accumulate { d[i] += value } else { d[i] = value }
                    }
                }
            }
        }
    }

    // MARK: Tensor forms (tests and tools)

    /// ``forward(input:into:)`` on an NHWC tensor (same values as ``callAsFunction(_:)``).
    public func forward(_ x: Tensor) -> Tensor {
        var x = x
        var y = Tensor(zeros: x.shape)
        x.withSlab { xs in y.withSlab { forward(input: xs, into: $0) } }
        return y
    }

    /// ``inputGradient(input:outputGradient:into:accumulate:)`` on NHWC tensors: dX, shaped as X.
    public func inputGradient(_ x: Tensor, _ dy: Tensor) -> Tensor {
        precondition(x.shape == dy.shape, "LRN gradient \(dy.shape) does not match input \(x.shape)")
        var x = x, dy = dy
        var dx = Tensor(zeros: x.shape)
        x.withSlab { xs in dy.withSlab { dys in dx.withSlab { inputGradient(input: xs, outputGradient: dys, into: $0, accumulate: false) } } }
        return dx
    }
}
