import Foundation
import Inception

/// Timings of training steps on one batch held in memory (no data loading, no augmentation).
public struct TrainingBenchmark: Sendable {
    public let batchSize: Int
    public let height: Int
    public let width: Int
    /// Seconds per timed step, in order.
    public let stepSeconds: [Double]
    /// Bytes of saved activations plus reusable transient buffers of the training pass.
    public let activationBytes: Int

    public var medianSeconds: Double {
        let s = stepSeconds.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Images per second at the median step time.
    public var imagesPerSecond: Double { medianSeconds > 0 ? Double(batchSize) / medianSeconds : 0 }
}

extension Trainer {
    /// Times `iterations` full training steps (forward, backward, optimizer update, moving
    /// averages) after `warmup` untimed ones, on a random batch in [-1, 1] with random labels.
    /// The model's variables change as in real training.
    public func benchmarkSteps(batchSize: Int, height: Int, width: Int, iterations: Int, warmup: Int = 1,
                               seed: UInt64 = 1) throws -> TrainingBenchmark {
        guard batchSize > 0, iterations > 0, warmup >= 0 else { throw TrainingError.invalid("batch size and iterations must be positive") }
        var rng = SeededGenerator(seed: seed)
        let count = batchSize * height * width * model.inputChannels
        let images = Tensor(shape: [batchSize, height, width, model.inputChannels],
                            scalars: (0..<count).map { _ in Float.random(in: -1...1, using: &rng) })
        let labels = (0..<batchSize).map { _ in Int.random(in: 0..<model.options.numClasses, using: &rng) }
        for _ in 0..<warmup { _ = try step(images: images, labels: labels) }
        var times: [Double] = []
        for _ in 0..<iterations {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try step(images: images, labels: labels)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return TrainingBenchmark(batchSize: batchSize, height: height, width: width, stepSeconds: times,
                                 activationBytes: activationBytes)
    }
}
