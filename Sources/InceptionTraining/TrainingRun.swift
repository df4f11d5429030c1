import Foundation

/// A whole training run, slim's `train_image_classifier.py` for an image folder: data set checks,
/// fine-tuning from a checkpoint (excluded scopes start fresh), epochs of augmented batches,
/// validation, metrics and curves, and run checkpoints from which a killed run resumes.
///
/// Layout of the run directory:
/// - `checkpoint-latest.safetensors` (+ numbered copies): model variables (`model/…`), optimizer
///   slots (`optimizer/…`), step, epoch, batch, random state and this configuration;
/// - `metrics.jsonl`, `curves.png` (redrawn each epoch);
/// - `model.safetensors` at the end: the weights with the class names, image size and pooling in its
///   metadata, so `inception classify --weights RUN/model.safetensors` needs nothing else.
public final class TrainingRun {
    /// Everything that defines a run; saved in its checkpoints and checked on resume.
    public struct Configuration: Codable, Sendable, Equatable {
        public var data: String
        public var validationData: String?
        public var validationSplit: Double = 0.1
        public var weights: String?
        public var checkpointExcludeScopes: [String] = []
        public var trainableScopes: [String]? = nil
        public var imageHeight = 224
        public var imageWidth = 224
        public var batchSize = 32
        public var epochs = 10
        public var optimizer: OptimizerConfig.Kind = .rmsprop
        public var learningRate: Float = 0.01
        /// "exponential" (×0.94 every 2 epochs, staircase), "polynomial" (to 0.0001), "fixed".
        public var learningRateDecay = "exponential"
        public var epochsPerDecay: Double = 2
        public var decayRate: Float = 0.94
        public var endLearningRate: Float = 0.0001
        public var warmupSteps = 0
        public var labelSmoothing: Float = 0
        public var weightDecay: Float = 0.00004
        /// Moving-average decay of the batch-norm statistics (slim: 0.9997, which needs thousands of
        /// steps to settle; short runs on small data want e.g. 0.99).
        public var batchNormDecay: Float = 0.9997
        /// "slim" (random crop, flip, colour), "flip" (flip only), "none" (eval preprocessing).
        public var augmentation = "slim"
        public var checkpointEverySteps = 200
        public var keepCheckpoints = 2
        public var skipBadImages = false
        public var seed: UInt64 = 0

        /// The network (`inception_v1` when nil, as in runs saved before the choice existed).
        public var architecture: Architecture?
        /// How fresh variables start (nil: the architecture's default, Caffe's for `googlenet`).
        public var initialization: InceptionModel.Initialization?
        /// Weight of each auxiliary classifier's loss (nil: 0.3); 0 trains without them.
        public var auxiliaryLossWeight: Float?

        public init(data: String) { self.data = data }

        /// Global average pooling unless the input is the 224x224 the 7x7 pool expects.
        public var globalPool: Bool { imageHeight != 224 || imageWidth != 224 }
    }

    /// What the run reports as it goes (for a progress bar).
    public enum Event {
        case started(classes: [String], trainingImages: Int, validationImages: Int, batchesPerEpoch: Int, resumedAtStep: Int?)
        case step(epoch: Int, batch: Int, batches: Int, result: StepResult, imagesPerSecond: Double)
        case epochEnded(MetricsRecord)
        case checkpointSaved(String)
        case warning(String)
    }

    public let configuration: Configuration
    public let directory: String
    public let dataset: ImageFolderDataset
    public let model: InceptionModel
    public let trainer: Trainer
    private var epoch = 0
    private var batchInEpoch = 0
    private let resumedAtStep: Int?

    /// Prepares a run in `directory`: checks the data, builds the model, loads `weights` (or, with
    /// `resume`, the newest run checkpoint). Every problem with the data is reported before any
    /// training starts.
    public init(configuration: Configuration, directory: String, resume: Bool,
                onWarning: @escaping (String) -> Void = { _ in }) throws {
        var config = configuration
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var resumed: (checkpoint: RunCheckpoint, path: String)? = nil
        if resume {
            resumed = try RunCheckpoint.latest(in: directory, warning: onWarning)
            guard let found = resumed else {
                throw TrainingError.invalid("--resume: no checkpoint in \(directory); start the run without --resume")
            }
            let saved = try found.checkpoint.options(as: Configuration.self)
            guard saved.data == config.data, saved.imageHeight == config.imageHeight, saved.imageWidth == config.imageWidth else {
                throw TrainingError.invalid("--resume: \(found.path) was trained on \(saved.data) at \(saved.imageHeight)x\(saved.imageWidth); "
                    + "this run asks for \(config.data) at \(config.imageHeight)x\(config.imageWidth)")
            }
            let epochs = config.epochs
            config = saved
            config.epochs = max(epochs, saved.epochs)   // a resumed run may be extended
        }
        self.configuration = config
        self.directory = directory
        dataset = try ImageFolderDataset(root: config.data, options: ImageFolderDataset.Options(
            validationSplit: config.validationData == nil ? config.validationSplit : 0,
            validationFolder: config.validationData, splitSeed: config.seed, verifyImages: true,
            skipBadImages: config.skipBadImages))
        dataset.warnings.forEach(onWarning)
        var modelOptions = ModelOptions.defaults(for: config.architecture ?? .inceptionV1)
        modelOptions.numClasses = dataset.classNames.count
        modelOptions.globalPool = modelOptions.globalPool || config.globalPool
        modelOptions.batchNormDecay = config.batchNormDecay
        if let weight = config.auxiliaryLossWeight {
            modelOptions.auxiliaryLogits = modelOptions.auxiliaryLogits && weight > 0
            modelOptions.auxiliaryLossWeight = weight
        }
        model = try InceptionModel(options: modelOptions, seed: config.seed, initialization: config.initialization)
        let steps = Self.stepsPerEpoch(images: dataset.training.count, batchSize: config.batchSize)
        trainer = try Trainer(model: model, optimizer: Self.optimizer(config, stepsPerEpoch: steps),
                              labelSmoothing: config.labelSmoothing, weightDecay: config.weightDecay,
                              trainableScopes: config.trainableScopes, seed: config.seed)
        if let resumed {
            let tensors = resumed.checkpoint.tensors
            try model.assign(Self.unprefixed(tensors, "model/"))
            try trainer.restore(optimizerState: Self.unprefixed(tensors, "optimizer/"), step: resumed.checkpoint.step)
            trainer.randomState = resumed.checkpoint.randomState["dropout"] ?? config.seed
            epoch = resumed.checkpoint.epoch
            batchInEpoch = resumed.checkpoint.batchInEpoch
            resumedAtStep = resumed.checkpoint.step
            _ = try MetricsLog(runDirectory: directory).rewind(toStep: resumed.checkpoint.step)
        } else {
            if let weights = config.weights {
                try model.loadWeights(from: weights, options: WeightLoadingOptions(
                    ignoreUnexpected: true, excludeScopes: config.checkpointExcludeScopes))
            }
            resumedAtStep = nil
        }
    }

    static func stepsPerEpoch(images: Int, batchSize: Int) -> Int { max(1, (images + batchSize - 1) / batchSize) }

    static func optimizer(_ c: Configuration, stepsPerEpoch: Int) -> OptimizerConfig {
        let decaySteps = max(1, Int((Double(stepsPerEpoch) * c.epochsPerDecay).rounded()))
        let schedule: LearningRateSchedule
        switch c.learningRateDecay {
        case "polynomial":
            schedule = .polynomial(initial: c.learningRate, end: c.endLearningRate, steps: stepsPerEpoch * c.epochs, warmupSteps: c.warmupSteps)
        case "fixed": schedule = .fixed(c.learningRate, warmupSteps: c.warmupSteps)
        default:
            schedule = .exponential(initial: c.learningRate, rate: c.decayRate, steps: decaySteps, warmupSteps: c.warmupSteps)
        }
        var optimizer = OptimizerConfig(kind: c.optimizer, learningRate: schedule)
        if c.optimizer == .adam { optimizer.epsilon = 1.0 }
        return optimizer
    }

    static func unprefixed(_ tensors: [String: Tensor], _ prefix: String) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, value) in tensors where name.hasPrefix(prefix) { out[String(name.dropFirst(prefix.count))] = value }
        return out
    }

    var augmentation: TrainingAugmentation {
        var a = TrainingAugmentation(height: configuration.imageHeight, width: configuration.imageWidth)
        switch configuration.augmentation {
        case "none": a.randomCrop = false; a.randomFlip = false; a.distortColors = false
        case "flip": a.randomCrop = false; a.distortColors = false
        default: break
        }
        return a
    }

    /// Trains until `configuration.epochs` are done; `onEvent` sees every step and epoch.
    public func run(onEvent: (Event) throws -> Void) throws {
        let c = configuration
        let metrics = MetricsLog(runDirectory: directory)
        let loaderOptions = { (seed: UInt64) in
            BatchLoader.Options(batchSize: c.batchSize, seed: seed, skipBadImages: c.skipBadImages)
        }
        try onEvent(.started(classes: dataset.classNames, trainingImages: dataset.training.count,
                         validationImages: dataset.validation.count,
                         batchesPerEpoch: Self.stepsPerEpoch(images: dataset.training.count, batchSize: c.batchSize),
                         resumedAtStep: resumedAtStep))
        while epoch < c.epochs {
            let loader = try BatchLoader(samples: dataset.training, mode: .training(augmentation), options: loaderOptions(c.seed),
                                         epoch: epoch, startingAtBatch: batchInEpoch)
            let epochStart = Date()
            var lossSum = 0.0, correct = 0, seen = 0
            while let batch = try loader.next() {
                let start = Date()
                let result = try trainer.step(images: batch.images, labels: batch.labels)
                lossSum += Double(result.crossEntropy) * Double(batch.labels.count)
                correct += result.correct
                seen += batch.labels.count
                batchInEpoch = batch.index + 1
                try onEvent(.step(epoch: epoch, batch: batch.index, batches: loader.batchesPerEpoch, result: result,
                              imagesPerSecond: Double(batch.labels.count) / max(Date().timeIntervalSince(start), 1e-9)))
                if trainer.step % c.checkpointEverySteps == 0 { try onEvent(.checkpointSaved(try saveCheckpoint())) }
            }
            loader.stop()
            epoch += 1
            batchInEpoch = 0
            var record = MetricsRecord(epoch: epoch, step: trainer.step)
            if seen > 0 {
                record.trainLoss = lossSum / Double(seen)
                record.trainTop1 = Double(correct) / Double(seen)
                record.imagesPerSecond = Double(seen) / Date().timeIntervalSince(epochStart)
            }
            record.learningRate = Double(trainer.optimizer.learningRate.learningRate(at: trainer.step))
            if !dataset.validation.isEmpty {
                let report = try evaluate(dataset.validation)
                record.validationLoss = report.loss
                record.validationTop1 = report.top1
                record.validationTop5 = report.top5
            }
            record.seconds = Date().timeIntervalSince(epochStart)
            try metrics.append(record)
            try PNGEncoder.write(Plot.curves(try metrics.read().records), to: directory + "/curves.png")
            try onEvent(.checkpointSaved(try saveCheckpoint()))
            try onEvent(.epochEnded(record))
        }
        try writeModel(to: directory + "/model.safetensors")
    }

    /// Evaluation-mode accuracy over samples (moving statistics, no augmentation).
    public func evaluate(_ samples: [ImageFolderDataset.Sample]) throws -> EvaluationReport {
        let loader = try BatchLoader(samples: samples, mode: .evaluation(augmentation.evaluationPreprocessing),
                                     options: BatchLoader.Options(batchSize: configuration.batchSize, shuffle: false,
                                                                  skipBadImages: configuration.skipBadImages), epoch: 0)
        var report = EvaluationReport(classNames: dataset.classNames)
        while let batch = try loader.next() {
            report.add(logits: try trainer.evaluate(images: batch.images, labels: batch.labels).logits, labels: batch.labels)
        }
        return report
    }

    /// Saves a run checkpoint now (atomically); returns its path.
    @discardableResult
    public func saveCheckpoint() throws -> String {
        var tensors: [String: Tensor] = [:]
        for (name, value) in model.variables { tensors["model/" + name] = value }
        for (name, value) in trainer.optimizerState() { tensors["optimizer/" + name] = value }
        let checkpoint = try RunCheckpoint(tensors: tensors, step: trainer.step, epoch: epoch, batchInEpoch: batchInEpoch,
                                           randomState: ["dropout": trainer.randomState], options: configuration)
        return try checkpoint.save(in: directory, keepLast: configuration.keepCheckpoints)
    }

    /// The trained weights with what `classify` needs to use them in the metadata.
    public func writeModel(to path: String, dtype: SafeTensors.StorageType = .float32) throws {
        try SafeTensors.write(model.variables, metadata: ModelMetadata(
            classNames: dataset.classNames, imageHeight: configuration.imageHeight, imageWidth: configuration.imageWidth,
            globalPool: model.options.globalPool, architecture: model.options.architecture).dictionary, to: path, dtype: dtype)
    }
}
