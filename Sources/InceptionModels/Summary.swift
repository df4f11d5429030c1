import InceptionCore

/// One row of a model summary: an endpoint, its output shape and what it costs.
public struct EndpointSummary: Sendable, Equatable, Codable {
    public let name: String
    /// Output shape for one image, NHWC (or [1, classes] for squeezed logits).
    public let shape: [Int]
    /// Variables created by this endpoint (moving statistics included, as slim counts them).
    public let parameters: Int
    /// Multiply-accumulates for one image (convolutions and the logits layer).
    public let macs: Int
}

extension InceptionModel {
    /// Shapes, parameters and multiply-accumulates per endpoint for one image of the given size,
    /// in network order. Throws when the size does not fit (a VALID pool larger than its input).
    public func shapes(height: Int, width: Int) throws -> [EndpointSummary] {
        var rows: [EndpointSummary] = []
        var shape = [1, height, width, inputChannels]
        let specs = Dictionary(uniqueKeysWithValues: variableSpecs.map { ($0.name, $0) })
        func params(_ prefix: String) -> Int {
            specs.values.filter { $0.name.hasPrefix(prefix + "/") }.reduce(0) { $0 + $1.count }
        }
        for layer in layers {
            var macs = 0
            shape = Self.outputShape(layer, input: shape, macs: &macs)
            rows.append(EndpointSummary(name: layer.name, shape: shape,
                                        parameters: params("\(network.scope)/\(layer.name)"), macs: macs))
        }
        guard hasHead else { return rows }
        if options.globalPool {
            shape = [1, 1, 1, shape[3]]
            rows.append(EndpointSummary(name: "global_pool", shape: shape, parameters: 0, macs: 0))
        } else {
            guard let pooled = Pooling.outputShape(network.headPoolWindow, input: shape) else {
                throw ModelError("a \(height)x\(width) input leaves a \(shape[1])x\(shape[2]) Mixed_5c map, smaller than "
                    + "the 7x7 AvgPool_0a_7x7 window; use global pooling or an input of at least 224x224")
            }
            shape = pooled
            rows.append(EndpointSummary(name: "AvgPool_0a_7x7", shape: shape, parameters: 0, macs: 0))
        }
        guard options.numClasses > 0 else { return rows }
        let logitsShape = options.spatialSqueeze && shape[1] == 1 && shape[2] == 1
            ? [1, options.numClasses] : [1, shape[1], shape[2], options.numClasses]
        rows.append(EndpointSummary(name: "Logits", shape: logitsShape,
                                    parameters: params("\(network.scope)/Logits"),
                                    macs: shape[1] * shape[2] * shape[3] * options.numClasses))
        rows.append(EndpointSummary(name: "Predictions", shape: logitsShape, parameters: 0, macs: 0))
        // Auxiliary classifiers (training only), each from the base endpoint it reads; left out at
        // input sizes where their fixed windows do not fit (training says so).
        for aux in auxiliaryHeads {
            guard var s = rows.first(where: { $0.name == aux.endpoint })?.shape else { continue }
            var macs = 0
            var fits = true
            for layer in aux.layers {
                if case .avgPool(_, let w) = layer, w.geometry(inputHeight: s[1], inputWidth: s[2]) == nil { fits = false; break }
                if case .fullyConnected(_, _, let w) = layer, w.geometry(inputHeight: s[1], inputWidth: s[2]) == nil { fits = false; break }
                s = Self.outputShape(layer, input: s, macs: &macs)
            }
            guard fits else { continue }
            macs += s[1] * s[2] * s[3] * options.numClasses
            rows.append(EndpointSummary(name: aux.name, shape: [1, options.numClasses],
                                        parameters: params("\(network.scope)/\(aux.name)"), macs: macs))
        }
        return rows
    }

    /// The output shape of a layer, adding its multiply-accumulates to `macs`.
    private static func outputShape(_ layer: Layer, input: [Int], macs: inout Int) -> [Int] {
        switch layer {
        case .conv(_, let out, let window), .fullyConnected(_, let out, let window):
            let g = window.geometry(inputHeight: input[1], inputWidth: input[2])!
            macs += g.outputHeight * g.outputWidth * window.kernelHeight * window.kernelWidth * input[3] * out
            return [input[0], g.outputHeight, g.outputWidth, out]
        case .maxPool(_, let window), .avgPool(_, let window):
            let g = window.geometry(inputHeight: input[1], inputWidth: input[2])!
            return [input[0], g.outputHeight, g.outputWidth, input[3]]
        case .localResponseNorm: return input
        case .adaptiveAvgPool(_, let oh, let ow): return [input[0], oh, ow, input[3]]
        case .mixed(_, let branches):
            var channels = 0
            var spatial = input
            for branch in branches {
                var s = input
                for l in branch { s = outputShape(l, input: s, macs: &macs) }
                channels += s[3]
                spatial = s
            }
            return [spatial[0], spatial[1], spatial[2], channels]
        }
    }
}
