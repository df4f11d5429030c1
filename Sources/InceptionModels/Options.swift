import InceptionCore

/// The arguments of slim's `inception_v1` / `inception_v1_base` and its arg scope, with slim's defaults
/// (except `numClasses`: 1001, the released ImageNet checkpoint's, class 0 = background).
public struct ModelOptions: Sendable, Equatable {
    /// Which network of the family (slim's Inception V1 unless said); ``defaults(for:)`` gives each
    /// one's own defaults.
    public var architecture: Architecture = .inceptionV1
    /// Classes of the logits layer; 0 returns the pooled 1024 features (no Logits/Predictions).
    public var numClasses = 1001
    /// Training mode: batch norm uses batch statistics and dropout is active.
    public var isTraining = false
    /// Keep probability of `Dropout_0b` in training.
    public var dropoutKeepProbability: Float = 0.8
    /// Squeeze the logits from [N, 1, 1, classes] to [N, classes].
    public var spatialSqueeze = true
    /// Mean over H and W (endpoint `global_pool`) instead of the 7x7 VALID `AvgPool_0a_7x7`,
    /// so any input size works.
    public var globalPool = false
    /// The last base endpoint to build (one of the network's `baseEndpoints`); the head is built only
    /// when this is `Mixed_5c`.
    public var finalEndpoint = "Mixed_5c"
    /// With false, the input (28x28x192 at full size) goes straight into Mixed_3b.
    public var includeRootBlock = true
    /// Convolutions are followed by batch norm (no biases); with false, convolutions have biases.
    public var useBatchNorm = true
    /// Batch norm has a learned scale `gamma` (slim's default: no).
    public var batchNormScale = false
    public var batchNormEpsilon: Float = 0.001
    /// Moving-average decay of the batch-norm statistics during training.
    public var batchNormDecay: Float = 0.9997
    /// L2 weight decay on convolution and logits weights.
    public var weightDecay: Float = 0.00004
    /// Build the network's auxiliary classifiers (their variables exist; they run in training only).
    public var auxiliaryLogits = false
    /// Weight of each auxiliary classifier's loss in the total (the paper's 0.3).
    public var auxiliaryLossWeight: Float = 0.3
    /// Keep probability of the dropout before each auxiliary classifier's logits (0.3: the paper's
    /// and torchvision's dropout ratio 0.7).
    public var auxiliaryDropoutKeepProbability: Float = 0.3
    /// torchvision's `transform_input`: the input is ImageNet mean/std normalized, and the network
    /// first maps it back to the [-1, 1] scale its weights were trained on. Off: the input is
    /// already in [-1, 1] (what this library's preprocessing produces for every model).
    public var transformInput = false

    /// Each architecture's own defaults: slim's for `inceptionV1` (1001 classes); the paper's for
    /// `googlenet` (1000 classes, biases instead of batch norm, dropout 0.4, weight decay 2e-4 as
    /// Caffe's solver, auxiliary heads); torchvision's for `googlenetTorchvision` (1000 classes,
    /// batch norm with scale, global pool, dropout 0.2, auxiliary heads).
    public static func defaults(for architecture: Architecture) -> ModelOptions {
        var o = ModelOptions()
        o.architecture = architecture
        switch architecture {
        case .inceptionV1: break
        case .googlenet:
            o.numClasses = 1000
            o.useBatchNorm = false
            o.dropoutKeepProbability = 0.6
            o.weightDecay = 0.0002
            o.auxiliaryLogits = true
        case .googlenetTorchvision:
            o.numClasses = 1000
            o.batchNormScale = true
            o.globalPool = true
            o.dropoutKeepProbability = 0.8
            o.auxiliaryLogits = true
        }
        return o
    }

    /// The network these options build.
    public var network: Network { architecture.network }

    public init(numClasses: Int = 1001, isTraining: Bool = false, dropoutKeepProbability: Float = 0.8,
                spatialSqueeze: Bool = true, globalPool: Bool = false, finalEndpoint: String = "Mixed_5c",
                includeRootBlock: Bool = true, useBatchNorm: Bool = true, batchNormScale: Bool = false,
                batchNormEpsilon: Float = 0.001) {
        self.numClasses = numClasses
        self.isTraining = isTraining
        self.dropoutKeepProbability = dropoutKeepProbability
        self.spatialSqueeze = spatialSqueeze
        self.globalPool = globalPool
        self.finalEndpoint = finalEndpoint
        self.includeRootBlock = includeRootBlock
        self.useBatchNorm = useBatchNorm
        self.batchNormScale = batchNormScale
        self.batchNormEpsilon = batchNormEpsilon
    }
}

/// What went wrong building or running a model; the message says what to do instead.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The role of a variable, from the last component of its slim name.
public enum VariableRole: String, Sendable {
    case weights, biases, beta, gamma
    case movingMean = "moving_mean"
    case movingVariance = "moving_variance"
}

/// A variable the model owns: its full slim name, shape and role.
public struct VariableSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let role: VariableRole
    /// Moving statistics are model variables but not trained by gradients.
    public var trainable: Bool { role != .movingMean && role != .movingVariance }
    public var count: Int { shape.reduce(1, *) }
}

/// The endpoints of one forward pass, in network order, keyed by slim's names.
public struct Endpoints: Sendable {
    public private(set) var names: [String] = []
    private var values: [String: Tensor] = [:]

    mutating func append(_ name: String, _ value: Tensor) {
        names.append(name)
        values[name] = value
    }

    public subscript(name: String) -> Tensor? { values[name] }

    func filtered(_ keep: (String) -> Bool) -> Endpoints {
        var out = Endpoints()
        for name in names where keep(name) { out.append(name, values[name]!) }
        return out
    }
    public var count: Int { names.count }
}
