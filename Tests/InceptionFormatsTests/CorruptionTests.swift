import XCTest
import InceptionCore
@testable import InceptionFormats

/// Damaged inputs must give errors (or, where no checksum protects the bytes, some values) —
/// never a crash, a trap or an unbounded allocation. A crash here takes the test run down.
final class CorruptionTests: XCTestCase {
    /// A small deterministic generator (SplitMix64), so failures reproduce.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    /// Writes `variants` of `original` (random flips, overwrites with 0x00/0xff, truncations,
    /// insertions) to `path` one at a time and calls `body` on each.
    private func forEachVariant(of original: [UInt8], at path: String, count: Int, seed: UInt64,
                                _ body: () -> Void) throws {
        var rng = Generator(state: seed)
        for _ in 0..<count {
            var bytes = original
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                guard !bytes.isEmpty else { break }
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0: bytes[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
                case 1: bytes[i] = 0xff
                case 2: bytes[i] = 0x00
                case 3: bytes.removeSubrange(i...)
                default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                }
            }
            try writeBytes(bytes, path)
            body()
        }
    }

    func testEverySingleByteFlipInTheV1FixtureIsDetected() throws {
        let original = try readBytes(fixture("v1/model.ckpt"))
        let path = try temporaryDirectory(self).appendingPathComponent("model.ckpt").path
        let footer = original.count - 48
        var c = ByteCursor(Array(original[footer...]))
        for _ in 0..<4 { _ = try c.readVarint64() }
        let padding = (footer + c.position)..<(footer + 40)  // the footer's unread zero padding
        for i in 0..<original.count where !padding.contains(i) {
            var bytes = original
            bytes[i] ^= 0x04
            try writeBytes(bytes, path)
            XCTAssertThrowsError(try TFCheckpointV1Reader(path: path).readAll(), "flip at byte \(i)")
        }
    }

    func testRandomDamageToV2FilesNeverCrashes() throws {
        let dir = try copyFixtures(["v2/model.ckpt.index", "v2/model.ckpt.data-00000-of-00002",
                                    "v2/model.ckpt.data-00001-of-00002"], self)
        let prefix = dir.appendingPathComponent("model.ckpt").path
        for (file, seed) in [("model.ckpt.index", UInt64(1)), ("model.ckpt.data-00000-of-00002", 2)] {
            let path = dir.appendingPathComponent(file).path
            let original = try readBytes(path)
            try forEachVariant(of: original, at: path, count: 300, seed: seed) {
                _ = try? TFCheckpointV2Reader(prefix: prefix).readAll()
            }
            try writeBytes(original, path)
        }
    }

    func testRandomDamageToSafetensorsNeverCrashes() throws {
        let dir = try temporaryDirectory(self)
        let path = dir.appendingPathComponent("w.safetensors").path
        try SafeTensors.write(["a": Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]), "b": Tensor(shape: [1], scalars: [7])],
                              metadata: ["k": "v"], to: path)
        try forEachVariant(of: try readBytes(path), at: path, count: 500, seed: 3) {
            _ = try? SafeTensors.read(path)
        }
    }

    func testRandomDamageToNpyNeverCrashes() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("a.npy").path
        try forEachVariant(of: try readBytes(fixture("npy/f8.npy")), at: path, count: 500, seed: 4) {
            _ = try? NPY.read(path)
        }
    }
}
