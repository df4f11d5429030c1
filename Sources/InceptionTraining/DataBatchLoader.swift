import Foundation
import Inception

/// Decodes and preprocesses one epoch of images on worker threads, ahead of the model.
///
/// The epoch's order is a seeded shuffle of the samples (``order(sampleCount:epoch:seed:shuffle:)``),
/// cut into batches of ``Options/batchSize``; batch `b` always holds the same images with the same
/// distortions for a given seed and epoch, so a run resumed at (epoch, batch) continues exactly
/// where it stopped (``init(samples:preprocessing:options:epoch:startingAtBatch:)``).
///
/// Workers each build whole batches; at most ``Options/prefetchBatches`` batches are built or
/// waiting beyond the one the consumer holds, so memory stays bounded. ``next()`` hands them out
/// in order. ``stop()`` (also run on deinit) cancels the work and returns once every worker thread
/// has exited; workers check for cancellation between images, so that takes at most one image's
/// decoding time.
///
///     let loader = BatchLoader(samples: data.training, mode: .training(TrainingAugmentation()),
///                              options: .init(batchSize: 32, seed: 7), epoch: epoch)
///     while let batch = try loader.next() { … batch.images, batch.labels … }
public final class BatchLoader: @unchecked Sendable {
    /// One batch: images [N, H, W, 3] in [−1, 1], their labels and files.
    public struct Batch: Sendable {
        public let images: Tensor
        public let labels: [Int]
        public let paths: [String]
        /// Positions of the images in the loader's `samples`.
        public let sampleIndices: [Int]
        public let epoch: Int
        /// The batch's index within the epoch (0-based).
        public let index: Int
        /// Images of this batch left out as unreadable (only with `skipBadImages`).
        public let skipped: [SkippedImage]

        public var count: Int { labels.count }
    }

    /// What turns a decoded image into network input.
    public enum Mode: Sendable {
        /// slim's training distortions, seeded per (run seed, epoch, sample).
        case training(TrainingAugmentation)
        /// Deterministic evaluation preprocessing (e.g. `Preprocessing.inceptionEval`).
        case evaluation(Preprocessing)

        var height: Int {
            switch self {
            case .training(let a): return a.height
            case .evaluation(let p): return p.height
            }
        }

        var width: Int {
            switch self {
            case .training(let a): return a.width
            case .evaluation(let p): return p.width
            }
        }
    }

    public struct Options: Sendable {
        public var batchSize: Int
        /// Keep the last, smaller batch of an epoch (false: drop it, as slim's training does).
        public var keepPartialBatch: Bool
        /// Batches built ahead of the consumer (bounded queue).
        public var prefetchBatches: Int
        /// Worker threads (each builds one batch at a time).
        public var workerThreads: Int
        /// Shuffle each epoch (seeded by `seed` and the epoch); false: sample order.
        public var shuffle: Bool
        /// The run's seed: drives the order and the distortions.
        public var seed: UInt64
        /// Leave out unreadable images (the batch gets smaller; see `Batch.skipped`) instead of failing.
        public var skipBadImages: Bool
        public var decodeOptions: DecodeOptions

        public init(batchSize: Int = 32, keepPartialBatch: Bool = true, prefetchBatches: Int = 2, workerThreads: Int = 2,
                    shuffle: Bool = true, seed: UInt64 = 0, skipBadImages: Bool = false,
                    decodeOptions: DecodeOptions = DecodeOptions()) {
            self.batchSize = batchSize
            self.keepPartialBatch = keepPartialBatch
            self.prefetchBatches = prefetchBatches
            self.workerThreads = workerThreads
            self.shuffle = shuffle
            self.seed = seed
            self.skipBadImages = skipBadImages
            self.decodeOptions = decodeOptions
        }
    }

    /// The thread name workers carry (visible in `/proc/self/task/*/comm`, debuggers, `top -H`).
    public static let workerThreadName = "inception-data"

    public let samples: [ImageFolderDataset.Sample]
    public let mode: Mode
    public let options: Options
    public let epoch: Int
    /// The first batch this loader yields.
    public let startBatch: Int
    /// Sample indices in this epoch's order.
    public let order: [Int]
    /// Batches in a full epoch (the partial one included when kept).
    public let batchesPerEpoch: Int
    /// Images in a full epoch (without the dropped partial batch).
    public let imagesPerEpoch: Int

    private let state: LoaderState

    /// Starts the workers at once. `startingAtBatch` resumes mid-epoch (batches before it are
    /// never built).
    public init(samples: [ImageFolderDataset.Sample], mode: Mode, options: Options = Options(),
                epoch: Int, startingAtBatch: Int = 0) {
        precondition(options.batchSize > 0, "batch size must be positive")
        precondition(options.prefetchBatches >= 1, "prefetch must be at least one batch")
        precondition(options.workerThreads >= 1, "at least one worker thread")
        precondition(startingAtBatch >= 0, "the start batch must not be negative")
        self.samples = samples
        self.mode = mode
        self.options = options
        self.epoch = epoch
        self.startBatch = startingAtBatch
        order = Self.order(sampleCount: samples.count, epoch: epoch, seed: options.seed, shuffle: options.shuffle)
        let full = samples.count / options.batchSize
        let partial = samples.count % options.batchSize != 0 && options.keepPartialBatch
        batchesPerEpoch = full + (partial ? 1 : 0)
        imagesPerEpoch = partial ? samples.count : full * options.batchSize
        state = LoaderState(samples: samples, order: order, mode: mode, options: options, epoch: epoch,
                            start: min(startingAtBatch, batchesPerEpoch), end: batchesPerEpoch)
        let workers = min(options.workerThreads, max(0, batchesPerEpoch - startingAtBatch))
        state.start(workers: workers)
    }

    deinit { state.stop() }

    /// The epoch's order: sample indices shuffled with a generator seeded by (seed, epoch).
    public static func order(sampleCount: Int, epoch: Int, seed: UInt64, shuffle: Bool = true) -> [Int] {
        var indices = Array(0..<sampleCount)
        if shuffle {
            var generator = SeededGenerator(seed: DataRandom.seed(seed, DataRandom.Purpose.order.rawValue, epoch))
            DataRandom.shuffle(&indices, using: &generator)
        }
        return indices
    }

    /// The batches this loader yields in all (from its start batch to the end of the epoch).
    public var batchCount: Int { max(0, batchesPerEpoch - startBatch) }

    /// The index of the batch `next()` returns next (batches handed out so far, plus the start).
    public var nextBatchIndex: Int { state.withLock { state.consumerNext } }

    /// Images handed out so far by this loader.
    public var imagesDelivered: Int { state.withLock { state.delivered } }

    /// Unreadable images left out so far (with `skipBadImages`).
    public var skippedImages: [SkippedImage] { state.withLock { state.skipped } }

    /// Batches being built or built and waiting, beyond those handed out (at most the prefetch depth).
    var batchesStartedAhead: Int { state.withLock { state.nextToBuild - state.consumerNext } }

    /// Worker threads still running.
    public var liveWorkerCount: Int { state.withLock { state.liveWorkers } }

    /// The next batch in order, waiting for it if needed; nil at the end of the epoch or after
    /// `stop()`. Throws ``DatasetError/badImages(_:)`` for an unreadable image (unless skipping),
    /// after which the loader is stopped.
    public func next() throws -> Batch? {
        while true {
            let result: Result<Batch, Error>? = state.withLock {
                while !state.cancelled && state.consumerNext < state.end && state.results[state.consumerNext] == nil {
                    state.condition.wait()
                }
                guard !state.cancelled, state.consumerNext < state.end else { return nil }
                let r = state.results.removeValue(forKey: state.consumerNext)!
                state.consumerNext += 1
                if case let .success(batch) = r {
                    state.delivered += batch.count
                    state.skipped += batch.skipped
                }
                state.condition.broadcast()
                return r
            }
            switch result {
            case nil:
                return nil
            case .success(let batch)?:
                if batch.count == 0 { continue }  // every image of it was unreadable and skipped
                return batch
            case .failure(let error)?:
                state.stop()
                throw error
            }
        }
    }

    /// Cancels outstanding work and waits until every worker thread has exited. Idempotent.
    public func stop() { state.stop() }
}

/// The state shared by the loader and its workers (the workers hold this, not the loader, so
/// dropping the loader runs its deinit, which stops them).
private final class LoaderState: @unchecked Sendable {
    let samples: [ImageFolderDataset.Sample]
    let order: [Int]
    let mode: BatchLoader.Mode
    let options: BatchLoader.Options
    let epoch: Int
    let end: Int

    let condition = NSCondition()
    // Guarded by `condition`:
    var results: [Int: Result<BatchLoader.Batch, Error>] = [:]
    var nextToBuild: Int
    var consumerNext: Int
    var cancelled = false
    var liveWorkers = 0
    var delivered = 0
    var skipped: [SkippedImage] = []

    init(samples: [ImageFolderDataset.Sample], order: [Int], mode: BatchLoader.Mode,
         options: BatchLoader.Options, epoch: Int, start: Int, end: Int) {
        self.samples = samples
        self.order = order
        self.mode = mode
        self.options = options
        self.epoch = epoch
        self.end = end
        nextToBuild = start
        consumerNext = start
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }

    func start(workers: Int) {
        guard workers > 0 else { return }
        withLock { liveWorkers = workers }
        for _ in 0..<workers {
            let thread = Thread { [self] in
                Thread.current.name = BatchLoader.workerThreadName  // also the OS thread name on Linux
                self.work()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    func stop() {
        withLock {
            cancelled = true
            condition.broadcast()
            while liveWorkers > 0 { condition.wait() }
        }
    }

    var isCancelled: Bool { withLock { cancelled } }

    private func work() {
        while true {
            let job: Int? = withLock {
                while true {
                    if cancelled || nextToBuild >= end { return nil }
                    // Bounded: building or built-and-waiting batches stay within the prefetch depth.
                    if nextToBuild < consumerNext + options.prefetchBatches {
                        defer { nextToBuild += 1 }
                        return nextToBuild
                    }
                    condition.wait()
                }
            }
            guard let job else { break }
            let result = build(job)
            let stopNow: Bool = withLock {
                if !cancelled, let result { results[job] = result }
                condition.broadcast()
                return cancelled || result == nil
            }
            if stopNow { break }
        }
        withLock {
            liveWorkers -= 1
            condition.broadcast()
        }
    }

    /// Builds batch `index`; nil when cancelled midway.
    private func build(_ index: Int) -> Result<BatchLoader.Batch, Error>? {
        let batchSize = options.batchSize
        let begin = index * batchSize, stop = min(begin + batchSize, order.count)
        let members = Array(order[begin..<stop])
        let height = mode.height, width = mode.width
        var images = Tensor(zeros: [members.count, height, width, 3])
        var labels: [Int] = [], paths: [String] = [], kept: [Int] = []
        var skippedHere: [SkippedImage] = []
        for sampleIndex in members {
            if isCancelled { return nil }
            let sample = samples[sampleIndex]
            let image: RGBImage
            do throws(ImageError) {
                image = try ImageDecoder.decode(contentsOf: sample.path, options: options.decodeOptions)
            } catch let error {
                if options.skipBadImages {
                    skippedHere.append(SkippedImage(path: sample.path, reason: error.description))
                    continue
                }
                return .failure(DatasetError.badImages([error]))
            }
            let slot = labels.count
            switch mode {
            case .training(let augmentation):
                let seed = TrainingAugmentation.seed(runSeed: options.seed, epoch: epoch, sample: sampleIndex)
                augmentation.write(image, seed: seed, into: &images, at: slot)
            case .evaluation(let preprocessing):
                preprocessing.write(image, into: &images, at: slot)
            }
            labels.append(sample.label)
            paths.append(sample.path)
            kept.append(sampleIndex)
        }
        if labels.count < members.count {
            let size = height * width * 3
            images = Tensor(shape: [labels.count, height, width, 3], scalars: Array(images.scalars.prefix(labels.count * size)))
        }
        return .success(BatchLoader.Batch(images: images, labels: labels, paths: paths, sampleIndices: kept,
                                          epoch: epoch, index: index, skipped: skippedHere))
    }
}
