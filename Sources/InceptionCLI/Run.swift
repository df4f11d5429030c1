import ArgumentParser
import Foundation
import Inception

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the network on a preprocessed .npy batch and write endpoints as .npy files.",
        discussion: """
        The input is an NHWC float32 .npy batch already preprocessed to [-1, 1]. The number of \
        classes and batch-norm scale are read from the weights unless given.
        Example: inception run --weights inception_v1.ckpt --input batch.npy --output-dir out --endpoints Mixed_4c,Logits
        """
    )

    @Option(help: "Weights: a TF V1 checkpoint file, a V2 prefix (model.ckpt-1000) or a .safetensors file.")
    var weights: String
    @Option(help: "NHWC float32 .npy batch, values in [-1, 1].")
    var input: String
    @Option(help: "Directory for ENDPOINT.npy files (created if needed).")
    var outputDir: String
    @Option(help: "Comma-separated endpoints to write (default: Logits,Predictions).")
    var endpoints: String = "Logits,Predictions"
    @Option(help: "Classes of the logits layer (default: as in the weights).")
    var numClasses: Int?
    @Flag(help: "Mean over H and W instead of the 7x7 average pool (any input size).")
    var globalPool = false
    @Flag(help: "Skip variables in the file that the model does not have.")
    var ignoreUnexpected = false
    @Flag(help: "Use the ExponentialMovingAverage copies of the weights when present.")
    var useMovingAverages = false
    @OptionGroup var choice: ModelChoice
    @Flag(help: "The input is ImageNet mean/std normalized, as torchvision's pretrained GoogLeNet expects (its transform_input).")
    var torchvisionInput = false

    func run() throws {
        let reader = try ModelWeights.open(weights)
        var options = choice.defaults
        options.globalPool = options.globalPool || globalPool
        options.transformInput = torchvisionInput
        options = options.fitted(to: reader)
        try choice.check(options.architecture, weights: weights)
        if let numClasses { options.numClasses = numClasses }
        let wanted = endpoints.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let model = try InceptionModel(options: options)
        let batch = try NPY.read(input)
        try model.validate(inputShape: batch.shape)
        let available = try model.shapes(height: batch.shape[1], width: batch.shape[2]).map(\.name)
        let unknown = wanted.filter { !available.contains($0) }
        guard unknown.isEmpty else {
            throw ValidationError("unknown endpoint(s) \(unknown.joined(separator: ", ")); this model has: \(available.joined(separator: ", "))")
        }
        try model.loadWeights(from: reader, options: WeightLoadingOptions(
            ignoreUnexpected: ignoreUnexpected, useMovingAverages: useMovingAverages))
        let result = try model.forward(batch, endpoints: .only(Set(wanted)))
        try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
        for name in wanted {
            let path = (outputDir as NSString).appendingPathComponent("\(name).npy")
            try NPY.write(result.endpoints[name]!, to: path)
            print("\(path)  \(result.endpoints[name]!.shape)")
        }
    }
}
