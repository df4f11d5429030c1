import Dispatch
import Foundation
import Inception

/// Which network a job needs: the classifier, or the feature extractor of one endpoint.
/// Jobs are batched only with jobs of the same kind.
enum ModelTask: Hashable, Sendable {
    case classify
    case features(endpoint: String)
}

/// Why a job was not run.
enum QueueError: Error {
    /// `maxQueue` jobs are already waiting.
    case full
    /// The server is shutting down and takes no new work.
    case shuttingDown
}

/// Dynamic batching: requests hand in one preprocessed image each; a dedicated thread gathers the
/// waiting images of one kind, up to `maxBatch` or until the oldest has waited `maxDelay`, runs one
/// forward pass for all of them and hands each request its own row of the result.
///
/// The forward pass is synchronous and CPU-bound (it spreads over the cores itself), so it runs on
/// this thread and never on the event loops or Swift's cooperative pool.
final class BatchQueue: @unchecked Sendable {
    /// A request's share of a batch.
    struct Result: Sendable {
        /// This image's part of the output: the output's shape with a batch dimension of 1.
        let output: Tensor
        /// Seconds between submission and the start of the forward pass.
        let queueSeconds: Double
        /// Seconds the forward pass of the whole batch took.
        let inferenceSeconds: Double
        let batchSize: Int
    }

    /// Runs a batch on the worker thread: the input is [N, H, W, 3], the result [N, ...].
    typealias Runner = @Sendable (ModelTask, Tensor) throws -> Tensor

    private struct Job {
        let task: ModelTask
        let input: Tensor
        let submitted: UInt64
        let continuation: CheckedContinuation<Result, any Error>
    }

    let maxBatch: Int
    let maxDelayNanoseconds: UInt64
    let maxQueue: Int
    private let runner: Runner
    private let metrics: Metrics
    private let condition = NSCondition()
    private var pending: [Job] = []
    private var stopping = false
    private var running = 0
    private var finished = false
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []
    /// Seconds per image of recent batches (an estimate for Retry-After).
    private var secondsPerImage = 0.0

    init(maxBatch: Int, maxDelayMilliseconds: Double, maxQueue: Int, metrics: Metrics, runner: @escaping Runner) {
        self.maxBatch = maxBatch
        self.maxDelayNanoseconds = UInt64(max(0, maxDelayMilliseconds) * 1e6)
        self.maxQueue = maxQueue
        self.metrics = metrics
        self.runner = runner
        let thread = Thread { [self] in self.work() }
        thread.name = "inception-batcher"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Images waiting for the model.
    var depth: Int {
        condition.lock(); defer { condition.unlock() }
        return pending.count
    }

    /// A guess of the seconds until the queue has room again (at least 1).
    var retryAfterSeconds: Int {
        condition.lock(); defer { condition.unlock() }
        let estimate = Double(pending.count + running) * secondsPerImage
        return min(60, max(1, Int(estimate.rounded(.up))))
    }

    /// Queues one image ([1, H, W, 3]) and waits for its batch to run.
    func submit(_ task: ModelTask, input: Tensor) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            if stopping {
                condition.unlock()
                continuation.resume(throwing: QueueError.shuttingDown)
                return
            }
            if pending.count >= maxQueue + maxBatch {
                condition.unlock()
                continuation.resume(throwing: QueueError.full)
                return
            }
            pending.append(Job(task: task, input: input, submitted: DispatchTime.now().uptimeNanoseconds,
                               continuation: continuation))
            metrics.setQueueDepth(pending.count)
            condition.signal()
            condition.unlock()
        }
    }

    /// Stops taking work, runs what is queued, and returns when the worker thread has ended.
    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            stopping = true
            if finished {
                condition.unlock()
                continuation.resume()
                return
            }
            finishWaiters.append(continuation)
            condition.broadcast()
            condition.unlock()
        }
    }

    // MARK: - Worker thread

    private func work() {
        condition.lock()
        while true {
            while pending.isEmpty && !stopping { condition.wait() }
            if pending.isEmpty { break }  // stopping, and everything queued has run
            let task = pending[0].task
            let deadline = pending[0].submitted &+ maxDelayNanoseconds
            while !stopping && pending.lazy.filter({ $0.task == task }).count < maxBatch {
                let now = DispatchTime.now().uptimeNanoseconds
                guard now < deadline else { break }
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
            }
            var batch: [Job] = [], rest: [Job] = []
            for job in pending {
                if job.task == task && batch.count < maxBatch { batch.append(job) } else { rest.append(job) }
            }
            pending = rest
            running = batch.count
            metrics.setQueueDepth(pending.count)
            condition.unlock()
            run(task, batch)
            condition.lock()
            running = 0
        }
        finished = true
        let waiters = finishWaiters
        finishWaiters = []
        condition.unlock()
        for waiter in waiters { waiter.resume() }
    }

    private func run(_ task: ModelTask, _ batch: [Job]) {
        let start = DispatchTime.now().uptimeNanoseconds
        let imageShape = Array(batch[0].input.shape.dropFirst())
        var scalars: [Float] = []
        scalars.reserveCapacity(batch.count * batch[0].input.count)
        for job in batch { scalars += job.input.scalars }
        let output: Tensor
        do {
            output = try runner(task, Tensor(shape: [batch.count] + imageShape, scalars: scalars))
            scalars = []
        } catch {
            for job in batch { job.continuation.resume(throwing: error) }
            metrics.recordBatch(size: batch.count, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            return
        }
        let end = DispatchTime.now().uptimeNanoseconds
        let inference = Double(end - start) / 1e9
        metrics.recordBatch(size: batch.count, seconds: inference)
        condition.lock()
        let perImage = inference / Double(batch.count)
        secondsPerImage = secondsPerImage == 0 ? perImage : 0.8 * secondsPerImage + 0.2 * perImage
        condition.unlock()
        let rowShape = [1] + output.shape.dropFirst()
        let rowSize = output.count / batch.count
        for (i, job) in batch.enumerated() {
            let row = Tensor(shape: rowShape, scalars: Array(output.scalars[(i * rowSize)..<((i + 1) * rowSize)]))
            let wait = Double(start &- min(start, job.submitted)) / 1e9
            metrics.recordQueueWait(seconds: wait)
            job.continuation.resume(returning: Result(output: row, queueSeconds: wait, inferenceSeconds: inference,
                                                      batchSize: batch.count))
        }
    }
}
