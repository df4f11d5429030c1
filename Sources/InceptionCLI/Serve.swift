import ArgumentParser
import Dispatch
import Foundation
import Inception
import InceptionServer

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the classifier over HTTP: batched inference, a web page, /metrics.",
        discussion: """
        Routes: GET / (a page to drop a photo and see the top 5), POST /v1/classify[?top=K] (the image \
        as the body, or a multipart form with a file), POST /v1/features?endpoint=NAME[&pool=false] \
        (JSON, or .npy with Accept: application/x-npy or ?format=npy), GET /healthz, GET /metrics \
        (Prometheus text). Concurrent requests are gathered into batches of up to --max-batch images, \
        waiting at most --max-delay-ms for the first one's batch to fill. SIGTERM or SIGINT stops \
        accepting connections and finishes the requests in flight.
        Example: inception serve --port 8080 --max-batch 8
        """
    )

    @Option(help: "Weights (TF checkpoint or .safetensors). Default: the released ImageNet checkpoint from the cache ($INCEPTION_HOME or ~/.cache/inception), downloaded on first use.")
    var weights: String?
    @OptionGroup var choice: ModelChoice
    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"
    @Option(help: "The port to listen on (0: any free port).")
    var port = 8080
    @Option(help: "The most images in one forward pass.")
    var maxBatch = 8
    @Option(help: "How long a request waits for others to join its batch, in milliseconds.")
    var maxDelayMs: Double = 5
    @Option(help: "The largest request body in MB; larger ones get 413.")
    var maxBodyMb: Double = 20
    @Option(help: "Image requests that may wait beyond the batch being run; more get 503 with Retry-After.")
    var maxQueue = 32
    @Option(help: "Feature extractors (one network per endpoint) kept in memory.")
    var maxFeatureModels = 3
    @Option(help: "Resize sampling: 'slim' (TF1 resize_bilinear, what slim's eval and the released checkpoint use) or 'half-pixel' (TF2 tf.image.resize).")
    var resize = "slim"
    @Option(help: "Serve the JPEG and PNG files of this directory at /samples/NAME (for demos: /?demo=/samples/cat.jpg).")
    var samples: String?
    @Option(help: "Worker threads of the model (default: all cores).")
    var threads: Int?

    func validate() throws {
        guard ["slim", "half-pixel"].contains(resize) else { throw ValidationError("--resize must be 'slim' or 'half-pixel'") }
        guard maxBodyMb > 0 && maxBodyMb <= 4096 else { throw ValidationError("--max-body-mb must be in (0, 4096]") }
        guard maxFeatureModels >= 1 else { throw ValidationError("--max-feature-models must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        do { try options(weightsPath: "").validate() } catch let error as ServerOptionsError {
            throw ValidationError(error.description)
        }
    }

    func options(weightsPath: String) -> ServerOptions {
        var options = ServerOptions(weightsPath: weightsPath)
        options.architecture = choice.model
        options.host = host
        options.port = port
        options.maxBatch = maxBatch
        options.maxDelayMilliseconds = maxDelayMs
        options.maxBodyBytes = Int(maxBodyMb * 1_048_576)
        options.maxQueue = maxQueue
        options.maxFeatureExtractors = maxFeatureModels
        options.preprocessing = Preprocessing(resizeCenters: resize == "slim" ? .legacyTF1 : .halfPixel)
        options.samplesDirectory = samples
        return options
    }

    func run() throws {
        if let threads { Parallel.threadCount = threads }
        let options = options(weightsPath: try weightsPath())
        let host = self.host, maxBatch = self.maxBatch, maxDelayMs = self.maxDelayMs
        let outcome = ServeOutcome()
        let done = DispatchSemaphore(value: 0)
        // The command is synchronous; the server runs on Swift's concurrency pool while this
        // thread waits for it to stop (SIGTERM/SIGINT are handled by the service group).
        Task {
            do {
                try await InceptionServer.run(options: options) { port in
                    let line = "inception serve: \(options.architecture?.rawValue ?? "model") on http://\(host):\(port)/ (max batch \(maxBatch), max delay \(fmt(maxDelayMs)) ms); SIGTERM or Ctrl-C stops\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
            } catch {
                outcome.set(error)
            }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
        print("inception serve: stopped")
    }

    func weightsPath() throws -> String {
        if let weights { return weights }
        let store = WeightStore()
        if let cached = store.cachedPath(for: .inceptionV1ImageNet) { return cached }
        let bar = ProgressBar(total: Int(PretrainedWeights.inceptionV1ImageNet.byteCount), label: "downloading inception_v1", unit: "B")
        let path = try store.ensure(.inceptionV1ImageNet) { done, _ in bar.advance(by: Int(done) - bar.done) }
        bar.finish()
        return path
    }
}

/// The server task's error, handed to the waiting thread.
private final class ServeOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?
    func set(_ error: any Error) { lock.lock(); stored = error; lock.unlock() }
    var error: (any Error)? { lock.lock(); defer { lock.unlock() }; return stored }
}
