/// What a trained model file says about how to use it, stored in its safetensors metadata:
/// the class names (one per output), the input size and the pooling it was trained with.
public struct ModelMetadata: Sendable, Equatable {
    public var classNames: [String]
    public var imageHeight: Int
    public var imageWidth: Int
    public var globalPool: Bool
    /// The network the weights are for.
    public var architecture: Architecture

    public init(classNames: [String], imageHeight: Int, imageWidth: Int, globalPool: Bool,
                architecture: Architecture = .inceptionV1) {
        self.classNames = classNames
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        self.globalPool = globalPool
        self.architecture = architecture
    }

    static let keys = (labels: "inception.labels", size: "inception.image_size", pool: "inception.global_pool",
                       architecture: "inception.architecture")

    /// The safetensors metadata entries.
    public var dictionary: [String: String] {
        [Self.keys.labels: classNames.joined(separator: "\n"), Self.keys.size: "\(imageHeight)x\(imageWidth)",
         Self.keys.pool: globalPool ? "true" : "false", Self.keys.architecture: architecture.rawValue,
         "format": "inception-swift"]
    }

    /// Reads the metadata of a weight file, if it has ours.
    public init?(_ reader: any WeightReader) {
        guard let safetensors = reader as? SafeTensorsReader, let labels = safetensors.metadata[Self.keys.labels],
              let size = safetensors.metadata[Self.keys.size] else { return nil }
        let parts = size.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2 else { return nil }
        self.init(classNames: labels.split(separator: "\n", omittingEmptySubsequences: false).map(String.init),
                  imageHeight: parts[0], imageWidth: parts[1], globalPool: safetensors.metadata[Self.keys.pool] == "true",
                  architecture: safetensors.metadata[Self.keys.architecture].flatMap(Architecture.init(rawValue:)) ?? .inceptionV1)
    }
}
