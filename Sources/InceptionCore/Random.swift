/// A small, fast, seedable generator (SplitMix64) so initialisation, dropout and augmentation are
/// reproducible from one seed on every platform (the standard library's generator is not seedable).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal sample truncated to ±2 standard deviations (redrawn outside), as
    /// TensorFlow's `truncated_normal`.
    public mutating func truncatedNormal() -> Float {
        while true {
            // Box–Muller on two uniforms in (0, 1].
            let u1 = Double.random(in: Double.ulpOfOne...1, using: &self)
            let u2 = Double.random(in: 0..<1, using: &self)
            let z = (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
            if abs(z) <= 2 { return Float(z) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
private func _log(_ x: Double) -> Double { log(x) }
private func _cos(_ x: Double) -> Double { cos(x) }
