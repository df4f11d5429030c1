import ArgumentParser
import Foundation
import Inception
import InceptionTraining

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train or fine-tune on an image folder (one sub-folder per class), the TF-slim way.",
        discussion: """
        Fine-tuning from the ImageNet checkpoint: --weights inception_v1.ckpt \
        --checkpoint-exclude-scopes InceptionV1/Logits [--trainable-scopes InceptionV1/Logits].
        The run directory gets checkpoints (every --checkpoint-every steps and each epoch, written \
        atomically), metrics.jsonl, curves.png and, at the end, model.safetensors (with the class \
        names and input size, ready for `inception classify`). A killed run continues with --resume.
        Other networks: --model googlenet (the paper's; trained with --recipe caffe by default: SGD \
        with momentum 0.9, learning rate 0.01 lowered 4% every 8 epochs, weight decay 2e-4, Xavier \
        initialization, biases 0.2) or --model googlenet_torchvision (e.g. fine-tuning torchvision's \
        googlenet-1378be20.pth). Their auxiliary classifiers train with loss weight --aux-loss-weight \
        (0.3; 0 leaves them out) at 224x224.
        Example: inception train --data Data/digits --image-size 64 64 --batch-size 32 --epochs 6 --output-dir runs/digits
        """
    )

    @OptionGroup var choice: ModelChoice
    @Option(help: "Training defaults: slim (RMSProp, lr 0.01 x0.94 every 2 epochs, weight decay 4e-5) or caffe (SGD momentum 0.9, lr 0.01 x0.96 every 8 epochs, weight decay 2e-4, Xavier init, biases 0.2). Default: caffe for googlenet, else slim. Options given explicitly win.")
    var recipe: String?
    @Option(help: "Weight of each auxiliary classifier's loss (googlenet, googlenet_torchvision; 0: train without them).")
    var auxLossWeight: Float = 0.3
    @Option(help: "Training images: one sub-folder per class.") var data: String
    @Option(help: "Validation images (same class folders); default: --validation-split of --data.") var validationData: String?
    @Option(help: "Fraction of each class held out for validation when no --validation-data.") var validationSplit = 0.1
    @Option(help: "Weights to start from (TF checkpoint or .safetensors).") var weights: String?
    @Option(help: "Comma-separated scopes not loaded from --weights (e.g. InceptionV1/Logits).") var checkpointExcludeScopes: String?
    @Option(help: "Comma-separated scopes to train; the rest stay frozen (default: all).") var trainableScopes: String?
    @Option(parsing: .upToNextOption, help: "Training input height and width (other than 224: global pooling).") var imageSize: [Int] = [224, 224]
    @Option(help: "Images per step.") var batchSize = 32
    @Option(help: "Epochs to train (in all, when resuming).") var epochs = 10
    @Option(help: "rmsprop, sgd, momentum or adam (default: the recipe's).") var optimizer: String?
    @Option(help: "Initial learning rate.") var learningRate: Float = 0.01
    @Option(help: "exponential (the recipe's rate and period), polynomial (to 0.0001) or fixed.") var learningRateDecay = "exponential"
    @Option(help: "Steps of linear warm-up.") var warmupSteps = 0
    @Option(help: "Label smoothing (0 = off).") var labelSmoothing: Float = 0
    @Option(help: "L2 weight decay on weights (default: the recipe's).") var weightDecay: Float?
    @Option(help: "Batch-norm moving-average decay (slim: 0.9997; short runs want e.g. 0.99).") var batchNormDecay: Float = 0.9997
    @Option(help: "slim (random crop, flip, colour), flip, or none.") var augmentation = "slim"
    @Option(help: "Save a checkpoint every N steps (and after each epoch).") var checkpointEvery = 200
    @Option(help: "Numbered checkpoints to keep besides the latest.") var keepCheckpoints = 2
    @Flag(help: "Skip and count unreadable images instead of stopping.") var skipBadImages = false
    @Option(help: "Random seed (data order, augmentation, initialisation, dropout).") var seed: UInt64 = 0
    @Flag(help: "Continue the run in --output-dir from its newest checkpoint.") var resume = false
    @Flag(inversion: .prefixedNo, help: ArgumentHelp(winogradTrainingHelp)) var winograd = true
    @Flag(help: ArgumentHelp(bfloat16TrainingHelp)) var bf16 = false
    @Option(help: "The run directory.") var outputDir: String

    func validate() throws {
        guard imageSize.count == 2, imageSize.allSatisfy({ $0 >= 32 }) else { throw ValidationError("--image-size takes HEIGHT WIDTH, each at least 32") }
        guard batchSize > 0, epochs > 0, checkpointEvery > 0 else { throw ValidationError("--batch-size, --epochs and --checkpoint-every must be positive") }
        if let optimizer, OptimizerConfig.Kind(rawValue: optimizer) == nil { throw ValidationError("--optimizer must be rmsprop, sgd, momentum or adam") }
        if let recipe, !["slim", "caffe"].contains(recipe) { throw ValidationError("--recipe must be slim or caffe") }
        guard auxLossWeight >= 0 else { throw ValidationError("--aux-loss-weight must not be negative") }
        guard ["exponential", "polynomial", "fixed"].contains(learningRateDecay) else { throw ValidationError("--learning-rate-decay must be exponential, polynomial or fixed") }
        guard ["slim", "flip", "none"].contains(augmentation) else { throw ValidationError("--augmentation must be slim, flip or none") }
        guard batchNormDecay > 0 && batchNormDecay < 1 else { throw ValidationError("--batch-norm-decay must be in (0, 1)") }
        guard validationSplit >= 0 && validationSplit < 1 else { throw ValidationError("--validation-split must be in [0, 1)") }
    }

    func run() throws {
        Winograd.inTraining = winograd
        try enableBFloat16(bf16)
        var c = TrainingRun.Configuration(data: data)
        c.validationData = validationData
        c.validationSplit = validationSplit
        c.weights = weights
        c.checkpointExcludeScopes = scopes(checkpointExcludeScopes) ?? []
        c.trainableScopes = scopes(trainableScopes)
        c.imageHeight = imageSize[0]; c.imageWidth = imageSize[1]
        c.batchSize = batchSize; c.epochs = epochs
        let architecture = choice.model ?? .inceptionV1
        c.architecture = architecture
        c.auxiliaryLossWeight = auxLossWeight
        let caffe = (recipe ?? (architecture == .googlenet ? "caffe" : "slim")) == "caffe"
        if caffe {
            // bvlc_googlenet's solver and fillers; the paper lowers the rate 4% every 8 epochs.
            c.optimizer = .momentum; c.weightDecay = 0.0002; c.decayRate = 0.96; c.epochsPerDecay = 8
            c.initialization = .caffe
        } else {
            c.initialization = .slim
        }
        if let optimizer { c.optimizer = OptimizerConfig.Kind(rawValue: optimizer)! }
        if let weightDecay { c.weightDecay = weightDecay }
        c.learningRate = learningRate; c.learningRateDecay = learningRateDecay; c.warmupSteps = warmupSteps
        c.labelSmoothing = labelSmoothing; c.augmentation = augmentation
        c.batchNormDecay = batchNormDecay
        c.checkpointEverySteps = checkpointEvery; c.keepCheckpoints = keepCheckpoints
        c.skipBadImages = skipBadImages; c.seed = seed
        let run = try TrainingRun(configuration: c, directory: outputDir, resume: resume, onWarning: { printError("warning: " + $0) })
        var bar: ProgressBar?
        var epochLoss = 0.0, epochCorrect = 0, epochSeen = 0
        let start = Date()
        try run.run { event in
            switch event {
            case .started(let classes, let training, let validation, _, let resumedAt):
                print("\(classes.count) classes, \(training) training and \(validation) validation images"
                      + (resumedAt.map { ", resuming at step \($0)" } ?? "") + "; " + convolutionMode)
            case .step(let epoch, let batch, let batches, let result, let rate):
                if bar == nil || batch == 0 || bar!.done > batch {
                    bar?.finish()
                    bar = ProgressBar(total: batches, label: "epoch \(epoch + 1)/\(run.configuration.epochs)", unit: "batch")
                    bar!.advance(by: batch)
                    epochLoss = 0; epochCorrect = 0; epochSeen = 0
                }
                epochLoss += Double(result.crossEntropy); epochCorrect += result.correct; epochSeen += 1
                bar!.advance(note: String(format: "loss %.3f  acc %.1f%%  %.1f img/s  lr %.2g", epochLoss / Double(epochSeen),
                                          100 * Double(epochCorrect) / Double(max(1, epochSeen * run.configuration.batchSize)),
                                          rate, result.learningRate))
            case .epochEnded(let r):
                bar?.finish(); bar = nil
                var line = "epoch \(r.epoch): train loss \(String(format: "%.4f", r.trainLoss ?? .nan)), top-1 \(pct(r.trainTop1))"
                if let v = r.validationTop1 { line += "; validation loss \(String(format: "%.4f", r.validationLoss ?? .nan)), top-1 \(pct(v)), top-5 \(pct(r.validationTop5))" }
                print(line + String(format: "  (%.0f s)", r.seconds ?? 0))
            case .checkpointSaved: break
            case .warning(let message): printError("warning: " + message)
            }
        }
        print("wrote \(outputDir)/model.safetensors, metrics.jsonl and curves.png in \(Int(Date().timeIntervalSince(start))) s")
    }

    /// How this run's convolutions compute their products, for the first line of output.
    var convolutionMode: String {
        if BFloat16Training.isEnabled { return "convolution products in bfloat16 (--bf16)" }
        return winograd ? "3x3 convolutions as float32 Winograd (--no-winograd: direct)" : "convolutions direct (float32)"
    }

    func scopes(_ text: String?) -> [String]? {
        text.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Accuracy on an image folder: top-1, top-5, per class, and a confusion-matrix picture.",
        discussion: """
        Class folders are matched to the model's labels by name (the labels stored by `inception \
        train`, or --labels).
        Example: inception eval --weights runs/digits/model.safetensors --data Data/digits --confusion confusion.png
        """
    )

    @OptionGroup var choice: ModelChoice
    @Option(help: "The model (.safetensors from `inception train`, or a checkpoint with --labels).") var weights: String
    @Option(help: "Images: one sub-folder per class.") var data: String
    @Option(help: "Label file, one name per output, if the weights carry none.") var labels: String?
    @Option(help: "Images per forward pass.") var batchSize = 32
    @Option(help: "Write the confusion matrix here (PNG).") var confusion: String?
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        let names = try labels.map { try Labels(contentsOf: $0) }
        let classifier = try Classifier(weights: weights, labels: names, options: choice.defaults)
        try choice.check(classifier.model.options.architecture, weights: weights)
        let dataset = try ImageFolderDataset(root: data, options: ImageFolderDataset.Options(verifyImages: false))
        let classNames = classifier.labels.names
        let missing = dataset.classNames.filter { !classNames.contains($0) }
        guard missing.isEmpty else {
            throw ValidationError("class folder(s) \(missing.joined(separator: ", ")) are not among the model's labels (\(classNames.prefix(10).joined(separator: ", "))…)")
        }
        let labelIndex = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, $0) })
        let loader = try BatchLoader(samples: dataset.training, mode: .evaluation(classifier.preprocessing),
                                     options: BatchLoader.Options(batchSize: batchSize, shuffle: false), epoch: 0)
        var report = EvaluationReport(classNames: classNames)
        let bar = ProgressBar(total: loader.batchCount, label: "evaluating", unit: "batch")
        while let batch = try loader.next() {
            let logits = try classifier.model.forward(batch.images, endpoints: .none).output
            report.add(logits: logits, labels: batch.labels.map { labelIndex[dataset.classNames[$0]]! })
            bar.advance()
        }
        bar.finish()
        print(json ? try report.json() : report.summary)
        if let confusion {
            try PNGEncoder.write(Plot.confusionMatrix(report.confusion, classNames: classNames), to: confusion)
            print("wrote \(confusion)")
        }
    }
}

func pct(_ x: Double?) -> String { x.map { String(format: "%.1f%%", 100 * $0) } ?? "-" }

/// Help for the training commands' `--bf16` flag.
let bfloat16TrainingHelp = "Mixed precision: every convolution's products (forward and both gradients) take operands "
    + "rounded to bfloat16 and sum in float32, as PyTorch's CPU autocast does; weights, batch norm and the optimizer "
    + "stay float32. ~1.5x faster steps on CPUs with AVX512-BF16 (required), but gradients a few percent from "
    + "float32 (8 significant bits per operand), so it is off by default. Takes precedence over --winograd."

/// Turns on ``BFloat16Training`` for `--bf16`, refusing on CPUs without AVX512-BF16 (the portable
/// loop computes the same products ~200x slower).
func enableBFloat16(_ requested: Bool) throws {
    guard requested else { return }
    guard BFloat16Training.isNative else {
        throw ValidationError("--bf16 needs a CPU with AVX512-BF16 (and the AVX-512 kernels selected); this one runs "
                              + "bfloat16 products only in a slow portable loop. Train without --bf16.")
    }
    BFloat16Training.isEnabled = true
}

/// Help for the training commands' `--winograd` / `--no-winograd` flag.
///
/// On by default in the commands (the library's ``Winograd/inTraining`` stays off, so `Trainer`
/// used directly takes the direct path the TF-slim parity tests check): the step is
/// arithmetic-bound, and 4x fewer products make it ~1.3-1.5x faster, where the direct path is
/// no faster than TF-slim's own. Float32 throughout; only the rounding differs (weight gradients
/// ~1e-4 (median) from the direct path's on a trained network).
let winogradTrainingHelp = "Run the 3x3 stride-1 convolutions of each step (forward and both gradients) as float32 "
    + "Winograd F(4x4, 3x3), 4x fewer products: ~1.3-1.5x faster steps (the default). --no-winograd computes them "
    + "directly, the path whose gradients match TF-slim's most closely (~2e-5 relative instead of ~1e-3 on random "
    + "weights; on a trained network the two agree to ~1e-4)."
