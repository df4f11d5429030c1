import InceptionCore

/// One node of a network description. A network is data — a list of these — that the same code
/// walks to run it, count it, name its variables and load its weights.
public indirect enum Layer: Sendable {
    /// Convolution → batch norm (or biases) → ReLU, as slim's `conv2d` under Inception's arg scope.
    case conv(name: String, outputChannels: Int, window: Window2D)
    /// Max pooling.
    case maxPool(name: String, window: Window2D)
    /// Average pooling.
    case avgPool(name: String, window: Window2D)
    /// Branches run on the same input and concatenated along channels, in order; branch `i` is
    /// scoped `Branch_i`.
    case mixed(name: String, branches: [[Layer]])
    /// Local response normalization across channels (the original GoogLeNet's root block).
    case localResponseNorm(name: String, LocalResponseNorm)
    /// PyTorch's adaptive average pooling to a fixed grid (torchvision's auxiliary heads).
    case adaptiveAvgPool(name: String, outputHeight: Int, outputWidth: Int)
    /// A fully connected layer with biases and ReLU (never batch norm), written as the VALID
    /// convolution whose kernel covers its whole input grid: weights [KH, KW, C, out] flatten the
    /// input in NHWC order (the auxiliary heads' `fc1`).
    case fullyConnected(name: String, outputChannels: Int, window: Window2D)

    /// The scope name of this node.
    public var name: String {
        switch self {
        case .conv(let name, _, _), .maxPool(let name, _), .avgPool(let name, _), .mixed(let name, _),
             .localResponseNorm(let name, _), .adaptiveAvgPool(let name, _, _), .fullyConnected(let name, _, _):
            return name
        }
    }
}

extension Layer {
    /// `Conv2d_…` with a square kernel.
    static func conv(_ name: String, _ channels: Int, _ kernel: Int, stride: Int = 1) -> Layer {
        .conv(name: name, outputChannels: channels, window: Window2D(kernel, stride: stride))
    }

    /// `Conv2d_…` with a square kernel and explicit padding.
    static func conv(_ name: String, _ channels: Int, _ kernel: Int, stride: Int = 1, padding: Padding) -> Layer {
        .conv(name: name, outputChannels: channels, window: Window2D(kernel, stride: stride, padding: padding))
    }

    /// `MaxPool_…`, TF SAME padding unless given.
    static func maxPool(_ name: String, _ kernel: Int, stride: Int, padding: Padding = .same) -> Layer {
        .maxPool(name: name, window: Window2D(kernel, stride: stride, padding: padding))
    }

    /// An Inception module: Branch_0 1x1; Branch_1 1x1 → 3x3; Branch_2 1x1 → 3x3 (5x5 in the
    /// paper: `branch2Kernel`); Branch_3 3x3 max pool → 1x1. `branch2Name` is the scope of
    /// Branch_2's second convolution, which slim spells `Conv2d_0a_3x3` in Mixed_5b only.
    /// `explicitPadding`: PyTorch/Caffe padding (k/2 on each side, ceil-mode branch pool) instead of
    /// TF SAME; the outputs have the same sizes either way at stride 1.
    static func mixed(_ name: String, _ b0: Int, _ b1: (reduce: Int, out: Int), _ b2: (reduce: Int, out: Int),
                      _ b3: Int, branch2Kernel: Int = 3, branch2Name: String? = nil, explicitPadding: Bool = false) -> Layer {
        let k = branch2Kernel
        func pad(_ kernel: Int) -> Padding { explicitPadding ? .symmetric(kernel / 2) : .same }
        return .mixed(name: name, branches: [
            [.conv("Conv2d_0a_1x1", b0, 1)],
            [.conv("Conv2d_0a_1x1", b1.reduce, 1), .conv("Conv2d_0b_3x3", b1.out, 3, padding: pad(3))],
            [.conv("Conv2d_0a_1x1", b2.reduce, 1), .conv(branch2Name ?? "Conv2d_0b_\(k)x\(k)", b2.out, k, padding: pad(k))],
            [.maxPool("MaxPool_0a_3x3", 3, stride: 1, padding: explicitPadding ? .symmetricCeil(1) : .same),
             .conv("Conv2d_0b_1x1", b3, 1)],
        ])
    }
}

extension Layer {
    /// Every convolution under this node with its full scope path, in order; `fullyConnected` marks
    /// the ones that always have biases (no batch norm).
    public func convolutions(scope: String) -> [(path: String, window: Window2D, fullyConnected: Bool)] {
        switch self {
        case .conv(let name, _, let window): return [("\(scope)/\(name)", window, false)]
        case .fullyConnected(let name, _, let window): return [("\(scope)/\(name)", window, true)]
        case .maxPool, .avgPool, .localResponseNorm, .adaptiveAvgPool: return []
        case .mixed(let name, let branches):
            return branches.enumerated().flatMap { i, branch in
                branch.flatMap { $0.convolutions(scope: "\(scope)/\(name)/Branch_\(i)") }
            }
        }
    }
}
