import Foundation
import Inception

/// The deterministic weight and input pattern of docs/parity-fixtures.md, recomputed bit for bit:
/// the fixture script fills TF-slim's variables with the same values, so no weights are committed.
enum ParityPattern {
    /// 32-bit FNV-1a over the UTF-8 bytes of `name`.
    static func seed(_ name: String) -> UInt64 {
        var h: UInt32 = 2_166_136_261
        for byte in name.utf8 { h = (h ^ UInt32(byte)) &* 16_777_619 }
        return UInt64(h)
    }

    /// v in [-1, 1) for element `i` of the variable `name`.
    static func unit(_ seed: UInt64, _ i: Int) -> Double {
        let u = (seed &+ UInt64(i + 1) &* 2_654_435_761) & 0xFFFF_FFFF
        return Double(u) / 4_294_967_296.0 * 2 - 1
    }

    static func tensor(_ name: String, shape: [Int]) -> Tensor {
        let s = seed(name)
        let count = shape.reduce(1, *)
        let role = name.split(separator: "/").last.map(String.init) ?? name
        let value: (Double) -> Double
        switch role {
        case "weights":
            let fanIn = Double(shape.dropLast().reduce(1, *))
            let scale = (6 / fanIn).squareRoot()
            value = { $0 * scale }
        case "biases", "beta", "moving_mean": value = { 0.1 * $0 }
        case "gamma", "moving_variance": value = { 1 + 0.25 * $0 }
        default: value = { $0 }
        }
        return Tensor(shape: shape, scalars: (0..<count).map { Float(value(unit(s, $0))) })
    }

    /// Pattern values for every variable of `model`.
    static func variables(for model: InceptionModel) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: model.variableSpecs.map { ($0.name, tensor($0.name, shape: $0.shape)) })
    }

    /// The fixture's sample indices for a tensor of `n` elements.
    static func sampleIndices(_ n: Int) -> [Int] {
        if n <= 4096 { return Array(0..<n) }
        return Array(0..<512) + Array((n - 512)..<n) + (0..<3072).map { ($0 * 2_147_483_647) % n }
    }
}
