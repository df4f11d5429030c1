import Foundation

/// The server's counters, gauges and histograms, rendered in Prometheus' text exposition format
/// (version 0.0.4) at GET /metrics.
final class Metrics: @unchecked Sendable {
    /// A cumulative histogram with fixed upper bounds.
    struct Histogram {
        let bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0

        init(_ bounds: [Double]) {
            self.bounds = bounds
            counts = [Int](repeating: 0, count: bounds.count)
        }

        mutating func observe(_ value: Double) {
            if let i = bounds.firstIndex(where: { value <= $0 }) { counts[i] += 1 }
            sum += value
            count += 1
        }

        func render(_ name: String, labels: String = "", into out: inout String) {
            var cumulative = 0
            let prefix = labels.isEmpty ? "" : labels + ","
            for (bound, n) in zip(bounds, counts) {
                cumulative += n
                out += "\(name)_bucket{\(prefix)le=\"\(Metrics.number(bound))\"} \(cumulative)\n"
            }
            out += "\(name)_bucket{\(prefix)le=\"+Inf\"} \(count)\n"
            let braces = labels.isEmpty ? "" : "{\(labels)}"
            out += "\(name)_sum\(braces) \(Metrics.number(sum))\n"
            out += "\(name)_count\(braces) \(count)\n"
        }
    }

    static let latencyBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let batchBounds: [Double] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256]

    private let lock = NSLock()
    private let model: String
    private let maxBatch: Int
    private var requests: [String: [Int: Int]] = [:]  // route → status → count
    private var errors: [String: Int] = [:]  // reason → count
    private var batchSize = Histogram(Metrics.batchBounds)
    private var queueWait = Histogram(Metrics.latencyBounds)
    private var inference = Histogram(Metrics.latencyBounds)
    private var duration: [String: Histogram] = [:]  // route → total request time
    private var queueDepth = 0
    private var inFlight = 0
    private var imagesClassified = 0
    private var imagesFeatures = 0
    private let started = Date()

    init(model: String, maxBatch: Int) {
        self.model = model
        self.maxBatch = maxBatch
    }

    func recordRequest(route: String, status: Int, seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        requests[route, default: [:]][status, default: 0] += 1
        duration[route, default: Histogram(Metrics.latencyBounds)].observe(seconds)
    }

    func recordError(reason: String) {
        lock.lock(); defer { lock.unlock() }
        errors[reason, default: 0] += 1
    }

    func recordBatch(size: Int, seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        batchSize.observe(Double(size))
        inference.observe(seconds)
    }

    func recordQueueWait(seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        queueWait.observe(seconds)
    }

    func setQueueDepth(_ depth: Int) {
        lock.lock(); defer { lock.unlock() }
        queueDepth = depth
    }

    func addInFlight(_ delta: Int) {
        lock.lock(); defer { lock.unlock() }
        inFlight += delta
    }

    func countImages(classified: Int = 0, features: Int = 0) {
        lock.lock(); defer { lock.unlock() }
        imagesClassified += classified
        imagesFeatures += features
    }

    /// The largest batch run so far (0 before the first).
    var largestBatch: Int {
        lock.lock(); defer { lock.unlock() }
        guard let last = batchSize.counts.lastIndex(where: { $0 > 0 }) else { return 0 }
        return Int(batchSize.bounds[last])
    }

    /// The exposition text.
    func render() -> String {
        lock.lock(); defer { lock.unlock() }
        var out = ""
        func header(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        header("inception_http_requests_total", "counter", "HTTP requests by route and status code.")
        for route in requests.keys.sorted() {
            for status in requests[route]!.keys.sorted() {
                out += "inception_http_requests_total{route=\"\(Metrics.escape(route))\",status=\"\(status)\"} \(requests[route]![status]!)\n"
            }
        }
        header("inception_http_errors_total", "counter", "Requests answered with an error, by reason.")
        for reason in errors.keys.sorted() {
            out += "inception_http_errors_total{reason=\"\(Metrics.escape(reason))\"} \(errors[reason]!)\n"
        }
        header("inception_request_duration_seconds", "histogram", "Time from the request's arrival to its response, by route.")
        for route in duration.keys.sorted() {
            duration[route]!.render("inception_request_duration_seconds", labels: "route=\"\(Metrics.escape(route))\"", into: &out)
        }
        header("inception_queue_wait_seconds", "histogram", "Time an image waited for its batch to start.")
        queueWait.render("inception_queue_wait_seconds", into: &out)
        header("inception_inference_seconds", "histogram", "Time of one batched forward pass.")
        inference.render("inception_inference_seconds", into: &out)
        header("inception_batch_size", "histogram", "Images per forward pass.")
        batchSize.render("inception_batch_size", into: &out)
        header("inception_queue_depth", "gauge", "Images waiting for the model.")
        out += "inception_queue_depth \(queueDepth)\n"
        header("inception_requests_in_flight", "gauge", "Image requests being read, decoded, queued or run.")
        out += "inception_requests_in_flight \(inFlight)\n"
        header("inception_images_classified_total", "counter", "Images classified.")
        out += "inception_images_classified_total \(imagesClassified)\n"
        header("inception_feature_images_total", "counter", "Images whose features were computed.")
        out += "inception_feature_images_total \(imagesFeatures)\n"
        header("inception_max_batch_size", "gauge", "The configured largest batch.")
        out += "inception_max_batch_size \(maxBatch)\n"
        header("inception_model_info", "gauge", "The model being served.")
        out += "inception_model_info{model=\"\(Metrics.escape(model))\"} 1\n"
        header("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        out += "process_resident_memory_bytes \(Metrics.residentBytes())\n"
        header("process_uptime_seconds", "gauge", "Seconds since the server started.")
        out += "process_uptime_seconds \(Metrics.number(Date().timeIntervalSince(started)))\n"
        return out
    }

    static func number(_ x: Double) -> String {
        if x == x.rounded(), abs(x) < 1e15 { return String(Int(x)) }
        return String(x)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Resident set size from /proc/self/statm (0 where there is no /proc).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
