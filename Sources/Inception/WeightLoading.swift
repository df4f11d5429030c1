import Foundation

/// How strictly a weight file must match the model.
public struct WeightLoadingOptions: Sendable {
    /// Accept variables the model does not have (optimizer slots, other heads). `global_step`
    /// is always accepted: it is training metadata, not a weight.
    public var ignoreUnexpected = false
    /// Load `NAME/ExponentialMovingAverage` in place of `NAME` where the file has it (slim's
    /// `--moving_average_decay` evaluation). Without this flag those copies are ignored.
    public var useMovingAverages = false
    /// Scope prefixes neither required nor loaded (slim's `checkpoint_exclude_scopes`), e.g.
    /// `InceptionV1/Logits` to put a new head with another number of classes on the network.
    public var excludeScopes: [String] = []

    public init(ignoreUnexpected: Bool = false, useMovingAverages: Bool = false, excludeScopes: [String] = []) {
        self.ignoreUnexpected = ignoreUnexpected
        self.useMovingAverages = useMovingAverages
        self.excludeScopes = excludeScopes
    }
}

/// What a load did.
public struct WeightLoadingReport: Sendable {
    /// Variables loaded from the file.
    public var loaded: [String] = []
    /// Model variables left at their initial values because an excluded scope covers them.
    public var excluded: [String] = []
    /// File entries that were not used (global_step, unused moving averages, and — with
    /// `ignoreUnexpected` — everything else the model does not have).
    public var ignored: [String] = []
}

/// A weight file that does not fit the model: every problem at once, so one run shows them all.
public struct WeightMismatchError: Error, CustomStringConvertible {
    public let path: String
    public let missing: [String]
    public let unexpected: [String]
    public let shapeMismatches: [String]

    public var description: String {
        var lines = ["\(path): the weights do not fit the model"]
        func section(_ title: String, _ items: [String], _ hint: String) {
            guard !items.isEmpty else { return }
            lines.append("\(title) (\(items.count)):")
            lines += items.prefix(50).map { "  \($0)" }
            if items.count > 50 { lines.append("  … and \(items.count - 50) more") }
            if !hint.isEmpty { lines.append("  hint: \(hint)") }
        }
        section("missing from the file", missing,
                "a different model variant (batch-norm scale, classes)? or exclude scopes to train them anew")
        section("in the file but not in the model", unexpected, "pass --ignore-unexpected to skip them")
        section("shape mismatches", shapeMismatches,
                shapeMismatches.contains { $0.contains("/Logits/") }
                    ? "a different number of classes: use --num-classes to match, or --exclude-scopes InceptionV1/Logits for a new head" : "")
        return lines.joined(separator: "\n")
    }
}

extension InceptionModel {
    /// Loads every model variable from a weight file by slim name (TF V1 or V2 checkpoint,
    /// safetensors). Strict by default: missing variables, unexpected ones and shape mismatches
    /// are all reported in one `WeightMismatchError`, and the model is left unchanged.
    @discardableResult
    public func loadWeights(from path: String, options: WeightLoadingOptions = WeightLoadingOptions()) throws
        -> WeightLoadingReport
    {
        try loadWeights(from: ModelWeights.open(path), options: options)
    }

    @discardableResult
    public func loadWeights(from reader: any WeightReader, options: WeightLoadingOptions = WeightLoadingOptions()) throws
        -> WeightLoadingReport
    {
        let stored = Dictionary(reader.variables.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let emaSuffix = "/ExponentialMovingAverage"
        func excluded(_ name: String) -> Bool {
            options.excludeScopes.contains { name == $0 || name.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
        }
        var report = WeightLoadingReport()
        var missing: [String] = [], mismatches: [String] = []
        var sources: [(variable: String, entry: String)] = []
        for spec in variableSpecs {
            if excluded(spec.name) { report.excluded.append(spec.name); continue }
            let entry = options.useMovingAverages && stored[spec.name + emaSuffix] != nil ? spec.name + emaSuffix : spec.name
            guard let info = stored[entry] else { missing.append(spec.name); continue }
            if info.shape != spec.shape {
                mismatches.append("\(entry): file \(info.shape), model \(spec.shape)")
            } else if !info.isConvertibleToFloat {
                mismatches.append("\(entry): stored as \(info.dtype), which does not convert to float32")
            } else {
                sources.append((spec.name, entry))
            }
        }
        let used = Set(sources.map(\.entry))
        let known = Set(variableSpecs.map(\.name))
        var unexpected: [String] = []
        for info in reader.variables where !used.contains(info.name) {
            let name = info.name
            let isMetadata = name == "global_step" || name.isEmpty || name.hasPrefix("_CHECKPOINTABLE_OBJECT_GRAPH")
            // Of a variable and its moving average, the one not loaded is expected, not surplus.
            let isUnusedAverage = name.hasSuffix(emaSuffix) && known.contains(String(name.dropLast(emaSuffix.count)))
            let isReplacedByAverage = known.contains(name) && used.contains(name + emaSuffix)
            if isMetadata || isUnusedAverage || isReplacedByAverage || excluded(name) || options.ignoreUnexpected {
                report.ignored.append(name)
            } else {
                unexpected.append(name)
            }
        }
        guard missing.isEmpty, unexpected.isEmpty, mismatches.isEmpty else {
            throw WeightMismatchError(path: reader.path, missing: missing, unexpected: unexpected, shapeMismatches: mismatches)
        }
        var values: [String: Tensor] = [:]
        for (variable, entry) in sources { values[variable] = try reader.tensor(named: entry) }
        try assign(values)
        report.loaded = sources.map(\.variable)
        return report
    }
}

extension ModelOptions {
    /// Options that fit a weight file: the architecture from its scope and variables (starting from
    /// that architecture's defaults when it differs from these options'), the number of classes from
    /// its logits biases (0 when it has no logits), batch-norm scale when it holds gammas, auxiliary
    /// heads when it holds theirs. Other options stay as given.
    public func fitted(to reader: any WeightReader) -> ModelOptions {
        var options = self
        let architecture = Self.architecture(of: reader) ?? self.architecture
        if architecture != self.architecture {
            options = .defaults(for: architecture)
            options.isTraining = isTraining
            options.finalEndpoint = finalEndpoint
            options.includeRootBlock = includeRootBlock
            options.spatialSqueeze = spatialSqueeze
            options.transformInput = transformInput
            options.globalPool = options.globalPool || globalPool
        }
        let network = architecture.network
        let biases = "\(network.scope)/\(network.logitsScope)/biases"
        options.numClasses = reader.info(named: biases)?.shape.first ?? 0
        options.auxiliaryLogits = network.auxiliaryHeads.contains { aux in
            reader.variables.contains { $0.name.hasPrefix("\(network.scope)/\(aux.name)/") }
        }
        options.batchNormScale = reader.variables.contains { $0.name.hasSuffix("/BatchNorm/gamma") }
        options.useBatchNorm = options.batchNormScale || reader.variables.contains { $0.name.hasSuffix("/BatchNorm/moving_mean") }
        return options
    }

    /// The architecture a weight file was written for: our metadata, else its variables (slim's
    /// `InceptionV1/` scope; `GoogLeNet/` with batch norm for torchvision's, without for the paper's).
    public static func architecture(of reader: any WeightReader) -> Architecture? {
        if let safetensors = reader as? SafeTensorsReader, let name = safetensors.metadata[ModelMetadata.keys.architecture],
           let a = Architecture(rawValue: name) { return a }
        let names = reader.variables.map(\.name)
        if names.contains(where: { $0.hasPrefix(InceptionV1.scope + "/") }) { return .inceptionV1 }
        guard names.contains(where: { $0.hasPrefix(GoogLeNet.scope + "/") }) else { return nil }
        return names.contains { $0.hasSuffix("/BatchNorm/moving_mean") } ? .googlenetTorchvision : .googlenet
    }
}
