import Foundation
import Hummingbird
import Inception
import Logging
import NIOCore
import ServiceLifecycle

/// The HTTP server of `inception serve`: Inception V1 behind Hummingbird 2 with dynamic batching.
///
/// | route | what |
/// |---|---|
/// | `GET /` | a web page: drop or choose a photo, see the top 5 as bars |
/// | `POST /v1/classify[?top=K]` | image body (or multipart form with a file) → top-K classes as JSON |
/// | `POST /v1/features?endpoint=NAME[&pool=true\|false][&format=npy]` | one endpoint's activations as JSON or `.npy` |
/// | `GET /healthz` | `{"status":"ok"}` |
/// | `GET /metrics` | Prometheus text: requests, errors, batch sizes, latencies, queue depth |
public enum InceptionServer {
    /// The server as a Hummingbird application: run it with `runService()` (which shuts down
    /// gracefully on SIGTERM and SIGINT) or test it with HummingbirdTesting.
    /// `onServerRunning` receives the bound port (useful with port 0).
    public static func makeApplication(
        options: ServerOptions, logger: Logger? = nil,
        onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        try options.validate()
        let state = try ServerState(options: options)
        let router = Router()
        router.add(middleware: APIMiddleware(metrics: state.metrics))
        state.addRoutes(to: router)
        var log = logger ?? Logger(label: "inception.serve")
        if logger == nil { log.logLevel = .notice }
        return Application(
            router: router,
            // A connection that sends nothing for this long (a stalled upload, an idle keep-alive) is
            // closed; requests whose body has arrived are never cut off while they wait or run.
            server: .http1(configuration: .init(idleTimeout: .seconds(options.idleTimeoutSeconds))),
            configuration: ApplicationConfiguration(address: .hostname(options.host, port: options.port),
                                                    serverName: "inception"),
            services: [BatcherService(queue: state.queue)],
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? options.port) },
            logger: log
        )
    }

    /// Runs the server until SIGTERM or SIGINT, then stops accepting connections, finishes the
    /// requests in flight, runs what is queued and returns.
    public static func run(options: ServerOptions, logger: Logger? = nil,
                           onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }) async throws {
        let app = try makeApplication(options: options, logger: logger, onServerRunning: onServerRunning)
        try await app.runService()
    }
}

/// Runs the batching thread for as long as the server runs. Services shut down in reverse order,
/// so the HTTP server has finished its requests when this one is asked to stop.
struct BatcherService: Service {
    let queue: BatchQueue

    func run() async throws {
        try? await gracefulShutdown()
        await queue.shutdown()
    }
}

/// Records every request in the metrics and turns errors into JSON error responses.
struct APIMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: Metrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = monotonicSeconds()
        let route = Self.route(request.uri.path)
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            metrics.recordError(reason: error.reason)
            response = error.response
        } catch let error as HTTPError {
            let apiError = APIError(status: error.status, message: error.body ?? Self.message(error.status, request),
                                    headers: error.headers)
            metrics.recordError(reason: apiError.reason)
            response = apiError.response
        } catch let error as NIOTooManyBytesError {
            let apiError = APIError(status: .contentTooLarge, message: "the request body exceeds \(error.maxBytes.map(String.init) ?? "the limit of") bytes")
            metrics.recordError(reason: apiError.reason)
            response = apiError.response
        } catch {
            let apiError = APIError(status: .internalServerError, message: "internal error: \(error)")
            context.logger.error("\(request.method) \(request.uri.path): \(error)")
            metrics.recordError(reason: apiError.reason)
            response = apiError.response
        }
        metrics.recordRequest(route: route, status: response.status.code, seconds: monotonicSeconds() - start)
        return response
    }

    static func message(_ status: HTTPResponse.Status, _ request: Request) -> String {
        status == .notFound ? "no route for \(request.method) \(request.uri.path)" : status.reasonPhrase
    }

    /// The route label: the path for known routes, so that the label set stays small.
    static func route(_ path: String) -> String {
        switch path {
        case "/", "/healthz", "/metrics", "/v1/classify", "/v1/features", "/favicon.ico": return path
        default: return path.hasPrefix("/samples/") ? "/samples" : "other"
        }
    }
}

/// The model, the queue, the limits and the handlers.
final class ServerState: Sendable {
    static let headEndpoints = ["AvgPool_0a_7x7", "global_pool", "Logits", "Predictions"]
    /// Media types whose body is taken as the image itself (its format is detected from its bytes);
    /// `application/x-www-form-urlencoded` is what `curl --data-binary @photo.jpg` sends by default.
    static let rawBodyTypes: Set<String> = ["application/octet-stream", "application/x-www-form-urlencoded", "binary/octet-stream"]
    /// The endpoints `/v1/features` serves: the network's base endpoints and the head's.
    var endpoints: [String] { classifier.model.network.baseEndpoints + Self.headEndpoints }

    let options: ServerOptions
    let classifier: Classifier
    /// The architecture served (from the weights).
    let modelName: String
    /// The classifier's preprocessing: the options' base, with the input size of a model trained by
    /// `inception train` (read from its metadata). Feature extractors of the same file use the same.
    let preprocessing: Preprocessing
    let metrics: Metrics
    let queue: BatchQueue
    let decoders: Limiter
    let admission: Admission
    let extractors: ExtractorCache

    init(options: ServerOptions) throws {
        self.options = options
        let classifier = try Classifier(weights: options.weightsPath, preprocessing: options.preprocessing)
        if let expected = options.architecture, classifier.model.options.architecture != expected {
            throw ModelError("\(options.weightsPath) holds a \(classifier.model.options.architecture.rawValue) model, not \(expected.rawValue)")
        }
        self.classifier = classifier
        preprocessing = classifier.preprocessing
        modelName = classifier.model.options.architecture.rawValue
        let metrics = Metrics(model: modelName, maxBatch: options.maxBatch)
        self.metrics = metrics
        let extractors = ExtractorCache(weightsPath: options.weightsPath, preprocessing: classifier.preprocessing,
                                        capacity: options.maxFeatureExtractors)
        self.extractors = extractors
        queue = BatchQueue(maxBatch: options.maxBatch, maxDelayMilliseconds: options.maxDelayMilliseconds,
                           maxQueue: options.maxQueue, metrics: metrics) { task, batch in
            switch task {
            case .classify:
                guard let p = try classifier.model.forward(batch, endpoints: .only(["Predictions"])).endpoints["Predictions"] else {
                    throw ModelError("the model gave no Predictions")
                }
                return p
            case .features(let endpoint):
                let extractor = try extractors.extractor(for: endpoint)
                // The extractor may name the endpoint differently (a model trained at another size
                // pools globally: AvgPool_0a_7x7 is then global_pool).
                guard let value = try extractor.model.forward(batch, endpoints: .only([extractor.endpoint]))
                    .endpoints[extractor.endpoint] else {
                    throw ModelError("the model gave no \(extractor.endpoint)")
                }
                return value
            }
        }
        decoders = Limiter(limit: options.decodeConcurrency)
        admission = Admission(limit: options.maxQueue + options.maxBatch)
    }

    func addRoutes(to router: Router<some RequestContext>) {
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                     body: .init(byteBuffer: ByteBuffer(string: WebPage.html)))
        }
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                     body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        router.get("/metrics") { [metrics] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
        router.post("/v1/classify") { [self] request, _ in try await classify(request) }
        router.post("/v1/features") { [self] request, _ in try await features(request) }
        for path in ["/v1/classify", "/v1/features"] {
            router.get(RouterPath(path)) { request, _ -> Response in
                throw APIError(status: .methodNotAllowed, message: "\(request.uri.path) takes POST with an image body",
                               headers: [.allow: "POST"])
            }
        }
        if let directory = options.samplesDirectory {
            router.get("/samples/:name") { _, context in
                try Self.sample(directory: directory, name: context.parameters.get("name") ?? "")
            }
        }
    }

    // MARK: - Handlers

    func classify(_ request: Request) async throws -> Response {
        let start = monotonicSeconds()
        let top = try Self.intParameter(request, "top", default: 5, range: 1...1000)
        let (result, _) = try await runModel(.classify, request)
        let row = result.output.scalars
        let order = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(min(top, row.count))
        let predictions = order.enumerated().map { rank, index in
            JSON.object([("rank", "\(rank + 1)"), ("index", "\(index)"),
                         ("label", JSON.string(classifier.labels[output: index])),
                         ("probability", JSON.number(row[index]))])
        }
        metrics.countImages(classified: 1)
        let body = JSON.object([
            ("predictions", JSON.array(predictions)),
            ("model", JSON.string(modelName)),
            ("batch_size", "\(result.batchSize)"),
            ("timing_ms", timing(result, start: start)),
        ])
        return Self.json(body)
    }

    func features(_ request: Request) async throws -> Response {
        let start = monotonicSeconds()
        let query = request.uri.queryParameters
        guard let endpoint = query["endpoint"].map(String.init), !endpoint.isEmpty else {
            throw APIError.badRequest("missing ?endpoint=NAME; choose one of: " + endpoints.joined(separator: ", "))
        }
        guard endpoints.contains(endpoint) else {
            throw APIError.badRequest("unknown endpoint '\(endpoint)'; choose one of: " + endpoints.joined(separator: ", "))
        }
        let pool = try Self.boolParameter(request, "pool", default: true)
        let wantsNPY: Bool
        switch query["format"].map({ $0.lowercased() }) {
        case "npy": wantsNPY = true
        case "json": wantsNPY = false
        case nil, "": wantsNPY = (request.headers[.accept] ?? "").lowercased().contains("application/x-npy")
        case let other?: throw APIError.badRequest("unknown format '\(other)'; use json or npy")
        }
        let (result, _) = try await runModel(.features(endpoint: endpoint), request)
        var value = result.output  // [1, ...]
        if pool && value.rank == 4 {
            value = Pooling.globalAverage(value)
            value = value.reshaped([value.shape[0], value.shape[3]])
        }
        let shape = Array(value.shape.dropFirst())
        value = value.reshaped(shape)
        metrics.countImages(features: 1)
        if wantsNPY {
            let bytes = NPYBytes.encode(value)
            return Response(status: .ok,
                            headers: [.contentType: "application/x-npy",
                                      .contentDisposition: "attachment; filename=\"\(endpoint).npy\""],
                            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        let body = JSON.object([
            ("endpoint", JSON.string(endpoint)),
            ("shape", JSON.array(shape.map(String.init))),
            ("values", JSON.floats(value.scalars)),
            ("model", JSON.string(modelName)),
            ("timing_ms", timing(result, start: start)),
        ])
        return Self.json(body)
    }

    /// Admission, body, decoding and preprocessing, then the batch queue.
    private func runModel(_ task: ModelTask, _ request: Request) async throws -> (BatchQueue.Result, String) {
        guard admission.enter() else {
            throw APIError(status: .serviceUnavailable,
                           message: "the server is busy (\(admission.limit) image requests in progress); retry later",
                           headers: [.retryAfter: "\(queue.retryAfterSeconds)"])
        }
        metrics.addInFlight(1)
        defer {
            admission.leave()
            metrics.addInFlight(-1)
        }
        let upload = try await readUpload(request)
        let input = try await decoders.run { [options, preprocessing] in
            try Self.preprocess(upload, preprocessing: preprocessing, maxPixels: options.maxPixels)
        }
        do {
            return (try await queue.submit(task, input: input), upload.name)
        } catch QueueError.full {
            throw APIError(status: .serviceUnavailable, message: "the queue is full; retry later",
                           headers: [.retryAfter: "\(queue.retryAfterSeconds)"])
        } catch QueueError.shuttingDown {
            throw APIError(status: .serviceUnavailable, message: "the server is shutting down",
                           headers: [.retryAfter: "5"])
        }
    }

    private func timing(_ result: BatchQueue.Result, start: Double) -> String {
        JSON.object([("queue", JSON.milliseconds(result.queueSeconds)),
                     ("inference", JSON.milliseconds(result.inferenceSeconds)),
                     ("total", JSON.milliseconds(monotonicSeconds() - start))])
    }

    // MARK: - Reading the image

    /// The request body, and how to find the image in it.
    struct Upload: Sendable {
        var body: ByteBuffer
        var boundary: String?
        var name: String
    }

    /// Checks the content type and collects the body, refusing it (413) as soon as it passes the limit.
    func readUpload(_ request: Request) async throws -> Upload {
        let contentType = request.headers[.contentType] ?? ""
        let parameters = Multipart.parameters(contentType)
        let media = parameters[""] ?? ""
        var boundary: String?
        if media == "multipart/form-data" {
            guard let b = Multipart.boundary(contentType: contentType) else {
                throw APIError.badRequest("multipart/form-data without a boundary parameter")
            }
            boundary = b
        } else if !(media.isEmpty || media.hasPrefix("image/") || Self.rawBodyTypes.contains(media)) {
            throw APIError(status: .unsupportedMediaType,
                           message: "unsupported Content-Type '\(contentType)'; send the image as image/jpeg, image/png, "
                               + "application/octet-stream or multipart/form-data")
        }
        let limit = options.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw Self.tooLarge(limit)
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Self.tooLarge(limit)
        } catch {
            // The client went away or stalled past the idle timeout.
            throw APIError.badRequest("the request body could not be read: \(error)")
        }
        guard body.readableBytes > 0 else { throw APIError.badRequest("the request body is empty; send a JPEG or PNG image") }
        return Upload(body: body, boundary: boundary, name: "upload")
    }

    static func tooLarge(_ limit: Int) -> APIError {
        APIError(status: .contentTooLarge, message: "the request body exceeds the limit of \(megabytes(limit)) MB")
    }

    static func megabytes(_ bytes: Int) -> String {
        let mb = Double(bytes) / 1_048_576
        return mb == mb.rounded() ? String(Int(mb)) : String(format: "%.2f", mb)
    }

    /// Decodes and preprocesses the image (runs off the event loops and the cooperative pool).
    static func preprocess(_ upload: Upload, preprocessing: Preprocessing, maxPixels: Int) throws -> Tensor {
        let decode = DecodeOptions(maxPixels: maxPixels)
        let image: RGBImage = try upload.body.withUnsafeReadableBytes { raw throws -> RGBImage in
            var bytes = raw
            var name = upload.name
            if let boundary = upload.boundary {
                let parts: [Multipart.Part]
                do { parts = try Multipart.parse(raw, boundary: boundary) } catch let error as Multipart.ParseError {
                    throw APIError.badRequest(error.description)
                }
                guard let part = Multipart.filePart(parts) else {
                    throw APIError.badRequest("the form has no file field (send the image as a part named 'file')")
                }
                bytes = UnsafeRawBufferPointer(rebasing: raw[part.range])
                name = part.filename.map { $0.isEmpty ? "upload" : $0 } ?? "upload"
            }
            do {
                return try ImageDecoder.decode(buffer: bytes, name: name, options: decode)
            } catch let error as ImageError {
                throw Self.apiError(error)
            }
        }
        return preprocessing.tensor(for: image)
    }

    static func apiError(_ error: ImageError) -> APIError {
        switch error.kind {
        case .notAnImage, .unsupportedFormat:
            return APIError(status: .unsupportedMediaType, message: error.description)
        case .empty:
            return APIError.badRequest(error.description)
        case .truncated, .corrupt:
            return APIError.badRequest(error.description)
        case .tooManyPixels:
            return APIError(status: .contentTooLarge, message: error.description)
        case .outOfMemory, .unreadable:
            return APIError(status: .internalServerError, message: error.description)
        }
    }

    // MARK: - Parameters and responses

    static func intParameter(_ request: Request, _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = request.uri.queryParameters[Substring(name)], !text.isEmpty else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw APIError.badRequest("?\(name)= must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return n
    }

    static func boolParameter(_ request: Request, _ name: String, default value: Bool) throws -> Bool {
        guard let text = request.uri.queryParameters[Substring(name)]?.lowercased(), !text.isEmpty else { return value }
        switch text {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw APIError.badRequest("?\(name)= must be true or false, got '\(text)'")
        }
    }

    static func json(_ body: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A JPEG or PNG file directly in `directory`.
    static func sample(directory: String, name: String) throws -> Response {
        let allowed = name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0) }
        let lower = name.lowercased()
        let type = lower.hasSuffix(".png") ? "image/png" : (lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg")) ? "image/jpeg" : nil
        guard allowed, !name.hasPrefix("."), let type,
              let data = FileManager.default.contents(atPath: (directory as NSString).appendingPathComponent(name)) else {
            throw APIError(status: .notFound, message: "no sample '\(name)'")
        }
        return Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Counts the image requests in progress and refuses those above the limit.
final class Admission: @unchecked Sendable {
    let limit: Int
    private let lock = NSLock()
    private var count = 0

    init(limit: Int) { self.limit = limit }

    func enter() -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard count < limit else { return false }
        count += 1
        return true
    }

    func leave() {
        lock.lock(); defer { lock.unlock() }
        count -= 1
    }
}

/// One feature extractor (a network cut at the endpoint) per endpoint, made on first use and
/// kept for the next requests; the least recently used goes when `capacity` are held.
final class ExtractorCache: @unchecked Sendable {
    private let lock = NSLock()
    private let weightsPath: String
    private let preprocessing: Preprocessing
    private let capacity: Int
    private var extractors: [(endpoint: String, extractor: FeatureExtractor)] = []

    init(weightsPath: String, preprocessing: Preprocessing, capacity: Int) {
        self.weightsPath = weightsPath
        self.preprocessing = preprocessing
        self.capacity = capacity
    }

    func extractor(for endpoint: String) throws -> FeatureExtractor {
        lock.lock(); defer { lock.unlock() }
        if let i = extractors.firstIndex(where: { $0.endpoint == endpoint }) {
            let hit = extractors.remove(at: i)
            extractors.append(hit)
            return hit.extractor
        }
        if extractors.count >= capacity { extractors.removeFirst() }
        let extractor = try FeatureExtractor(weights: weightsPath, endpoint: endpoint, preprocessing: preprocessing)
        extractors.append((endpoint, extractor))
        return extractor
    }

    var endpoints: [String] {
        lock.lock(); defer { lock.unlock() }
        return extractors.map(\.endpoint)
    }
}
