import Foundation
import Inception

/// How `inception serve` runs: where it listens, how it batches and what it accepts.
public struct ServerOptions: Sendable {
    /// The weights file (TF checkpoint or .safetensors) with a logits layer.
    public var weightsPath: String
    /// The architecture the weights must hold; nil: whatever they hold. Responses and /metrics
    /// report the architecture served.
    public var architecture: Architecture?
    public var host = "127.0.0.1"
    /// 0 picks a free port (see `onServerRunning` of ``InceptionServer/makeApplication(options:onServerRunning:)``).
    public var port = 8080
    /// The most images run in one forward pass.
    public var maxBatch = 8
    /// How long the first request of a batch waits for others, in milliseconds.
    public var maxDelayMilliseconds: Double = 5
    /// Request bodies above this are refused with 413 (checked while the body streams in).
    public var maxBodyBytes = 20 * 1024 * 1024
    /// Requests that may wait (being decoded or queued for the model) beyond the batch being run;
    /// further requests get 503 with Retry-After.
    public var maxQueue = 32
    /// Feature extractors (one network per endpoint) kept in memory at once, least recently used evicted.
    public var maxFeatureExtractors = 3
    /// Images whose header announces more pixels are refused (413) before any pixel memory is allocated.
    public var maxPixels = 40_000_000
    /// Images decoded and preprocessed at once (each holds its decoded pixels).
    public var decodeConcurrency = max(2, ProcessInfo.processInfo.activeProcessorCount)
    /// Connections idle this long (nothing received while reading a request, or between requests)
    /// are closed, so stalled uploads cannot hold their place in the queue.
    public var idleTimeoutSeconds: Int64 = 60
    /// slim's evaluation preprocessing by default (a model trained by `inception train` brings its
    /// own input size in its metadata, which takes precedence).
    public var preprocessing: Preprocessing = .inceptionEval
    /// When set, the JPEG and PNG files directly in this directory are served at /samples/NAME
    /// (for demos and browser tests: `/?demo=/samples/cat.jpg` classifies one on load).
    public var samplesDirectory: String?

    public init(weightsPath: String) {
        self.weightsPath = weightsPath
    }

    /// Checks the numbers; the message names the option.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ServerOptionsError(message) } }
        try check(maxBatch >= 1 && maxBatch <= 256, "--max-batch must be in 1...256, got \(maxBatch)")
        try check(maxDelayMilliseconds >= 0 && maxDelayMilliseconds <= 10_000, "--max-delay-ms must be in 0...10000, got \(maxDelayMilliseconds)")
        try check(maxBodyBytes >= 1024, "--max-body-mb must allow at least 1 KB")
        try check(maxQueue >= 0, "--max-queue must be 0 or more, got \(maxQueue)")
        try check(maxFeatureExtractors >= 1, "at least one feature extractor must fit")
        try check(decodeConcurrency >= 1, "decode concurrency must be at least 1")
        try check(idleTimeoutSeconds >= 1, "the idle timeout must be at least 1 s")
        try check(port >= 0 && port <= 65535, "--port must be in 0...65535, got \(port)")
    }
}

public struct ServerOptionsError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
