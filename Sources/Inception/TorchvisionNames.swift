import InceptionFormats
import InceptionModels

/// A torchvision GoogLeNet `state_dict` seen with this library's names and layouts, so the strict
/// loader, `convert` and every command take a `.pth` from PyTorch as they take a slim checkpoint.
///
/// Names: `inception4a.branch2.1.conv.weight` → `GoogLeNet/Mixed_4b/Branch_1/Conv2d_0b_3x3/weights`
/// (torchvision counts blocks 3a, 3b, 4a… and branches from 1; slim 3b, 3c, 4b… and from 0),
/// `bn.weight/bias/running_mean/running_var` → `BatchNorm/gamma/beta/moving_mean/moving_variance`,
/// `aux1`/`aux2` → `AuxLogits_4b`/`AuxLogits_4e`, `fc` → `Logits/Conv2d_0c_1x1`.
/// Layouts: convolution weights OIHW → HWIO; a linear layer's [out, in] → a 1x1 convolution's
/// [1, 1, in, out]; the auxiliary `fc1` [1024, 128·4·4] flattens an NCHW grid (index c·16 + h·4 + w),
/// so it becomes the 4x4 VALID convolution [4, 4, 128, 1024] over our NHWC grid.
/// Entries with no counterpart (`num_batches_tracked`) are left out; unknown ones keep their
/// names, so the loader reports them.
public struct TorchvisionGoogLeNetWeights: WeightReader {
    public let base: any WeightReader
    public var path: String { base.path }
    public let variables: [TensorInfo]
    private let sources: [String: (source: String, layout: Layout)]

    enum Layout: Sendable { case same, convolution, linear, flattenedGrid(height: Int, width: Int) }

    /// Whether `reader` holds a torchvision GoogLeNet state dict (its first convolution's name).
    public static func recognises(_ reader: any WeightReader) -> Bool {
        reader.variables.contains { $0.name == "conv1.conv.weight" || $0.name == "module.conv1.conv.weight" }
    }

    public init(_ base: any WeightReader) {
        self.base = base
        var sources: [String: (String, Layout)] = [:]
        var infos: [TensorInfo] = []
        for info in base.variables {
            let key = info.name.hasPrefix("module.") ? String(info.name.dropFirst("module.".count)) : info.name
            if key.hasSuffix("num_batches_tracked") { continue }
            guard let (name, layout) = Self.translate(key, shape: info.shape) else {
                infos.append(info)
                continue
            }
            sources[name] = (info.name, layout)
            infos.append(TensorInfo(name: name, dtype: info.dtype, shape: Self.shape(info.shape, layout), byteCount: info.byteCount))
        }
        self.sources = sources
        variables = infos.sorted { $0.name < $1.name }
    }

    public func tensor(named name: String) throws -> Tensor {
        guard let (source, layout) = sources[name] else { return try base.tensor(named: name) }
        let t = try base.tensor(named: source)
        switch layout {
        case .same: return t
        case .convolution:
            // [o, i, kh, kw] → [kh, kw, i, o].
            let (o, i, kh, kw) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
            var scalars = [Float](repeating: 0, count: t.count)
            for a in 0..<o { for b in 0..<i { for y in 0..<kh { for x in 0..<kw {
                scalars[((y * kw + x) * i + b) * o + a] = t.scalars[((a * i + b) * kh + y) * kw + x]
            } } } }
            return Tensor(shape: [kh, kw, i, o], scalars: scalars)
        case .linear: return Tensor(shape: Self.shape(t.shape, layout), scalars: transpose(t.scalars, rows: t.shape[0], columns: t.shape[1]))
        case .flattenedGrid(let h, let w):
            // [out, c·h·w] in (c, y, x) order → [h, w, c, out].
            let out = t.shape[0], c = t.shape[1] / (h * w)
            var scalars = [Float](repeating: 0, count: t.count)
            for o in 0..<out {
                for ch in 0..<c {
                    for y in 0..<h {
                        for x in 0..<w {
                            scalars[((y * w + x) * c + ch) * out + o] = t.scalars[o * c * h * w + (ch * h + y) * w + x]
                        }
                    }
                }
            }
            return Tensor(shape: [h, w, c, out], scalars: scalars)
        }
    }

    private func transpose(_ a: [Float], rows: Int, columns: Int) -> [Float] {
        var b = [Float](repeating: 0, count: a.count)
        for r in 0..<rows { for c in 0..<columns { b[c * rows + r] = a[r * columns + c] } }
        return b
    }

    private static func shape(_ s: [Int], _ layout: Layout) -> [Int] {
        switch layout {
        case .same: return s
        case .convolution: return [s[2], s[3], s[1], s[0]]
        case .linear: return [1, 1, s[1], s[0]]
        case .flattenedGrid(let h, let w): return [h, w, s[1] / (h * w), s[0]]
        }
    }

    static let blocks = ["inception3a": "Mixed_3b", "inception3b": "Mixed_3c", "inception4a": "Mixed_4b",
                         "inception4b": "Mixed_4c", "inception4c": "Mixed_4d", "inception4d": "Mixed_4e",
                         "inception4e": "Mixed_4f", "inception5a": "Mixed_5b", "inception5b": "Mixed_5c"]
    static let branches = ["branch1": "Branch_0/Conv2d_0a_1x1", "branch2.0": "Branch_1/Conv2d_0a_1x1",
                           "branch2.1": "Branch_1/Conv2d_0b_3x3", "branch3.0": "Branch_2/Conv2d_0a_1x1",
                           "branch3.1": "Branch_2/Conv2d_0b_3x3", "branch4.1": "Branch_3/Conv2d_0b_1x1"]
    static let root = ["conv1": "Conv2d_1a_7x7", "conv2": "Conv2d_2b_1x1", "conv3": "Conv2d_2c_3x3"]
    static let auxiliary = ["aux1": "AuxLogits_4b", "aux2": "AuxLogits_4e"]

    /// Our name and the layout change for one torchvision key, or nil when it has no counterpart.
    static func translate(_ key: String, shape: [Int]) -> (String, Layout)? {
        let scope = GoogLeNet.scope
        var parts = key.split(separator: ".").map(String.init)
        guard parts.count >= 2 else { return nil }
        let leaf = parts.removeLast()
        // BasicConv2d: `….conv.weight` and `….bn.{weight,bias,running_mean,running_var}`.
        func basic(_ module: String) -> (String, Layout)? {
            guard parts.count >= 1 else { return nil }
            let kind = parts.last!
            if kind == "conv" && leaf == "weight" && shape.count == 4 { return ("\(scope)/\(module)/weights", .convolution) }
            let bn = ["weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"]
            if kind == "bn", let b = bn[leaf] { return ("\(scope)/\(module)/BatchNorm/\(b)", .same) }
            return nil
        }
        func linear(_ module: String) -> (String, Layout)? {
            if leaf == "weight" && shape.count == 2 { return ("\(scope)/\(module)/weights", .linear) }
            if leaf == "bias" && shape.count == 1 { return ("\(scope)/\(module)/biases", .same) }
            return nil
        }
        if parts == ["fc"] { return linear("Logits/Conv2d_0c_1x1") }
        if let root = root[parts[0]], parts.count == 2 { return basic(root) }
        if let block = blocks[parts[0]], parts.count >= 3 {
            let branch = parts[1..<(parts.count - 1)].joined(separator: ".")
            guard let b = branches[branch] else { return nil }
            return basic("\(block)/\(b)")
        }
        if let aux = auxiliary[parts[0]], parts.count >= 2 {
            switch parts[1] {
            case "conv" where parts.count == 3: return basic("\(aux)/Conv2d_1b_1x1")
            case "fc1" where parts.count == 2:
                if leaf == "weight" && shape.count == 2 { return ("\(scope)/\(aux)/Conv2d_2a_4x4/weights", .flattenedGrid(height: 4, width: 4)) }
                return linear("\(aux)/Conv2d_2a_4x4")
            case "fc2" where parts.count == 2: return linear("\(aux)/Conv2d_2b_1x1")
            default: return nil
            }
        }
        return nil
    }
}

/// Opening weight files for a model: like `WeightFile.open`, and a torchvision GoogLeNet state
/// dict is presented with this library's names and layouts.
public enum ModelWeights {
    public static func open(_ path: String) throws -> any WeightReader {
        let reader = try WeightFile.open(path)
        return TorchvisionGoogLeNetWeights.recognises(reader) ? TorchvisionGoogLeNetWeights(reader) : reader
    }
}
