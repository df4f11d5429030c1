import Foundation
import InceptionCore
import XCTest

// Finite-difference helpers shared by the gradient tests of this target
// (LocalResponseNormBackwardTests, PaddingGradientTests).

/// Uniform values in [−range, range] from a seeded generator.
func seededValues(_ count: Int, range: Double = 1, seed: UInt64) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float(Double.random(in: -range...range, using: &rng)) }
}

/// Central differences (L(i, +h) − L(i, −h)) / 2h for every index, compared with `analytic`:
/// |analytic − numeric| ≤ tolerance · max|numeric| + 1e-9 everywhere.
func assertMatchesCentralDifferences(_ analytic: [Float], step h: Double, tolerance: Double = 1e-4,
                                      _ label: String, file: StaticString = #filePath, line: UInt = #line,
                                      loss: (_ index: Int, _ delta: Double) -> Double) {
    let numeric = analytic.indices.map { (loss($0, h) - loss($0, -h)) / (2 * h) }
    let scale = max(numeric.map(abs).max() ?? 0, 1e-12)
    for i in analytic.indices where abs(Double(analytic[i]) - numeric[i]) > tolerance * scale + 1e-9 {
        XCTFail("\(label)[\(i)]: analytic \(analytic[i]) vs numeric \(numeric[i]) (scale \(scale))", file: file, line: line)
        return
    }
}

func dot(_ r: [Float], _ y: [Double]) -> Double {
    zip(r, y).reduce(0) { $0 + Double($1.0) * $1.1 }
}
