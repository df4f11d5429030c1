import Foundation
@testable import InceptionTraining
import Inception
import XCTest

/// Plain Double-precision reference forwards (straight loops, TF semantics), used to take central
/// finite differences with a small step: the numeric gradients are accurate to ~1e-9 relative,
/// so a gradient check measures the float32 kernels' own error and nothing else.
struct DT {
    var shape: [Int]
    var v: [Double]
    init(shape: [Int], v: [Double]) { precondition(shape.reduce(1, *) == v.count); self.shape = shape; self.v = v }
    init(_ t: Tensor) { self.init(shape: t.shape, v: t.scalars.map(Double.init)) }
    init(zeros shape: [Int]) { self.init(shape: shape, v: [Double](repeating: 0, count: shape.reduce(1, *))) }
    var tensor: Tensor { Tensor(shape: shape, scalars: v.map(Float.init)) }
}

enum Ref {
    static func conv(_ x: DT, _ w: DT, window: Window2D, bias: [Double]? = nil) -> DT {
        let (n, h, wd, ci) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw, co) = (w.shape[0], w.shape[1], w.shape[3])
        let g = window.geometry(inputHeight: h, inputWidth: wd)!
        var out = DT(zeros: [n, g.outputHeight, g.outputWidth, co])
        x.v.withUnsafeBufferPointer { xv in w.v.withUnsafeBufferPointer { wv in out.v.withUnsafeMutableBufferPointer { ov in
            for b in 0..<n { for oy in 0..<g.outputHeight { for ox in 0..<g.outputWidth {
                let o = ov.baseAddress! + ((b * g.outputHeight + oy) * g.outputWidth + ox) * co
                if let bias { for c in 0..<co { o[c] = bias[c] } }
                for y in 0..<kh {
                    let iy = oy * window.strideHeight + y - g.padTop
                    if iy < 0 || iy >= h { continue }
                    for xx in 0..<kw {
                        let ix = ox * window.strideWidth + xx - g.padLeft
                        if ix < 0 || ix >= wd { continue }
                        let src = xv.baseAddress! + ((b * h + iy) * wd + ix) * ci
                        let wt = wv.baseAddress! + (y * kw + xx) * ci * co
                        for c in 0..<ci {
                            let s = src[c]
                            let wr = wt + c * co
                            for k in 0..<co { o[k] += s * wr[k] }
                        }
                    }
                }
            } } }
        } } }
        return out
    }

    static func pool(_ kind: Pooling.Kind, _ x: DT, window: Window2D) -> DT {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let g = window.geometry(inputHeight: h, inputWidth: w)!
        var out = DT(zeros: [n, g.outputHeight, g.outputWidth, c])
        for b in 0..<n { for oy in 0..<g.outputHeight { for ox in 0..<g.outputWidth { for k in 0..<c {
            var acc = kind == .max ? -Double.infinity : 0, count = 0
            for y in 0..<window.kernelHeight {
                let iy = oy * window.strideHeight + y - g.padTop
                if iy < 0 || iy >= h { continue }
                for xx in 0..<window.kernelWidth {
                    let ix = ox * window.strideWidth + xx - g.padLeft
                    if ix < 0 || ix >= w { continue }
                    let v = x.v[((b * h + iy) * w + ix) * c + k]
                    acc = kind == .max ? max(acc, v) : acc + v
                    count += 1
                }
            }
            out.v[((b * g.outputHeight + oy) * g.outputWidth + ox) * c + k] = kind == .max ? acc : acc / Double(count)
        } } } }
        return out
    }

    static func globalMean(_ x: DT) -> DT {
        let (n, hw, c) = (x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
        var out = DT(zeros: [n, 1, 1, c])
        for b in 0..<n { for p in 0..<hw { for k in 0..<c { out.v[b * c + k] += x.v[(b * hw + p) * c + k] / Double(hw) } } }
        return out
    }

    /// Training batch norm (biased variance) + optional ReLU.
    static func batchNorm(_ z: DT, beta: [Double], gamma: [Double]?, epsilon: Double, relu: Bool) -> DT {
        let c = z.shape.last!, m = z.v.count / c
        var mean = [Double](repeating: 0, count: c), variance = mean
        for p in 0..<m { for k in 0..<c { mean[k] += z.v[p * c + k] / Double(m) } }
        for p in 0..<m { for k in 0..<c { let d = z.v[p * c + k] - mean[k]; variance[k] += d * d / Double(m) } }
        var out = z
        for p in 0..<m { for k in 0..<c {
            let y = (gamma?[k] ?? 1) * (z.v[p * c + k] - mean[k]) / (variance[k] + epsilon).squareRoot() + beta[k]
            out.v[p * c + k] = relu ? max(y, 0) : y
        } }
        return out
    }

    static func concat(_ parts: [DT]) -> DT {
        let pixels = parts[0].v.count / parts[0].shape[3]
        let total = parts.reduce(0) { $0 + $1.shape[3] }
        var out = DT(zeros: Array(parts[0].shape.prefix(3)) + [total])
        var offset = 0
        for p in parts {
            let c = p.shape[3]
            for i in 0..<pixels { for k in 0..<c { out.v[i * total + offset + k] = p.v[i * c + k] } }
            offset += c
        }
        return out
    }

    /// Mean softmax cross-entropy with slim's label smoothing.
    static func crossEntropy(_ logits: DT, labels: [Int], smoothing: Double) -> Double {
        let k = logits.shape.last!, n = logits.v.count / k
        var total = 0.0
        for i in 0..<n {
            let row = Array(logits.v[(i * k)..<((i + 1) * k)])
            let top = row.max()!
            let lse = top + log(row.reduce(0) { $0 + exp($1 - top) })
            for j in 0..<k {
                let t = (j == labels[i] ? 1 - smoothing : 0) + smoothing / Double(k)
                total += t * (lse - row[j])
            }
        }
        return total / Double(n)
    }

    /// The model's training-mode forward (network walked from `model.layers`), in Double.
    static func network(_ layers: [Layer], _ x: DT, variables v: [String: [Double]], options: ModelOptions,
                        scope: String = InceptionV1.scope) -> DT {
        var x = x
        for layer in layers { x = run(layer, x, v, options, scope) }
        return x
    }

    private static func run(_ layer: Layer, _ x: DT, _ v: [String: [Double]], _ o: ModelOptions, _ scope: String) -> DT {
        switch layer {
        case .conv(let name, _, let window):
            let path = "\(scope)/\(name)"
            let w = v[path + "/weights"]!
            let shape = [window.kernelHeight, window.kernelWidth, x.shape[3], w.count / (window.kernelHeight * window.kernelWidth * x.shape[3])]
            if !o.useBatchNorm {
                var z = conv(x, DT(shape: shape, v: w), window: window, bias: v[path + "/biases"]!)
                z.v = z.v.map { max($0, 0) }
                return z
            }
            let z = conv(x, DT(shape: shape, v: w), window: window)
            return batchNorm(z, beta: v[path + "/BatchNorm/beta"]!, gamma: o.batchNormScale ? v[path + "/BatchNorm/gamma"]! : nil,
                             epsilon: Double(o.batchNormEpsilon), relu: true)
        case .fullyConnected(let name, let out, let window):
            let path = "\(scope)/\(name)"
            var z = conv(x, DT(shape: [window.kernelHeight, window.kernelWidth, x.shape[3], out], v: v[path + "/weights"]!),
                         window: window, bias: v[path + "/biases"]!)
            z.v = z.v.map { max($0, 0) }
            return z
        case .localResponseNorm(_, let lrn):
            // b_c = a_c / (k + alpha/size · Σ_window a²)^beta, directly from the definition.
            let c = x.shape[3], half = lrn.size / 2
            var out = x
            for p in 0..<(x.v.count / c) {
                for i in 0..<c {
                    var sum = 0.0
                    for j in max(0, i - half)...min(c - 1, i + half) { sum += x.v[p * c + j] * x.v[p * c + j] }
                    out.v[p * c + i] = x.v[p * c + i] * pow(Double(lrn.k) + Double(lrn.alpha) / Double(lrn.size) * sum, -Double(lrn.beta))
                }
            }
            return out
        case .adaptiveAvgPool(_, let oh, let ow):
            let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            var out = DT(zeros: [n, oh, ow, c])
            for b in 0..<n { for i in 0..<oh { for j in 0..<ow {
                let (y0, y1) = (i * h / oh, ((i + 1) * h + oh - 1) / oh), (x0, x1) = (j * w / ow, ((j + 1) * w + ow - 1) / ow)
                for yy in y0..<y1 { for xx in x0..<x1 { for k in 0..<c {
                    out.v[((b * oh + i) * ow + j) * c + k] += x.v[((b * h + yy) * w + xx) * c + k] / Double((y1 - y0) * (x1 - x0))
                } } }
            } } }
            return out
        case .maxPool(_, let window): return pool(.max, x, window: window)
        case .avgPool(_, let window): return pool(.average, x, window: window)
        case .mixed(let name, let branches):
            return concat(branches.enumerated().map { i, branch in
                branch.reduce(x) { run($1, $0, v, o, "\(scope)/\(name)/Branch_\(i)") }
            })
        }
    }

    /// slim's training loss for the whole model: head (pool, dropout mask, logits), cross-entropy, L2.
    static func loss(model: InceptionModel, images: DT, labels: [Int], variables v: [String: [Double]], mask: [Float]?,
                     smoothing: Double, weightDecay: Double) -> Double {
        let o = model.options
        let features = network(model.layers, images, variables: v, options: o)
        var pooled = o.globalPool ? globalMean(features) : pool(.average, features, window: InceptionV1.avgPoolWindow)
        if let mask { for i in 0..<pooled.v.count { pooled.v[i] *= Double(mask[i]) } }
        let head = "\(InceptionV1.scope)/\(InceptionV1.logitsScope)"
        let w = v[head + "/weights"]!, b = v[head + "/biases"]!
        let c = pooled.shape[3], k = b.count, n = pooled.shape[0]
        var logits = DT(zeros: [n, k])
        for i in 0..<n { for j in 0..<k {
            var s = b[j]
            for q in 0..<c { s += pooled.v[i * c + q] * w[q * k + j] }
            logits.v[i * k + j] = s
        } }
        var total = crossEntropy(logits, labels: labels, smoothing: smoothing)
        for spec in model.variableSpecs where spec.role == .weights {
            total += weightDecay * v[spec.name]!.reduce(0) { $0 + $1 * $1 } / 2
        }
        return total
    }
}

/// Values with gaps far wider than any finite-difference step (no ties, no kinks crossed):
/// a shuffled grid of `count` values spanning about [-range, range].
func spacedValues(_ count: Int, range: Float = 1, seed: UInt64) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    var values = (0..<count).map { Float($0) - Float(count) / 2 }
    values.shuffle(using: &rng)
    let scale = 2 * range / Float(max(count, 1))
    return values.map { ($0 + 0.25) * scale }
}

func randomValues(_ count: Int, range: Float = 1, seed: UInt64) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float.random(in: -range...range, using: &rng) }
}

/// Compares analytic gradients with central differences at `samples` indices (all if fewer):
/// |analytic − numeric| ≤ tolerance · max|numeric| + 1e-9. Returns the worst relative error.
@discardableResult
func checkGradient(_ label: String, analytic: [Float], samples: Int = 60, step h: Double = 1e-6, tolerance: Double = 1e-4,
                   seed: UInt64 = 7, file: StaticString = #filePath, line: UInt = #line,
                   loss: (_ index: Int, _ delta: Double) -> Double) -> Double {
    var rng = SeededGenerator(seed: seed)
    let indices = analytic.count <= samples ? Array(0..<analytic.count)
        : (0..<samples).map { _ in Int.random(in: 0..<analytic.count, using: &rng) }
    var numeric: [Double] = []
    for i in indices { numeric.append((loss(i, h) - loss(i, -h)) / (2 * h)) }
    let scale = max(numeric.map(abs).max() ?? 0, 1e-12)
    var worst = 0.0
    for (j, i) in indices.enumerated() {
        let err = abs(Double(analytic[i]) - numeric[j])
        worst = max(worst, err / scale)
        if err > tolerance * scale + 1e-9 {
            XCTFail("\(label)[\(i)]: analytic \(analytic[i]) vs numeric \(numeric[j]) (scale \(scale))", file: file, line: line)
            break
        }
    }
    return worst
}

final class GradientReferenceTests: XCTestCase {
    /// The Double reference forward agrees with the float32 kernels it checks against.
    func testReferenceForwardsAgreeWithTheFloatKernels() {
        let x = Tensor(shape: [2, 9, 7, 5], scalars: randomValues(630, seed: 1))
        let w = Tensor(shape: [3, 3, 5, 6], scalars: randomValues(270, seed: 2))
        for window in [Window2D(3, stride: 2), Window2D(3, stride: 1, padding: .valid)] {
            let ours = ConvolutionGradient.forward(x, weights: w, window: window)
            let ref = Ref.conv(DT(x), DT(w), window: window).tensor
            XCTAssertLessThan(ours.maxAbsDifference(ref), 1e-5)
            XCTAssertLessThan(Convolution2D.reference(x, weights: w, bias: nil, stride: window.strideHeight, padding: window.padding, relu: false)
                .maxAbsDifference(ref), 1e-5)
        }
        for kind in [Pooling.Kind.max, .average] {
            let window = Window2D(3, stride: 2)
            XCTAssertLessThan(PoolingGradient.forward(kind, x, window: window).maxAbsDifference(Ref.pool(kind, DT(x), window: window).tensor), 1e-6)
            XCTAssertLessThan(Pooling.pool(kind, x, window).maxAbsDifference(Ref.pool(kind, DT(x), window: window).tensor), 1e-6)
        }
    }

    /// The Double network walk is slim's network: it matches InceptionModel's training-mode forward.
    func testReferenceNetworkMatchesTheModelsTrainingForward() throws {
        var options = ModelOptions(numClasses: 0, isTraining: true, finalEndpoint: "Mixed_3c", includeRootBlock: false)
        options.batchNormScale = true
        let model = try InceptionModel(options: options, seed: 3)
        let x = Tensor(shape: [2, 5, 5, 192], scalars: randomValues(2 * 25 * 192, seed: 4))
        let ours = try model.forward(x).output
        let v = model.variables.mapValues { $0.scalars.map(Double.init) }
        let ref = Ref.network(model.layers, DT(x), variables: v, options: options).tensor
        XCTAssertEqual(ours.shape, ref.shape)
        XCTAssertLessThan(ours.maxAbsDifference(ref), 1e-4 * max(1, ref.maxAbs))
    }
}
