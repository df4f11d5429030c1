// A tiny HTTP/1.1 server on 127.0.0.1 for the download tests: POSIX sockets, one background
// thread, one connection at a time, `Connection: close` on every answer. It serves byte blobs by
// path (404 otherwise), can break a transfer off after N bytes, redirect, or answer with any
// status. It stops on `stop()`, on deinit, or by itself after `lifetime` seconds.
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

final class LocalHTTPServer: @unchecked Sendable {
    enum Route {
        /// 200 with these bytes.
        case body(Data)
        /// 200 announcing all of `data`, but the connection closes after the first `after` bytes.
        case truncated(Data, after: Int)
        /// 302 to another path on this server.
        case redirect(String)
        /// This status with a short text body.
        case status(Int)
        /// No answer at all for this long (then the connection closes).
        case stall(seconds: TimeInterval)
    }

    let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var routes: [String: Route]
    private var paths: [String] = []
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)

    init(routes: [String: Route], lifetime: TimeInterval = 30) throws {
        self.routes = routes
        let fd = socket(AF_INET, Self.streamSocket, 0)
        guard fd >= 0 else { throw Self.error("socket") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard Self.bindLoopback(fd) == 0, listen(fd, 16) == 0, let port = Self.boundPort(fd) else {
            close(fd)
            throw Self.error("bind/listen")
        }
        self.listener = fd
        self.port = port
        let deadline = Date().addingTimeInterval(lifetime)
        let thread = Thread { [self] in self.serve(until: deadline) }
        thread.name = "LocalHTTPServer:\(port)"
        thread.start()
    }

    deinit { stop() }

    func url(_ path: String) -> URL { URL(string: "http://127.0.0.1:\(port)\(path)")! }

    /// The paths requested so far, in order.
    var requestedPaths: [String] { lock.withLock { paths } }

    /// Stops accepting and closes the port (later connections are refused). Idempotent.
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        _ = stopped.wait(timeout: .now() + 5)
    }

    /// A port on 127.0.0.1 that nothing listens on (bound for a moment, then released).
    static func closedPort() throws -> UInt16 {
        let fd = socket(AF_INET, streamSocket, 0)
        guard fd >= 0 else { throw error("socket") }
        defer { close(fd) }
        guard bindLoopback(fd) == 0, let port = boundPort(fd) else { throw error("bind") }
        return port
    }

    // MARK: - Serving

    private func serve(until deadline: Date) {
        defer {
            close(listener)
            stopped.signal()
        }
        while !lock.withLock({ stopping }) && Date() < deadline {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #if canImport(Darwin)
        var yes: Int32 = 1
        setsockopt(client, SOL_SOCKET, SO_NOSIGPIPE, &yes, socklen_t(MemoryLayout<Int32>.size))
        #endif

        // The request head: up to the blank line (the tests send no bodies).
        var head = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while head.range(of: Data("\r\n\r\n".utf8)) == nil && head.count < 65536 {
            let n = recv(client, &buffer, buffer.count, 0)
            guard n > 0 else { return }
            head.append(buffer, count: n)
        }
        let requestLine = String(decoding: head, as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[0] == "GET" else {
            respond(client, status: 400, headers: [], body: Data("bad request\n".utf8))
            return
        }
        let path = String(parts[1])
        let route = lock.withLock { () -> Route? in
            paths.append(path)
            return routes[path]
        }
        switch route {
        case .body(let data)?:
            respond(client, status: 200, headers: ["Content-Type: application/gzip"], body: data)
        case .truncated(let data, let after)?:
            respond(client, status: 200, headers: ["Content-Type: application/gzip"], body: data,
                    sendOnly: min(after, data.count))
        case .redirect(let location)?:
            respond(client, status: 302, headers: ["Location: \(url(location).absoluteString)"], body: Data())
        case .status(let status)?:
            respond(client, status: status, headers: [], body: Data("status \(status)\n".utf8))
        case .stall(let seconds)?:
            let until = Date().addingTimeInterval(seconds)
            while Date() < until && !lock.withLock({ stopping }) { Thread.sleep(forTimeInterval: 0.02) }
        case nil:
            respond(client, status: 404, headers: [], body: Data("not found\n".utf8))
        }
    }

    private func respond(_ client: Int32, status: Int, headers: [String], body: Data, sendOnly: Int? = nil) {
        let reason = [200: "OK", 302: "Found", 400: "Bad Request", 404: "Not Found"][status] ?? "Status"
        let head = (["HTTP/1.1 \(status) \(reason)", "Content-Length: \(body.count)", "Connection: close"]
            + headers).joined(separator: "\r\n") + "\r\n\r\n"
        guard sendAll(client, Data(head.utf8)) else { return }
        _ = sendAll(client, body.prefix(sendOnly ?? body.count))
    }

    private func sendAll(_ client: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = send(client, raw.baseAddress! + offset, raw.count - offset, Self.noSignal)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                offset += n
            }
            return true
        }
    }

    // MARK: - Socket plumbing

    #if canImport(Glibc) || canImport(Musl)
    private static let streamSocket = Int32(SOCK_STREAM.rawValue)
    private static let noSignal = Int32(MSG_NOSIGNAL)
    #else
    private static let streamSocket = SOCK_STREAM
    private static let noSignal: Int32 = 0
    #endif

    /// Binds to 127.0.0.1 on an ephemeral port.
    private static func bindLoopback(_ fd: Int32) -> Int32 {
        var address = sockaddr_in()
        #if canImport(Darwin)
        address.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian  // 127.0.0.1
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    private static func boundPort(_ fd: Int32) -> UInt16? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? UInt16(bigEndian: address.sin_port) : nil
    }

    private static func error(_ call: String) -> Error {
        NSError(domain: "LocalHTTPServer", code: Int(errno),
                userInfo: [NSLocalizedDescriptionKey: "\(call): \(String(cString: strerror(errno)))"])
    }
}
