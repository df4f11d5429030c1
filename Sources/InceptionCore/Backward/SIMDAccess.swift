/// Unaligned 8-float vector loads and stores for the element-wise training kernels: Swift's
/// `SIMD8<Float>` lowers to two SSE registers on baseline x86-64 (or one AVX register when the
/// target allows), so a channel loop written with these is vectorised whatever the compiler
/// decides about aliasing. Channel counts that are not multiples of 8 finish with scalar code.
@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
