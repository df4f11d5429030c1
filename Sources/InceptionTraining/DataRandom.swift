import Inception

/// The random numbers of the data pipeline, defined here bit for bit (rather than through the
/// standard library's `shuffle(using:)` or `random(in:using:)`, whose algorithms may change between
/// Swift releases) so that a split, an epoch's order and an image's distortion are the same on every
/// platform and toolchain, and a resumed run sees exactly the batches the killed one would have.
public enum DataRandom {
    /// SplitMix64's finaliser: a bijective 64-bit mix.
    @inline(__always)
    static func finalize(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed derived from a base seed and a path of integers (e.g. `[purpose, epoch, sample]`):
    /// distinct paths give unrelated streams.
    public static func seed(_ base: UInt64, _ path: Int...) -> UInt64 {
        var h = finalize(base ^ 0x5851_F42D_4C95_7F2D)
        for value in path {
            h = finalize(h &+ 0x9E37_79B9_7F4A_7C15 &+ UInt64(bitPattern: Int64(value)))
        }
        return h
    }

    /// Purposes mixed into derived seeds, so the split, the order and the augmentation never share
    /// a stream even with equal seeds.
    enum Purpose: Int {
        case split = 1, order = 2, augment = 3
    }

    /// A uniform integer in `0..<bound` (unbiased: rejection on the top of the 64-bit range).
    public static func uniform(below bound: Int, using generator: inout SeededGenerator) -> Int {
        precondition(bound > 0, "bound must be positive")
        let n = UInt64(bound)
        let limit = UInt64.max - (UInt64.max % n)  // values at or above limit are rejected
        while true {
            let r = generator.next()
            if r < limit { return Int(r % n) }
        }
    }

    /// A uniform float in [0, 1) with 24 random bits (every value a multiple of 2^-24).
    public static func unitFloat(using generator: inout SeededGenerator) -> Float {
        Float(generator.next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Fisher–Yates, from the last position down.
    public static func shuffle<T>(_ values: inout [T], using generator: inout SeededGenerator) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            let j = uniform(below: i + 1, using: &generator)
            if i != j { values.swapAt(i, j) }
        }
    }
}
