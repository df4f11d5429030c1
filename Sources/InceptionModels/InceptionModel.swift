import Foundation
import InceptionCore

/// A runnable network of the GoogLeNet family (slim's Inception V1 unless the options say
/// otherwise): the layer description, its options and its variables by slim-style name.
///
/// ```swift
/// let model = try InceptionModel(options: ModelOptions(numClasses: 1001))
/// try model.assign(weightsByName)                 // e.g. from a TF-slim checkpoint
/// let result = try model.forward(batch)           // batch: [N, 224, 224, 3] in [-1, 1]
/// result.endpoints["Mixed_4c"], result.output     // logits [N, 1001]
/// ```
public final class InceptionModel: @unchecked Sendable {
    public let options: ModelOptions
    /// The network description (`options.architecture`'s).
    public let network: Network
    /// The base layers that run, up to `options.finalEndpoint`.
    public let layers: [Layer]
    /// 3 with the root block, else 192 (the channels Mixed_3b takes).
    public let inputChannels: Int
    /// Every variable, in slim's creation order.
    public let variableSpecs: [VariableSpec]
    /// Whether the logits head is built (final endpoint Mixed_5c).
    public var hasHead: Bool { options.finalEndpoint == "Mixed_5c" }
    /// The auxiliary classifiers that exist (with a head, classes, and `options.auxiliaryLogits`).
    public var auxiliaryHeads: [AuxiliaryHead] {
        hasHead && options.numClasses > 0 && options.auxiliaryLogits ? network.auxiliaryHeads : []
    }
    /// The logits layer's full scope, e.g. `InceptionV1/Logits/Conv2d_0c_1x1`.
    public var logitsPath: String { "\(network.scope)/\(network.logitsScope)" }

    public private(set) var variables: [String: Tensor]
    private var compiled: [String: Convolution2D]?
    private var plan: InferencePlan?
    private var planSelection: PlanSelection?
    /// Input shapes `validate` has accepted: working out the shape table costs ~0.3 ms, 5% of a
    /// batch-1 forward pass, so each shape is checked once.
    private var acceptedInputShapes: Set<[Int]> = []
    private let lock = NSLock()
    private var dropoutGenerator: SeededGenerator

    /// How variables start before any weights are loaded.
    public enum Initialization: String, Sendable, CaseIterable, Codable {
        /// slim's: weights truncated normal (stddev 0.01) in the base, variance scaling in the
        /// logits; biases and beta 0, gamma 1 (torchvision's GoogLeNet uses the same 0.01 normal).
        case slim
        /// Caffe's bvlc_googlenet: Xavier-uniform weights (±sqrt(3 / fan in)), biases 0.2 except the
        /// classifiers' (0).
        case caffe

        /// `caffe` for the paper's network, `slim` otherwise.
        public static func `default`(for architecture: Architecture) -> Initialization {
            architecture == .googlenet ? .caffe : .slim
        }
    }

    /// Builds the model with fresh variables (moving mean 0 and moving variance 1 always).
    public init(options: ModelOptions = ModelOptions(), seed: UInt64 = 0, initialization: Initialization? = nil) throws {
        let network = options.network
        let all = network.rootBlock + network.inceptionBlocks
        guard let last = all.firstIndex(where: { $0.name == options.finalEndpoint }) else {
            throw ModelError("unknown final endpoint '\(options.finalEndpoint)' for \(options.architecture.rawValue); choose one of: "
                             + network.baseEndpoints.joined(separator: ", "))
        }
        let first = options.includeRootBlock ? 0 : network.rootBlock.count
        guard last >= first else {
            throw ModelError("final endpoint '\(options.finalEndpoint)' is in the root block, which is excluded")
        }
        guard options.numClasses >= 0 else { throw ModelError("the number of classes must be 0 or more") }
        self.options = options
        self.network = network
        layers = Array(all[first...last])
        inputChannels = options.includeRootBlock ? 3 : network.rootBlockChannels
        var specs: [VariableSpec] = []
        var channels = inputChannels
        var channelsAt: [String: Int] = [:]
        for layer in layers {
            channels = Self.collectVariables(layer, scope: network.scope, inputChannels: channels,
                                             options: options, into: &specs)
            channelsAt[layer.name] = channels
        }
        func addLogits(_ path: String, inputs: Int) {
            specs.append(VariableSpec(name: path + "/weights", shape: [1, 1, inputs, options.numClasses], role: .weights))
            specs.append(VariableSpec(name: path + "/biases", shape: [options.numClasses], role: .biases))
        }
        if options.finalEndpoint == "Mixed_5c" && options.numClasses > 0 {
            addLogits("\(network.scope)/\(network.logitsScope)", inputs: channels)
            if options.auxiliaryLogits {
                for aux in network.auxiliaryHeads {
                    guard var c = channelsAt[aux.endpoint] else { continue }
                    for layer in aux.layers {
                        c = Self.collectVariables(layer, scope: "\(network.scope)/\(aux.name)", inputChannels: c,
                                                  options: options, into: &specs)
                    }
                    addLogits("\(network.scope)/\(aux.name)/\(aux.logitsName)", inputs: c)
                }
            }
        }
        variableSpecs = specs
        dropoutGenerator = SeededGenerator(seed: seed ^ 0xD50F)
        var rng = SeededGenerator(seed: seed)
        let initialization = initialization ?? .default(for: options.architecture)
        let classifiers = Set(["\(network.scope)/\(network.logitsScope)"]
            + network.auxiliaryHeads.map { "\(network.scope)/\($0.name)/\($0.logitsName)" })
        var values: [String: Tensor] = [:]
        for spec in specs {
            let scope = spec.name.split(separator: "/").dropLast().joined(separator: "/")
            values[spec.name] = Self.initialValue(spec, initialization: initialization,
                                                  isClassifier: classifiers.contains(scope), using: &rng)
        }
        variables = values
    }

    /// Walks one layer, appending its variables; returns the channels it outputs.
    private static func collectVariables(_ layer: Layer, scope: String, inputChannels: Int,
                                         options: ModelOptions, into specs: inout [VariableSpec]) -> Int {
        switch layer {
        case .fullyConnected(let name, let out, let window):
            let s = "\(scope)/\(name)"
            specs.append(VariableSpec(name: s + "/weights",
                                      shape: [window.kernelHeight, window.kernelWidth, inputChannels, out], role: .weights))
            specs.append(VariableSpec(name: s + "/biases", shape: [out], role: .biases))
            return out
        case .conv(let name, let out, let window):
            let s = "\(scope)/\(name)"
            specs.append(VariableSpec(name: s + "/weights",
                                      shape: [window.kernelHeight, window.kernelWidth, inputChannels, out], role: .weights))
            if options.useBatchNorm {
                specs.append(VariableSpec(name: s + "/BatchNorm/beta", shape: [out], role: .beta))
                if options.batchNormScale {
                    specs.append(VariableSpec(name: s + "/BatchNorm/gamma", shape: [out], role: .gamma))
                }
                specs.append(VariableSpec(name: s + "/BatchNorm/moving_mean", shape: [out], role: .movingMean))
                specs.append(VariableSpec(name: s + "/BatchNorm/moving_variance", shape: [out], role: .movingVariance))
            } else {
                specs.append(VariableSpec(name: s + "/biases", shape: [out], role: .biases))
            }
            return out
        case .maxPool, .avgPool, .localResponseNorm, .adaptiveAvgPool:
            return inputChannels
        case .mixed(let name, let branches):
            var total = 0
            for (i, branch) in branches.enumerated() {
                var c = inputChannels
                for l in branch {
                    c = collectVariables(l, scope: "\(scope)/\(name)/Branch_\(i)", inputChannels: c,
                                         options: options, into: &specs)
                }
                total += c
            }
            return total
        }
    }

    private static func initialValue(_ spec: VariableSpec, initialization: Initialization, isClassifier: Bool,
                                     using rng: inout SeededGenerator) -> Tensor {
        let fanIn = spec.shape.dropLast().reduce(1, *)
        switch (spec.role, initialization) {
        case (.weights, .slim):
            // slim: truncated normal (0.01) inside the base; variance scaling (factor 2, fan in,
            // truncated normal: stddev sqrt(1.3·2/fan_in)) for the logits.
            let std: Float = isClassifier ? (2.6 / Float(fanIn)).squareRoot() : 0.01
            return Tensor(shape: spec.shape, scalars: (0..<spec.count).map { _ in rng.truncatedNormal() * std })
        case (.weights, .caffe):
            // Caffe's "xavier" filler: uniform in ±sqrt(3 / fan_in).
            let limit = (3 / Float(fanIn)).squareRoot()
            return Tensor(shape: spec.shape, scalars: (0..<spec.count).map { _ in Float.random(in: -limit...limit, using: &rng) })
        case (.biases, .caffe) where !isClassifier: return Tensor(repeating: 0.2, shape: spec.shape)
        case (.biases, _), (.beta, _), (.movingMean, _): return Tensor(zeros: spec.shape)
        case (.gamma, _), (.movingVariance, _): return Tensor(repeating: 1, shape: spec.shape)
        }
    }

    // MARK: Variables

    /// Replaces variables by name. Every name must be one of the model's and every shape must
    /// match; all problems are reported together and nothing is changed unless all are fine.
    public func assign(_ values: [String: Tensor]) throws {
        let specs = Dictionary(uniqueKeysWithValues: variableSpecs.map { ($0.name, $0) })
        var problems: [String] = []
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            guard let spec = specs[name] else { problems.append("unknown variable \(name)"); continue }
            if spec.shape != value.shape {
                problems.append("\(name): expected shape \(spec.shape), got \(value.shape)")
            }
        }
        guard problems.isEmpty else { throw ModelError(problems.joined(separator: "\n")) }
        lock.lock(); defer { lock.unlock() }
        for (name, value) in values { variables[name] = value }
        compiled = nil
        plan = nil
    }

    /// The number of elements of all variables (slim's model-variable count, moving statistics included).
    public var parameterCount: Int { variableSpecs.reduce(0) { $0 + $1.count } }

    // MARK: Running

    /// The result of a forward pass.
    public struct Output: Sendable {
        /// The network's output: logits, pooled features (no classes) or the final endpoint.
        public let output: Tensor
        /// Every endpoint computed, in network order.
        public let endpoints: Endpoints
    }

    /// Which endpoints a forward pass returns (each one kept costs a copy of that activation).
    public enum EndpointSelection: Sendable {
        case all, none
        case only(Set<String>)

        func contains(_ name: String) -> Bool {
            switch self {
            case .all: return true
            case .none: return false
            case .only(let names): return names.contains(name)
            }
        }
    }

    /// Runs the network on an NHWC batch (values in [-1, 1] for the released weights).
    ///
    /// In inference mode this runs a plan of kernel calls over reused buffers (batch norm folded
    /// into the convolutions); one pass at a time per model. In training mode batch norm uses the
    /// batch's statistics and dropout is active.
    public func forward(_ input: Tensor, endpoints selection: EndpointSelection = .all) throws -> Output {
        try validate(inputShape: input.shape)
        let input = options.transformInput ? Self.torchvisionInputTransform(input) : input
        if options.isTraining { return trainingForward(input, selection: selection) }
        let convs = inferenceConvolutions()
        lock.lock(); defer { lock.unlock() }
        if plan?.inputShape != input.shape || planSelection != PlanSelection(selection) {
            plan = nil  // free the old buffers before planning new ones
            let head = hasHead ? InferencePlan.Head(
                globalPool: options.globalPool, poolWindow: network.headPoolWindow,
                logits: options.numClasses > 0 ? convs[logitsPath] : nil,
                spatialSqueeze: options.spatialSqueeze) : nil
            plan = InferencePlan(inputShape: input.shape, scope: network.scope, layers: layers, head: head,
                                 convolutions: convs, keep: selection.contains)
            planSelection = PlanSelection(selection)
        }
        let (output, all) = plan!.run(input)
        var endpoints = Endpoints()
        for name in all.names where selection.contains(name) { endpoints.append(name, all[name]!) }
        return Output(output: output, endpoints: endpoints)
    }

    /// Bytes of activation buffers held by the current inference plan.
    public var planBufferBytes: Int { lock.lock(); defer { lock.unlock() }; return plan?.bufferBytes ?? 0 }

    /// torchvision's `transform_input`: per channel x·(std/0.5) + (mean − 0.5)/0.5, which turns an
    /// ImageNet mean/std-normalized image into the [-1, 1] scale.
    public static func torchvisionInputTransform(_ input: Tensor) -> Tensor {
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        var out = input
        let c = input.shape.last!
        precondition(c == 3, "the input transform applies to RGB input")
        for i in 0..<out.count {
            let ch = i % 3
            out.scalars[i] = input.scalars[i] * (std[ch] / 0.5) + (mean[ch] - 0.5) / 0.5
        }
        return out
    }

    private func trainingForward(_ input: Tensor, selection: EndpointSelection) -> Output {
        var endpoints = Endpoints()
        var x = input
        for layer in layers {
            x = run(layer, scope: network.scope, input: x)
            endpoints.append(layer.name, x)
        }
        guard hasHead else { return Output(output: x, endpoints: endpoints.filtered(selection.contains)) }
        let pooled: Tensor
        if options.globalPool {
            pooled = Pooling.globalAverage(x)
            endpoints.append("global_pool", pooled)
        } else {
            pooled = Pooling.pool(.average, x, network.headPoolWindow)
            endpoints.append("AvgPool_0a_7x7", pooled)
        }
        guard options.numClasses > 0 else { return Output(output: pooled, endpoints: endpoints.filtered(selection.contains)) }
        let logits = classifier(logitsPath, pooled, keep: options.dropoutKeepProbability)
        endpoints.append("Logits", logits)
        endpoints.append("Predictions", Ops.softmax(logits))
        for aux in auxiliaryHeads {
            let features = aux.layers.reduce(endpoints[aux.endpoint]!) { x, l in run(l, scope: "\(network.scope)/\(aux.name)", input: x) }
            endpoints.append(aux.name, classifier("\(network.scope)/\(aux.name)/\(aux.logitsName)", features,
                                                 keep: options.auxiliaryDropoutKeepProbability))
        }
        return Output(output: logits, endpoints: endpoints.filtered(selection.contains))
    }

    /// Dropout → 1x1 convolution with biases → (squeezed) logits.
    private func classifier(_ path: String, _ features: Tensor, keep: Float) -> Tensor {
        let dropped = Ops.dropout(features, keep: keep, using: &dropoutGenerator)
        let logits = Convolution2D(weights: variables[path + "/weights"]!, bias: variables[path + "/biases"]!.scalars,
                                   relu: false)(dropped)
        return options.spatialSqueeze && logits.shape[1] == 1 && logits.shape[2] == 1
            ? logits.reshaped([logits.shape[0], options.numClasses]) : logits
    }

    /// Checks an input shape before anything runs, so a bad input is an error and not a crash.
    public func validate(inputShape shape: [Int]) throws {
        lock.lock(); let accepted = acceptedInputShapes.contains(shape); lock.unlock()
        if accepted { return }
        guard shape.count == 4 else {
            throw ModelError("input must be a 4-D NHWC batch [N, H, W, \(inputChannels)], got shape \(shape)")
        }
        guard shape[3] == inputChannels else {
            throw ModelError("input has \(shape[3]) channels; this model takes \(inputChannels)"
                + (options.includeRootBlock ? " (RGB)" : " (the Mixed_3b input, without the root block)"))
        }
        guard shape[0] > 0, shape[1] > 0, shape[2] > 0 else { throw ModelError("input shape \(shape) is empty") }
        let rows = try shapes(height: shape[1], width: shape[2])
        if let pool = rows.first(where: { $0.name == "AvgPool_0a_7x7" }), options.numClasses > 0,
           options.spatialSqueeze, pool.shape[1] != 1 || pool.shape[2] != 1 {
            throw ModelError("a \(shape[1])x\(shape[2]) input gives \(pool.shape[1])x\(pool.shape[2]) logits, which "
                + "cannot be squeezed; use global pooling, no spatial squeeze, or a \(InceptionV1.defaultImageSize)x\(InceptionV1.defaultImageSize) input")
        }
        lock.lock(); defer { lock.unlock() }
        if acceptedInputShapes.count >= 64 { acceptedInputShapes.removeAll() }
        acceptedInputShapes.insert(shape)
    }

    /// The training-mode forward of one layer, on whole tensors.
    private func run(_ layer: Layer, scope: String, input: Tensor) -> Tensor {
        switch layer {
        case .conv(let name, _, let window):
            return trainingConvolution("\(scope)/\(name)", window: window, input: input)
        case .fullyConnected(let name, _, let window):
            let path = "\(scope)/\(name)"
            return Convolution2D(weights: variables[path + "/weights"]!, bias: variables[path + "/biases"]!.scalars,
                                 stride: window.strideHeight, padding: window.padding, relu: true)(input)
        case .localResponseNorm(_, let lrn):
            return lrn(input)
        case .adaptiveAvgPool(_, let oh, let ow):
            return Pooling.adaptiveAverage(input, outputHeight: oh, outputWidth: ow)
        case .maxPool(_, let window):
            return Pooling.pool(.max, input, window)
        case .avgPool(_, let window):
            return Pooling.pool(.average, input, window)
        case .mixed(let name, let branches):
            let outputs = branches.enumerated().map { i, branch in
                branch.reduce(input) { x, l in run(l, scope: "\(scope)/\(name)/Branch_\(i)", input: x) }
            }
            return Ops.concatChannels(outputs)
        }
    }

    /// Convolution → batch norm with this batch's statistics → ReLU (slim with is_training=True).
    private func trainingConvolution(_ path: String, window: Window2D, input: Tensor) -> Tensor {
        let stride = window.strideHeight
        if !options.useBatchNorm {
            return Convolution2D(weights: variables[path + "/weights"]!, bias: variables[path + "/biases"]!.scalars,
                                 stride: stride, padding: window.padding, relu: true)(input)
        }
        let raw = Convolution2D(weights: variables[path + "/weights"]!, bias: nil, stride: stride,
                                padding: window.padding, relu: false)(input)
        let (mean, variance) = Ops.channelMoments(raw)
        let normalized = Ops.batchNorm(raw, mean: mean, variance: variance,
                                       beta: variables[path + "/BatchNorm/beta"]!.scalars,
                                       gamma: variables[path + "/BatchNorm/gamma"]?.scalars,
                                       epsilon: options.batchNormEpsilon)
        return Ops.relu(normalized)
    }

    /// Inference convolutions with batch norm folded into weights (as a per-channel scale, applied
    /// when the weights are packed) and bias, cached until the variables change. They share the
    /// variables' storage; the packed forms are made on first use (see ``Convolution2D``).
    private func inferenceConvolutions() -> [String: Convolution2D] {
        lock.lock(); defer { lock.unlock() }
        if let compiled { return compiled }
        var convs: [String: Convolution2D] = [:]
        var all = layers.flatMap { $0.convolutions(scope: network.scope) }
        if hasHead && options.numClasses > 0 { all.append((logitsPath, Window2D(1), true)) }
        for (path, window, fullyConnected) in all {
            let weights = variables[path + "/weights"]!
            let isLogits = path == logitsPath
            if fullyConnected || !options.useBatchNorm {
                convs[path] = Convolution2D(weights: weights, bias: variables[path + "/biases"]!.scalars,
                                            stride: window.strideHeight, padding: window.padding, relu: !isLogits)
                continue
            }
            let (scale, shift) = Ops.foldBatchNorm(
                mean: variables[path + "/BatchNorm/moving_mean"]!.scalars,
                variance: variables[path + "/BatchNorm/moving_variance"]!.scalars,
                beta: variables[path + "/BatchNorm/beta"]!.scalars,
                gamma: variables[path + "/BatchNorm/gamma"]?.scalars, epsilon: options.batchNormEpsilon)
            convs[path] = Convolution2D(weights: weights, outputScale: scale, bias: shift, stride: window.strideHeight,
                                        padding: window.padding, relu: true)
        }
        compiled = convs
        return convs
    }
}

/// The endpoints a cached plan emits (a plan is rebuilt when a pass asks for other ones).
private struct PlanSelection: Equatable {
    let all: Bool
    let names: Set<String>
    init(_ s: InceptionModel.EndpointSelection) {
        switch s {
        case .all: all = true; names = []
        case .none: all = false; names = []
        case .only(let n): all = false; names = n
        }
    }
}
