import Foundation
import Hummingbird
import HummingbirdTesting
import Inception
@testable import InceptionServer
import NIOCore
import ServiceLifecycle
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Shared inputs: random slim-initialised weights (written once), sample photos, small PNGs.
enum Fixture {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let samples = repository.appendingPathComponent("Samples").path

    /// A .safetensors file with slim's initialisation (seed 7) for 1001 classes and spread logits
    /// biases, made on first use.
    static let weightsPath: String = {
        // Deterministic, so one file serves every run (written atomically; reused when present).
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inception-server-tests")
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("slim-init-seed7-biases11-v2.safetensors").path
        if FileManager.default.fileExists(atPath: path) { return path }
        let model = try! InceptionModel(options: ModelOptions(numClasses: 1001), seed: 7)
        // slim's initialisation gives nearly equal logits (every class ~0.1%); spread the biases so
        // that a few classes stand out, as with trained weights (the page then shows real bars).
        var generator = SeededGenerator(seed: 11)
        var biases = (0..<1001).map { _ in generator.truncatedNormal() }
        for (index, lift) in [(402, Float(7)), (817, 6), (130, 5)] { biases[index] += lift }  // ~35%, 13%, 5%
        let name = model.variableSpecs.first { $0.name.contains("/Logits/") && $0.role == .biases }!.name
        try! model.assign([name: Tensor(shape: [1001], scalars: biases)])
        try! SafeTensors.write(model.variables, to: path)
        return path
    }()

    static func sample(_ name: String) -> Data {
        FileManager.default.contents(atPath: (samples as NSString).appendingPathComponent(name))!
    }

    /// A `size` x `size` RGB PNG with a colour gradient (varied by `seed`).
    static func png(size: Int = 64, seed: Int = 0) -> Data {
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size {
            for x in 0..<size {
                let i = (y * size + x) * 3
                pixels[i] = UInt8((x * 4 + seed * 37) & 255)
                pixels[i + 1] = UInt8((y * 4 + seed * 11) & 255)
                pixels[i + 2] = UInt8(((x + y) * 2 + seed * 5) & 255)
            }
        }
        return try! PNGEncoder.encode(pixels: pixels, width: size, height: size, channels: 3)
    }

    static func options(_ configure: (inout ServerOptions) -> Void = { _ in }) -> ServerOptions {
        var options = ServerOptions(weightsPath: weightsPath)
        options.port = 0
        options.samplesDirectory = samples
        configure(&options)
        return options
    }

    /// A multipart/form-data body with a text field and a file field.
    static func multipart(file: Data, filename: String = "photo.png", fieldName: String = "file",
                          contentType: String = "image/png", boundary: String = "----inceptionTestBoundary7MA4YWxk") -> Data {
        var body = Data()
        body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n".utf8))
        body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(fieldName)\"; filename=\"\(filename)\"\r\nContent-Type: \(contentType)\r\n\r\n".utf8))
        body.append(file)
        body.append(Data("\r\n--\(boundary)--\r\n".utf8))
        return body
    }
}

/// Runs `body` against the server at router level (no sockets).
func withRouterServer<T: Sendable>(_ configure: (inout ServerOptions) -> Void = { _ in },
                                   _ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
    let app = try InceptionServer.makeApplication(options: Fixture.options(configure))
    return try await app.test(.router, body)
}

/// Runs the server for real on 127.0.0.1 (an ephemeral port) while `body` runs; then shuts it down
/// gracefully and waits for it to stop.
func withLiveServer<T: Sendable>(_ configure: (inout ServerOptions) -> Void = { _ in },
                                 _ body: @Sendable (_ port: Int, _ shutdown: @escaping @Sendable () async -> Void) async throws -> T) async throws -> T {
    let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
    let app = try InceptionServer.makeApplication(options: Fixture.options(configure)) { port in
        portContinuation.yield(port)
    }
    let group = ServiceGroup(configuration: .init(services: [app], logger: app.logger))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var iterator = portStream.makeAsyncIterator()
        guard let port = await iterator.next() else { throw XCTSkip("the server did not start") }
        do {
            let value = try await body(port) { await group.triggerGracefulShutdown() }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return value
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
    }
}

extension TestClientProtocol {
    func post(_ uri: String, _ data: Data, contentType: String? = "image/png", headers: HTTPFields = [:]) async throws -> TestResponse {
        var fields = headers
        if let contentType { fields[.contentType] = contentType }
        return try await executeRequest(uri: uri, method: .post, headers: fields, body: ByteBuffer(bytes: data))
    }
}

/// A blocking HTTP/1.1 exchange over a plain socket: full control of what is sent (e.g. a chunked
/// body with no Content-Length). Sends `head`, then `chunks` one by one, then reads to EOF.
struct RawHTTP {
    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Sends `head` and `chunks` (waiting `pauseMilliseconds` before each chunk after the first)
    /// and reads the reply.
    static func exchange(port: Int, head: String, chunks: [[UInt8]] = [], timeoutSeconds: Int = 60,
                         pauseMilliseconds: Int = 0) async throws -> Reply {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result {
                    try blockingExchange(port: port, head: head, chunks: chunks, timeoutSeconds: timeoutSeconds,
                                         pauseMilliseconds: pauseMilliseconds)
                })
            }
        }
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    static func blockingExchange(port: Int, head: String, chunks: [[UInt8]], timeoutSeconds: Int,
                                 pauseMilliseconds: Int = 0) throws -> Reply {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect() to port \(port) failed") }
        func send(_ bytes: [UInt8]) -> Bool {
            var offset = 0
            while offset < bytes.count {
                #if canImport(Glibc)
                let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                #else
                let n = bytes[offset...].withUnsafeBytes { Darwin.send(fd, $0.baseAddress, $0.count, 0) }
                #endif
                if n <= 0 { return false }  // the server may answer and close early (e.g. 413)
                offset += n
            }
            return true
        }
        if send(Array(head.utf8)) {
            for (i, chunk) in chunks.enumerated() {
                if i > 0 && pauseMilliseconds > 0 { usleep(useconds_t(pauseMilliseconds * 1000)) }
                if !send(chunk) { break }
            }
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0..<n]
            if let reply = parse(received), reply.complete { return reply.reply }
        }
        guard let reply = parse(received) else { throw Failure(description: "no HTTP response (\(received.count) bytes)") }
        return reply.reply
    }

    static func parse(_ bytes: [UInt8]) -> (reply: Reply, complete: Bool)? {
        guard let end = bytes.withUnsafeBufferPointer({ Multipart.find([13, 10, 13, 10], in: $0, from: 0) }) else { return nil }
        let headText = String(decoding: bytes[0..<end], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = Array(bytes[(end + 4)...])
        if let length = headers["content-length"].flatMap({ Int($0) }) {
            return (Reply(status: status, headers: headers, body: Array(body.prefix(length))), body.count >= length)
        }
        return (Reply(status: status, headers: headers, body: body), false)
    }
}

/// The value of a Prometheus sample line `name{labels} value` (exact match of name and labels).
func metricValue(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}
