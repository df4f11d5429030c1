import ArgumentParser
import Foundation
import Inception

/// Options shared by the commands that read photos.
struct PhotoModelOptions: ParsableArguments {
    @OptionGroup var choice: ModelChoice
    @Option(help: "Weights (TF checkpoint, .safetensors, or torchvision's GoogLeNet .pth). Default: the released inception_v1 ImageNet checkpoint from the cache ($INCEPTION_HOME or ~/.cache/inception), downloaded on first use.")
    var weights: String?
    @Option(help: "Images per forward pass.")
    var batchSize = 16
    @Option(help: "Resize sampling: 'slim' (TF1 resize_bilinear, what slim's eval and the released checkpoint use) or 'half-pixel' (TF2 tf.image.resize).")
    var resize = "slim"

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be at least 1") }
        guard ["slim", "half-pixel"].contains(resize) else { throw ValidationError("--resize must be 'slim' or 'half-pixel'") }
    }

    var preprocessing: Preprocessing {
        Preprocessing(resizeCenters: resize == "slim" ? .legacyTF1 : .halfPixel)
    }

    /// The weights path, fetching the released checkpoint into the cache when none is given.
    func weightsPath() throws -> String {
        if let weights { return weights }
        if let model = choice.model, model != .inceptionV1 {
            throw ValidationError("no released weights are bundled for \(model.rawValue): give --weights (e.g. torchvision's googlenet-1378be20.pth, "
                + "or a model from `inception train --model \(model.rawValue)`)")
        }
        let store = WeightStore()
        if let cached = store.cachedPath(for: .inceptionV1ImageNet) { return cached }
        let bar = ProgressBar(total: Int(PretrainedWeights.inceptionV1ImageNet.byteCount), label: "downloading inception_v1", unit: "B")
        let path = try store.ensure(.inceptionV1ImageNet) { done, _ in bar.advance(by: Int(done) - bar.done) }
        bar.finish()
        return path
    }
}

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify JPEG/PNG photos with ImageNet labels (top-K table per image, or JSON lines).",
        discussion: """
        Takes files and directories (searched recursively for .jpg, .jpeg, .png). A file that cannot \
        be read is reported with its reason and the others go on; the exit code is 1 if any failed.
        Example: inception classify --top 5 Samples/
        """
    )

    @OptionGroup var model: PhotoModelOptions
    @Option(help: "Classes to show per image.")
    var top = 5
    @Option(help: "Label file, one name per output (default: ImageNet, 1001 or 1000 outputs).")
    var labels: String?
    @Flag(help: "One JSON object per image: {path, predictions: [{rank, index, label, probability}]} or {path, error}.")
    var json = false
    @Argument(help: "Image files or directories.")
    var paths: [String]

    func validate() throws {
        guard top > 0 else { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        let files = ImageFiles.expand(paths)
        guard !files.isEmpty else { throw ValidationError("no .jpg, .jpeg or .png files in \(paths.joined(separator: " "))") }
        let labelNames = try labels.map { try Labels(contentsOf: $0) }
        let weights = try model.weightsPath()
        let classifier = try Classifier(weights: weights, labels: labelNames, preprocessing: model.preprocessing, options: model.choice.defaults)
        try model.choice.check(classifier.model.options.architecture, weights: weights)
        let bar = ProgressBar(total: files.count, label: "classifying", unit: "img", visible: files.count > model.batchSize && isTerminal())
        var failures = 0
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for start in stride(from: 0, to: files.count, by: model.batchSize) {
            let chunk = Array(files[start..<min(start + model.batchSize, files.count)])
            let decoded = ImageFiles.decode(chunk)
            var images: [RGBImage] = [], kept: [String] = []
            for (path, result) in zip(chunk, decoded) {
                switch result {
                case .success(let image): images.append(image); kept.append(path)
                case .failure(let error):
                    failures += 1
                    if json { print(jsonLine(["path": path, "error": error.description])) } else { printError(error.description) }
                }
            }
            for (path, predictions) in zip(kept, try classifier.classify(images, top: top)) {
                if json {
                    struct Line: Encodable { let path: String; let predictions: [Classifier.Prediction] }
                    print(String(decoding: try encoder.encode(Line(path: path, predictions: predictions)), as: UTF8.self))
                } else {
                    var table = TextTable(columns: ["Rank", "Label", "Probability"], rightAligned: [0, 2])
                    for p in predictions { table.add(["\(p.rank)", p.label, String(format: "%.4f", p.probability)]) }
                    print(path)
                    print(table.render())
                    print()
                }
            }
            bar.advance(by: chunk.count)
        }
        bar.finish()
        if failures > 0 {
            printError("\(failures) of \(files.count) file(s) could not be read")
            throw ExitCode(1)
        }
    }
}

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one endpoint's activations for photos as a .npy array (one row per image), plus the list of paths.",
        discussion: """
        Rows are pooled over height and width unless --no-pool. The paths of the images, in row \
        order, go to OUTPUT with .paths.txt in place of .npy. Unreadable files are reported and skipped.
        Example: inception features --endpoint Mixed_5c Samples/ --output features.npy
        """
    )

    @OptionGroup var model: PhotoModelOptions
    @Option(help: "The endpoint (e.g. Mixed_5c, AvgPool_0a_7x7, Logits).")
    var endpoint = "AvgPool_0a_7x7"
    @Flag(help: "Keep the full [N, H, W, C] maps instead of the mean over H and W.")
    var noPool = false
    @Option(help: "The .npy file to write.")
    var output: String
    @Argument(help: "Image files or directories.")
    var paths: [String]

    func run() throws {
        let files = ImageFiles.expand(paths)
        guard !files.isEmpty else { throw ValidationError("no .jpg, .jpeg or .png files in \(paths.joined(separator: " "))") }
        let weights = try model.weightsPath()
        let extractor = try FeatureExtractor(weights: weights, endpoint: endpoint, preprocessing: model.preprocessing, options: model.choice.defaults)
        try model.choice.check(extractor.model.options.architecture, weights: weights)
        let bar = ProgressBar(total: files.count, label: "features", unit: "img", visible: files.count > model.batchSize && isTerminal())
        var rows: [Tensor] = [], kept: [String] = []
        var failures = 0
        for start in stride(from: 0, to: files.count, by: model.batchSize) {
            let chunk = Array(files[start..<min(start + model.batchSize, files.count)])
            var images: [RGBImage] = []
            for (path, result) in zip(chunk, ImageFiles.decode(chunk)) {
                switch result {
                case .success(let image): images.append(image); kept.append(path)
                case .failure(let error): failures += 1; printError(error.description)
                }
            }
            if !images.isEmpty { rows.append(try extractor.features(images, pool: !noPool)) }
            bar.advance(by: chunk.count)
        }
        bar.finish()
        guard let first = rows.first else { throw ValidationError("no image could be read") }
        let all = Tensor(shape: [kept.count] + first.shape.dropFirst(), scalars: rows.flatMap(\.scalars))
        try NPY.write(all, to: output)
        let listPath = (output.hasSuffix(".npy") ? String(output.dropLast(4)) : output) + ".paths.txt"
        try (kept.joined(separator: "\n") + "\n").write(toFile: listPath, atomically: true, encoding: .utf8)
        print("wrote \(output) \(all.shape) and \(listPath)")
        if failures > 0 { throw ExitCode(1) }
    }
}

struct Visualize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw one endpoint's feature maps for a photo as a PNG grid of tiles.",
        discussion: """
        Each channel is scaled to its own range and coloured from dark blue (low) to yellow (high).
        Example: inception visualize --endpoint Conv2d_2c_3x3 Samples/cat.jpg --output cat-conv2c.png
        """
    )

    @OptionGroup var model: PhotoModelOptions
    @Option(help: "The endpoint whose maps to draw (e.g. Conv2d_1a_7x7, Mixed_4c).")
    var endpoint = "Conv2d_2c_3x3"
    @Option(help: "Most channels to draw (the first ones).")
    var maxChannels = 256
    @Option(help: "The .png file to write.")
    var output: String
    @Argument(help: "The image.")
    var image: String

    func run() throws {
        let photo = try ImageDecoder.decode(contentsOf: image)
        let weights = try model.weightsPath()
        let extractor = try FeatureExtractor(weights: weights, endpoint: endpoint, preprocessing: model.preprocessing, options: model.choice.defaults)
        try model.choice.check(extractor.model.options.architecture, weights: weights)
        let maps = try extractor.features([photo], pool: false)
        guard maps.rank == 4 else { throw ValidationError("\(endpoint) is not a spatial map (shape \(maps.shape))") }
        let grid = FeatureMapGrid.render(maps, maxChannels: maxChannels)
        try PNGEncoder.write(grid, to: output)
        print("wrote \(output): \(min(maps.shape[3], maxChannels)) of \(maps.shape[3]) channels of \(endpoint) (\(maps.shape[1])x\(maps.shape[2])), \(grid.width)x\(grid.height) pixels")
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
}

func isTerminal() -> Bool { isatty(STDERR_FILENO) == 1 }

func jsonLine(_ object: [String: String]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    return String(decoding: data, as: UTF8.self)
}
