import XCTest
@testable import InceptionCore

/// The batch-norm passes (`batchnorm.c`) on every instruction set: the same bits everywhere (each
/// lane is a channel and nothing is contracted into an FMA), and the plain definitions.
final class BatchNormKernelTests: XCTestCase {
    /// 37 channels: two 16-lane vectors and a scalar tail; rows 8 floats wider than the channels
    /// (a slab of a wider block); 100 rows: three full 32-row blocks of float sums and a short one.
    let (rows, channels, stride) = (100, 37, 45)

    struct Passes {
        var mean: [Float], variance: [Float], y: [Float], dz: [Float], dBeta: [Float], dGamma: [Float]

        /// The results whose bits differ from `other`'s (NaN in unused columns equal to NaN).
        func differences(from other: Passes) -> [String] {
            let fields: [(String, [Float], [Float])] = [
                ("mean", mean, other.mean), ("variance", variance, other.variance), ("y", y, other.y),
                ("dz", dz, other.dz), ("dBeta", dBeta, other.dBeta), ("dGamma", dGamma, other.dGamma),
            ]
            return fields.filter { $0.1.map(\.bitPattern) != $0.2.map(\.bitPattern) }.map(\.0)
        }
    }

    func run(z: [Float], dy: [Float], beta: [Float], relu: Bool) -> Passes {
        var zs = z, ys = [Float](repeating: .nan, count: z.count), gs = dy
        return zs.withUnsafeMutableBufferPointer { zp in ys.withUnsafeMutableBufferPointer { yp in gs.withUnsafeMutableBufferPointer { gp in
            let slab = { (p: UnsafeMutableBufferPointer<Float>) in
                ActivationSlab(base: p.baseAddress!, batch: 1, height: 10, width: 10, channels: self.channels, stride: self.stride)
            }
            let (mean, variance) = BatchNormTraining.moments(slab(zp))
            let scale = BatchNormTraining.scale(variance: variance, gamma: nil, epsilon: 0.001)
            BatchNormTraining.normalize(slab(zp), mean: mean, scale: scale, beta: beta, relu: relu, into: slab(yp))
            let (dBeta, dGamma) = BatchNormTraining.backward(z: slab(zp), outputGradient: slab(gp), mean: mean, variance: variance,
                                                             scale: scale, beta: beta, epsilon: 0.001, relu: relu, into: slab(gp))
            return Passes(mean: mean, variance: variance, y: Array(yp), dz: Array(gp), dBeta: dBeta, dGamma: dGamma)
        } } }
    }

    func testEveryInstructionSetGivesTheSameBitsAndThePlainDefinitions() {
        var rng = SeededGenerator(seed: 31)
        // Means well away from zero, as convolution outputs have, and spreads that differ by channel.
        let z = (0..<(rows * stride)).map { i in Float.random(in: -1...1, using: &rng) * Float(1 + i % stride % 4) + 2 }
        let dy = (0..<(rows * stride)).map { _ in Float.random(in: -1...1, using: &rng) }
        let beta = (0..<channels).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
        for relu in [true, false] {
            var reference: Passes!
            withKernel(.portable) { reference = run(z: z, dy: dy, beta: beta, relu: relu) }
            for kernel in GEMM.Kernel.allCases {
                withKernel(kernel) {
                    XCTAssertEqual(run(z: z, dy: dy, beta: beta, relu: relu).differences(from: reference), [], "\(kernel) relu \(relu)")
                }
            }
            // The definitions, in Double: statistics, Y, and TF's fused gradient.
            for c in 0..<channels {
                let zc = (0..<rows).map { Double(z[$0 * stride + c]) }
                let mean = zc.reduce(0, +) / Double(rows)
                let variance = zc.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rows)
                XCTAssertEqual(Double(reference.mean[c]), mean, accuracy: 1e-6 * abs(mean))
                XCTAssertEqual(Double(reference.variance[c]), variance, accuracy: 1e-5 * variance)
                let r = 1 / (variance + 0.001).squareRoot()
                let xhat = zc.map { ($0 - mean) * r }
                let y = xhat.map { relu ? max($0 + Double(beta[c]), 0) : $0 + Double(beta[c]) }
                let g = (0..<rows).map { !relu || y[$0] > 0 ? Double(dy[$0 * stride + c]) : 0 }
                let sumG = g.reduce(0, +), sumGX = zip(g, xhat).reduce(0) { $0 + $1.0 * $1.1 }
                XCTAssertEqual(Double(reference.dBeta[c]), sumG, accuracy: 1e-5)
                XCTAssertEqual(Double(reference.dGamma[c]), sumGX, accuracy: 1e-5)
                for p in 0..<rows {
                    XCTAssertEqual(Double(reference.y[p * stride + c]), y[p], accuracy: 1e-5)
                    let dz = r * (g[p] - sumG / Double(rows) - xhat[p] * sumGX / Double(rows))
                    XCTAssertEqual(Double(reference.dz[p * stride + c]), dz, accuracy: 1e-5)
                }
            }
            // Columns past the channels are neither read into the sums nor written.
            for p in 0..<rows { for c in channels..<stride { XCTAssert(reference.y[p * stride + c].isNaN) } }
        }
    }
}
