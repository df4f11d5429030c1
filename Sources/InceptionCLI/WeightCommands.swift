import ArgumentParser
import Foundation
import Inception

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the variables of a weight file: name, dtype, shape, size.",
        discussion: """
        Reads TF-slim checkpoints (V1 single file; V2 as the prefix, e.g. model.ckpt-1000), \
        .safetensors and .npy files.
        Example: inception inspect inception_v1.ckpt
        """
    )

    @Argument(help: "The weight file (or V2 checkpoint prefix).")
    var file: String
    @Flag(help: "Print JSON: [{name, dtype, shape, bytes}].")
    var json = false

    func run() throws {
        let reader = try WeightFile.open(file)
        if json {
            let rows = reader.variables.map { ["name": $0.name, "dtype": $0.dtype, "shape": $0.shape, "bytes": $0.byteCount] as [String: Any] }
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        var table = TextTable(columns: ["Variable", "dtype", "Shape", "Elements", "Bytes"], rightAligned: [3, 4])
        var elements = 0, bytes = 0
        for info in reader.variables {
            table.add([info.name, info.dtype, "[" + info.shape.map(String.init).joined(separator: ", ") + "]",
                       grouped(info.elementCount), grouped(info.byteCount)])
            elements += info.elementCount
            bytes += info.byteCount
        }
        table.addSeparator()
        table.add(["\(reader.variables.count) variables", "", "", grouped(elements), grouped(bytes)])
        print(table.render())
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a TF-slim checkpoint (V1 or V2) to safetensors.",
        discussion: """
        Every numeric variable is written (global_step goes into the metadata). The file is \
        written to a temporary name and renamed, so a crash never leaves half a file.
        Example: inception convert inception_v1.ckpt inception_v1.safetensors
        """
    )

    @Argument(help: "The source weight file (or V2 checkpoint prefix).")
    var source: String
    @Argument(help: "The .safetensors file to write.")
    var destination: String
    @Option(help: "Stored element type: float32 or float16.")
    var dtype: String = "float32"
    @Flag(help: "Store NAME/ExponentialMovingAverage values under NAME and drop the copies.")
    var useMovingAverages = false

    func run() throws {
        let storage: SafeTensors.StorageType
        switch dtype {
        case "float32", "F32": storage = .float32
        case "float16", "F16": storage = .float16
        default: throw ValidationError("--dtype must be float32 or float16, not \(dtype)")
        }
        // A torchvision GoogLeNet state dict comes out with our names and layouts.
        let reader = try ModelWeights.open(source)
        var tensors = try reader.readAll()
        // Keep what a trained model says about itself (class names, input size).
        var metadata = (reader as? SafeTensorsReader)?.metadata ?? [:]
        if let architecture = ModelOptions.architecture(of: reader) { metadata["inception.architecture"] = architecture.rawValue }
        metadata["source"] = (source as NSString).lastPathComponent
        metadata["format"] = "inception-swift"
        if let step = tensors.removeValue(forKey: "global_step") { metadata["global_step"] = String(Int(step.scalars.first ?? 0)) }
        if useMovingAverages {
            let suffix = "/ExponentialMovingAverage"
            for name in tensors.keys.filter({ $0.hasSuffix(suffix) }) {
                tensors[String(name.dropLast(suffix.count))] = tensors.removeValue(forKey: name)
            }
        }
        try SafeTensors.write(tensors, metadata: metadata, to: destination, dtype: storage)
        let elements = tensors.values.reduce(0) { $0 + $1.count }
        print("wrote \(destination): \(tensors.count) tensors, \(grouped(elements)) elements, \(dtype)")
    }
}
