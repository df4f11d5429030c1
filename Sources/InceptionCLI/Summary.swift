import ArgumentParser
import Foundation
import Inception

/// Options that choose the network's shape, shared by the commands.
struct ModelShapeOptions: ParsableArguments {
    @Option(help: "Classes of the logits layer (1001 for the released ImageNet checkpoint; 0: pooled features).")
    var numClasses = 1001
    @Option(help: "The last base endpoint to build (e.g. Mixed_4c).")
    var finalEndpoint = "Mixed_5c"
    @Flag(help: "Mean over H and W instead of the 7x7 average pool (any input size).")
    var globalPool = false
    @Flag(help: "Start at Mixed_3b (input: 192 channels).")
    var noRootBlock = false

    func modelOptions() -> ModelOptions {
        ModelOptions(numClasses: numClasses, globalPool: globalPool, finalEndpoint: finalEndpoint,
                     includeRootBlock: !noRootBlock)
    }
}

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each endpoint's output shape, parameters and multiply-accumulates.",
        discussion: """
        Parameters count every variable, batch-norm moving statistics included, as slim does.
        Example: inception summary --image-size 299 299 --global-pool --json
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
        let macs = rows.reduce(0) { $0 + $1.macs }
        if json {
            struct Report: Encodable { let parameters: Int; let macs: Int; let endpoints: [EndpointSummary] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(Report(parameters: parameters, macs: macs, endpoints: rows)), as: UTF8.self))
            return
        }
        var table = TextTable(columns: ["Endpoint", "Output shape", "Parameters", "MACs"], rightAligned: [2, 3])
        for row in rows {
            table.add([row.name, row.shape.map(String.init).joined(separator: "x"),
                       grouped(row.parameters), grouped(row.macs)])
        }
        table.addSeparator()
        table.add(["Total", "", grouped(parameters), grouped(macs)])
        print(table.render())
    }
}
