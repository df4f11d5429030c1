import ArgumentParser
import Foundation
import Inception
import InceptionTraining
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure inference speed and memory: ms per batch and per image, images/s, GFLOP/s, peak RSS.",
        discussion: """
        Runs warm-up passes, then times each pass. The input is random; without --weights the \
        weights are slim's initialisation (the speed does not depend on the values).
        Example: inception bench --batch-size 8 --iterations 30 --json
        """
    )

    @OptionGroup var choice: ModelChoice
    @Option(help: "Weights to load (optional).")
    var weights: String?
    @Option(help: "Images per batch.")
    var batchSize = 1
    @Option(parsing: .upToNextOption, help: "Input height and width.")
    var imageSize: [Int] = [224, 224]
    @Option(help: "Timed passes.")
    var iterations = 20
    @Option(help: "Untimed passes first.")
    var warmup = 3
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?
    @Flag(help: "Global average pool (for sizes other than 224).")
    var globalPool = false
    @Flag(help: "Time training steps (RMSProp, batch-norm updates, weight decay) instead of inference.")
    var train = false
    @Flag(inversion: .prefixedNo, help: ArgumentHelp("With --train: " + winogradTrainingHelp))
    var winograd = true
    @Flag(help: ArgumentHelp("With --train: " + bfloat16TrainingHelp))
    var bf16 = false
    @Option(help: "Classes of the logits layer.")
    var numClasses = 1001
    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard imageSize.count == 2, imageSize.allSatisfy({ $0 > 0 }) else { throw ValidationError("--image-size takes HEIGHT WIDTH") }
        guard batchSize > 0, iterations > 0, warmup >= 0 else { throw ValidationError("--batch-size and --iterations must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        if let threads { Parallel.threadCount = threads }
        if train { return try runTraining() }
        var options = choice.defaults
        options.globalPool = options.globalPool || globalPool
        // One model only: a throwaway one built before reading the file would count its
        // variables in the peak memory this command reports.
        let model: InceptionModel
        if let weights {
            let reader = try ModelWeights.open(weights)
            options = options.fitted(to: reader)
            try choice.check(options.architecture, weights: weights)
            model = try InceptionModel(options: options)
            try model.loadWeights(from: reader, options: WeightLoadingOptions(ignoreUnexpected: true))
        } else {
            model = try InceptionModel(options: options)
        }
        let shape = [batchSize, imageSize[0], imageSize[1], 3]
        var rng = SeededGenerator(seed: 1)
        let input = Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &rng) })
        try model.validate(inputShape: shape)
        let macs = try model.shapes(height: imageSize[0], width: imageSize[1]).reduce(0) { $0 + $1.macs }
        for _ in 0..<warmup { _ = try model.forward(input, endpoints: .none) }
        var times: [Double] = []
        for _ in 0..<iterations {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try model.forward(input, endpoints: .none)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let perImage = median / Double(batchSize)
        let report: [String: Any] = [
            "batch_size": batchSize, "image_size": imageSize, "iterations": iterations, "threads": Parallel.threadCount,
            "ms_per_batch_median": median, "ms_per_batch_min": times.first!, "ms_per_batch_max": times.last!,
            "ms_per_image_median": perImage, "images_per_second": 1000 / perImage,
            "gflops": 2 * Double(macs) * Double(batchSize) / (median * 1e6),
            "peak_rss_mb": peakResidentMegabytes(), "gemm_kernel": "\(GEMM.kernel)", "model": model.options.architecture.rawValue,
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("""
        \(model.options.architecture.rawValue), batch \(batchSize), \(imageSize[0])x\(imageSize[1]), \(Parallel.threadCount) thread(s), \(GEMM.kernel) kernel, \(iterations) passes
          per batch:  median \(fmt(median)) ms  (min \(fmt(times.first!)), max \(fmt(times.last!)))
          per image:  \(fmt(perImage)) ms,  \(fmt(1000 / perImage)) images/s
          compute:    \(fmt(2 * Double(macs) * Double(batchSize) / (median * 1e6))) GFLOP/s
          peak RSS:   \(fmt(peakResidentMegabytes())) MB
        """)
    }
}

extension Bench {
    /// Training steps on random data in memory: forward, backward and an RMSProp update.
    func runTraining() throws {
        Winograd.inTraining = winograd
        try enableBFloat16(bf16)
        var options = choice.defaults
        options.numClasses = numClasses
        options.globalPool = options.globalPool || globalPool
        let model = try InceptionModel(options: options)
        let trainer = try Trainer(model: model)
        let result = try trainer.benchmarkSteps(batchSize: batchSize, height: imageSize[0], width: imageSize[1],
                                                iterations: iterations, warmup: warmup)
        let times = result.stepSeconds.sorted()
        let report: [String: Any] = [
            "mode": "train", "batch_size": batchSize, "image_size": imageSize, "iterations": iterations,
            "threads": Parallel.threadCount, "global_pool": globalPool,
            "ms_per_step_median": result.medianSeconds * 1000, "ms_per_step_min": times.first! * 1000,
            "ms_per_step_max": times.last! * 1000, "images_per_second": result.imagesPerSecond,
            "peak_rss_mb": peakResidentMegabytes(), "model": options.architecture.rawValue,
            "auxiliary_classifiers": model.auxiliaryHeads.count, "winograd": Winograd.inTraining,
            "bf16": BFloat16Training.isEnabled,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print("""
        \(options.architecture.rawValue) training\(model.auxiliaryHeads.isEmpty ? "" : " (with \(model.auxiliaryHeads.count) auxiliary classifiers)"), batch \(batchSize), \(imageSize[0])x\(imageSize[1])\(globalPool ? " (global pool)" : ""), \(Parallel.threadCount) thread(s), RMSProp\(BFloat16Training.isEnabled ? ", bfloat16 products" : Winograd.inTraining ? ", Winograd" : ""), \(iterations) steps
          per step:   median \(fmt(result.medianSeconds * 1000)) ms  (min \(fmt(times.first! * 1000)), max \(fmt(times.last! * 1000)))
          throughput: \(fmt(result.imagesPerSecond)) images/s
          peak RSS:   \(fmt(peakResidentMegabytes())) MB
        """)
    }
}

func fmt(_ x: Double) -> String { String(format: "%.2f", x) }

/// The process's peak resident set size in MB (getrusage: kilobytes on Linux, bytes on macOS).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / (1024 * 1024)
    #endif
}
