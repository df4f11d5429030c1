import ArgumentParser
import Foundation
import Inception

extension Architecture: ExpressibleByArgument {
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// `--model`, on every command that builds a network.
struct ModelChoice: ParsableArguments {
    @Option(help: ArgumentHelp("The network: inception_v1 (TF-slim, the default), googlenet (the paper: 5x5 branches, LRN, no batch norm) or googlenet_torchvision (torchvision's). With --weights the file decides; naming another model is an error.",
                               valueName: "name"))
    var model: Architecture?

    /// The chosen architecture's default options.
    var defaults: ModelOptions { .defaults(for: model ?? .inceptionV1) }

    /// Fails when `--model` names another network than the one built from a weight file.
    func check(_ built: Architecture, weights: String) throws {
        if let model, model != built {
            throw ModelError("--model \(model.rawValue), but \(weights) holds a \(built.rawValue) model")
        }
    }
}

/// Options that choose the network's shape, shared by the commands.
struct ModelShapeOptions: ParsableArguments {
    @OptionGroup var choice: ModelChoice
    @Option(help: "Classes of the logits layer (default: the model's: 1001 for inception_v1, the released ImageNet checkpoint; 1000 for the others; 0: pooled features).")
    var numClasses: Int?
    @Option(help: "The last base endpoint to build (e.g. Mixed_4c).")
    var finalEndpoint = "Mixed_5c"
    @Flag(help: "Mean over H and W instead of the 7x7 average pool (any input size; torchvision's always pools globally).")
    var globalPool = false
    @Flag(help: "Start at Mixed_3b (input: 192 channels).")
    var noRootBlock = false
    @Flag(help: "Leave out the auxiliary classifiers (googlenet, googlenet_torchvision).")
    var noAuxLogits = false

    func modelOptions() -> ModelOptions {
        var options = choice.defaults
        if let numClasses { options.numClasses = numClasses }
        options.globalPool = options.globalPool || globalPool
        options.finalEndpoint = finalEndpoint
        options.includeRootBlock = !noRootBlock
        if noAuxLogits { options.auxiliaryLogits = false }
        return options
    }
}

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each endpoint's output shape, parameters and multiply-accumulates.",
        discussion: """
        Parameters count every variable, batch-norm moving statistics included, as slim does;
        "trainable" leaves the moving statistics out (PyTorch's count). Auxiliary classifiers
        (googlenet, googlenet_torchvision) are listed after the head: they run in training only.
        Examples: inception summary --image-size 299 299 --global-pool --json
                  inception summary --model googlenet_torchvision --no-aux-logits
        """
    )

    @OptionGroup var model: ModelShapeOptions
    @Option(parsing: .upToNextOption, help: "Input height and width.")
    var imageSize: [Int] = [224, 224]
    @Flag(help: "Print JSON: {parameters, macs, endpoints: [{name, shape, parameters, macs}]}.")
    var json = false

    func validate() throws {
        guard imageSize.count == 2, imageSize.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--image-size takes two positive numbers: HEIGHT WIDTH")
        }
    }

    func run() throws {
        let network = try InceptionModel(options: model.modelOptions())
        let rows = try network.shapes(height: imageSize[0], width: imageSize[1])
        let parameters = network.parameterCount
        let trainable = network.variableSpecs.filter(\.trainable).reduce(0) { $0 + $1.count }
        let auxiliary = Set(network.auxiliaryHeads.map(\.name))
        let auxiliaryParameters = rows.filter { auxiliary.contains($0.name) }.reduce(0) { $0 + $1.parameters }
        let auxiliaryTrainable = network.variableSpecs.filter { spec in
            spec.trainable && network.auxiliaryHeads.contains { spec.name.hasPrefix("\(network.network.scope)/\($0.name)/") }
        }.reduce(0) { $0 + $1.count }
        // Inference cost: the auxiliary classifiers do not run.
        let macs = rows.filter { !auxiliary.contains($0.name) }.reduce(0) { $0 + $1.macs }
        if json {
            struct Report: Encodable {
                let model: String; let parameters: Int; let trainable_parameters: Int
                let auxiliary_parameters: Int; let trainable_parameters_without_auxiliary: Int
                let macs: Int; let endpoints: [EndpointSummary]
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let report = Report(model: network.options.architecture.rawValue, parameters: parameters, trainable_parameters: trainable,
                                auxiliary_parameters: auxiliaryParameters,
                                trainable_parameters_without_auxiliary: trainable - auxiliaryTrainable,
                                macs: macs, endpoints: rows)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        var table = TextTable(columns: ["Endpoint", "Output shape", "Parameters", "MACs"], rightAligned: [2, 3])
        for row in rows {
            table.add([row.name, row.shape.map(String.init).joined(separator: "x"),
                       grouped(row.parameters), grouped(row.macs)])
        }
        table.addSeparator()
        table.add(["Total (inference MACs)", "", grouped(parameters), grouped(macs)])
        table.add(["Trainable (no moving statistics)", "", grouped(trainable), ""])
        if !auxiliary.isEmpty {
            table.add(["Trainable without auxiliary heads", "", grouped(trainable - auxiliaryTrainable), ""])
        }
        print("\(network.options.architecture.rawValue):")
        print(table.render())
    }
}
