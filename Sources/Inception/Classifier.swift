import Foundation

/// Photos in, ImageNet classes or features out: decoding, slim's preprocessing, the network and
/// the labels, put together.
public final class Classifier: @unchecked Sendable {
    public let model: InceptionModel
    public let labels: Labels
    public let preprocessing: Preprocessing

    /// One ranked class.
    public struct Prediction: Sendable, Codable, Equatable {
        public let rank: Int
        /// The model's output index (for the released checkpoint, 0 is "background").
        public let index: Int
        public let label: String
        public let probability: Float
    }

    /// A model for the weights at `path` (classes and batch-norm scale read from the file).
    /// Labels default to ImageNet's, matched to the model's output count (1001 or 1000).
    public init(weights path: String, labels: Labels? = nil, preprocessing: Preprocessing = .inceptionEval,
                options: ModelOptions = ModelOptions(), loading: WeightLoadingOptions = WeightLoadingOptions()) throws {
        let reader = try ModelWeights.open(path)
        var fitted = options.fitted(to: reader)
        var preprocessing = Self.preprocessing(preprocessing, for: fitted.architecture)
        var labels = labels
        // A model trained by `inception train` carries its class names, input size and pooling.
        if let metadata = ModelMetadata(reader) {
            preprocessing.height = metadata.imageHeight
            preprocessing.width = metadata.imageWidth
            fitted.globalPool = metadata.globalPool
            if labels == nil { labels = Labels(names: metadata.classNames) }
        }
        guard fitted.numClasses > 0 else {
            throw ModelError("\(path) has no logits layer (\(fitted.network.scope)/\(fitted.network.logitsScope)): it can give features, not classes")
        }
        model = try InceptionModel(options: fitted)
        try model.loadWeights(from: reader, options: loading)
        let names = try labels ?? Labels.imagenet(forOutputCount: fitted.numClasses)
        guard names.count == fitted.numClasses else {
            throw ModelError("the labels have \(names.count) names but the model has \(fitted.numClasses) outputs")
        }
        self.labels = names
        self.preprocessing = preprocessing
    }

    /// torchvision's crop geometry for its GoogLeNet when the caller left slim's default.
    static func preprocessing(_ given: Preprocessing, for architecture: Architecture) -> Preprocessing {
        architecture == .googlenetTorchvision && given == .inceptionEval ? .torchvisionEval : given
    }

    /// The `top` most probable classes of each image, most probable first.
    public func classify(_ images: [RGBImage], top: Int = 5) throws -> [[Prediction]] {
        guard !images.isEmpty else { return [] }
        let batch = preprocessing.batch(images)
        let probabilities = try model.forward(batch, endpoints: .only(["Predictions"])).endpoints["Predictions"]!
        let classes = probabilities.shape.last!
        return (0..<images.count).map { i in
            let row = Array(probabilities.scalars[(i * classes)..<((i + 1) * classes)])
            let order = row.indices.sorted { row[$0] > row[$1] }.prefix(max(top, 0))
            return order.enumerated().map { rank, index in
                Prediction(rank: rank + 1, index: index, label: labels[output: index], probability: row[index])
            }
        }
    }
}

/// Activations of one endpoint for photos, for search, clustering or a classifier of one's own.
public final class FeatureExtractor: @unchecked Sendable {
    public let model: InceptionModel
    public let endpoint: String
    public let preprocessing: Preprocessing

    /// A model that runs only as far as `endpoint` needs (any base endpoint, or the head's
    /// `AvgPool_0a_7x7` / `global_pool` / `Logits` / `Predictions`).
    public init(weights path: String, endpoint: String, preprocessing: Preprocessing = .inceptionEval,
                options: ModelOptions = ModelOptions()) throws {
        let reader = try ModelWeights.open(path)
        var fitted = options.fitted(to: reader)
        var preprocessing = Classifier.preprocessing(preprocessing, for: fitted.architecture)
        if let metadata = ModelMetadata(reader) {
            preprocessing.height = metadata.imageHeight
            preprocessing.width = metadata.imageWidth
            fitted.globalPool = metadata.globalPool
        }
        let head = ["AvgPool_0a_7x7", "global_pool", "Logits", "Predictions"]
        let base = fitted.network.baseEndpoints
        guard base.contains(endpoint) || head.contains(endpoint) else {
            throw ModelError("unknown endpoint '\(endpoint)' for \(fitted.architecture.rawValue); choose one of: "
                             + (base + head).joined(separator: ", "))
        }
        if base.contains(endpoint) { fitted.finalEndpoint = endpoint }
        var endpoint = endpoint
        if endpoint == "global_pool" || endpoint == "AvgPool_0a_7x7" {
            // A model trained at another size pools globally: either name means "the pooled features".
            if preprocessing.height != InceptionV1.defaultImageSize || preprocessing.width != InceptionV1.defaultImageSize {
                endpoint = "global_pool"
            }
            fitted.globalPool = endpoint == "global_pool"
        }
        model = try InceptionModel(options: fitted)
        // A truncated network leaves the later layers' variables in the file unused.
        try model.loadWeights(from: reader, options: WeightLoadingOptions(ignoreUnexpected: fitted.finalEndpoint != "Mixed_5c"))
        self.endpoint = endpoint
        self.preprocessing = preprocessing
    }

    /// The endpoint for each image: [N, H, W, C] (or [N, C] for logits), or with `pool`, the mean
    /// over H and W: [N, C].
    public func features(_ images: [RGBImage], pool: Bool = true) throws -> Tensor {
        let batch = preprocessing.batch(images)
        let value = try model.forward(batch, endpoints: .only([endpoint])).endpoints[endpoint]!
        guard pool, value.rank == 4 else { return value }
        return Pooling.globalAverage(value).reshaped([value.shape[0], value.shape[3]])
    }
}
