import InceptionCore

/// The members of the GoogLeNet family this library builds.
public enum Architecture: String, CaseIterable, Sendable, Codable {
    /// TF-slim's `inception_v1`: batch norm, 3x3 in Branch_2, TF SAME padding (the default).
    case inceptionV1 = "inception_v1"
    /// The paper's network (Caffe's bvlc_googlenet): 5x5 in Branch_2, local response normalization,
    /// convolutions with biases and no batch norm, two auxiliary classifiers.
    case googlenet
    /// torchvision's `googlenet`: batch norm with a learned scale, 3x3 in Branch_2, explicit padding,
    /// ceil-mode max pooling, auxiliary classifiers with 4x4 adaptive average pooling.
    case googlenetTorchvision = "googlenet_torchvision"

    /// The network as data.
    public var network: Network {
        switch self {
        case .inceptionV1: return InceptionV1.network
        case .googlenet: return GoogLeNet.paper
        case .googlenetTorchvision: return GoogLeNet.torchvision
        }
    }
}

/// One network of the family as data: the layers `InceptionModel` runs, counts, names and loads.
public struct Network: Sendable {
    public let architecture: Architecture
    /// The variable scope: `InceptionV1/Mixed_4c/Branch_1/Conv2d_0b_3x3/weights`.
    public let scope: String
    /// The stem (224x224x3 → 28x28x192).
    public let rootBlock: [Layer]
    /// The Inception modules and the pools between them.
    public let inceptionBlocks: [Layer]
    /// The main head's average pool when not pooling globally (`AvgPool_0a_7x7`, 7x7 VALID).
    public let headPoolWindow: Window2D
    /// The classifier's scope under `scope`; a 1x1 convolution with biases on the pooled features,
    /// which is the same thing as a fully connected layer.
    public let logitsScope: String
    /// Auxiliary classifiers, run in training only.
    public let auxiliaryHeads: [AuxiliaryHead]

    /// The base endpoint names, in order.
    public var baseEndpoints: [String] { (rootBlock + inceptionBlocks).map(\.name) }
    /// The block that feeds the Inception modules (what Mixed_3b takes without the root block).
    public var rootBlockChannels: Int { 192 }
}

/// An auxiliary classifier: its layers read a base endpoint; then dropout and the logits
/// (a 1x1 convolution with biases), whose softmax cross-entropy is added to the loss with a weight
/// (0.3 in the paper). Dropped at inference.
public struct AuxiliaryHead: Sendable {
    /// Scope and endpoint name of its logits, e.g. `AuxLogits_4b`.
    public let name: String
    /// The base endpoint it reads, e.g. `Mixed_4b`.
    public let endpoint: String
    /// Pool → 1x1 convolution → fully connected with ReLU; then dropout
    /// (`ModelOptions.auxiliaryDropoutKeepProbability`) and the logits.
    public let layers: [Layer]
    /// The logits layer's scope inside `name`.
    public let logitsName: String
}
