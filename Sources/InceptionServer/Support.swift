import Dispatch
import Foundation
import Hummingbird
import NIOCore

/// An error answered as `{"error": message}` with its status (and headers, e.g. Retry-After).
struct APIError: Error, CustomStringConvertible {
    let status: HTTPResponse.Status
    let message: String
    var headers: HTTPFields = [:]

    var description: String { "\(status.code) \(message)" }

    static func badRequest(_ message: String) -> APIError { APIError(status: .badRequest, message: message) }

    /// The reason label of `inception_http_errors_total`.
    var reason: String {
        switch status.code {
        case 400: return "bad_request"
        case 404: return "not_found"
        case 405: return "method_not_allowed"
        case 413: return "too_large"
        case 415: return "unsupported_media_type"
        case 503: return "unavailable"
        case 500..<600: return "internal"
        default: return "client_error"
        }
    }

    var response: Response {
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.cacheControl] = "no-store"
        let body = JSON.object([("error", JSON.string(message))])
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Just enough JSON writing for the responses (hand-written for the long float arrays of /v1/features).
enum JSON {
    static func string(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A float as JSON: its shortest round-tripping decimal form; `null` when not finite.
    static func number(_ x: Float) -> String { x.isFinite ? x.description : "null" }

    /// Milliseconds, rounded to microseconds.
    static func milliseconds(_ seconds: Double) -> String {
        let ms = (seconds * 1e6).rounded() / 1e3
        return ms.isFinite ? String(ms) : "null"
    }

    static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    static func array(_ elements: [String]) -> String { "[" + elements.joined(separator: ",") + "]" }

    static func floats(_ values: [Float]) -> String {
        var out = "["
        out.reserveCapacity(values.count * 12 + 2)
        for (i, v) in values.enumerated() {
            if i > 0 { out += "," }
            out += number(v)
        }
        return out + "]"
    }
}

/// Lets at most `limit` callers run at once; the others wait in order. Used to bound how many
/// images are decoded at the same time (each holds its full decoded pixels).
final class Limiter: @unchecked Sendable {
    private let lock = NSLock()
    private let limit: Int
    private var active = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = max(1, limit) }

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if active < limit {
                active += 1
                lock.unlock()
                continuation.resume()
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
    }

    func release() {
        lock.lock()
        if waiters.isEmpty {
            active -= 1
            lock.unlock()
        } else {
            let next = waiters.removeFirst()  // the slot passes to it
            lock.unlock()
            next.resume()
        }
    }

    /// Runs `work` on a global dispatch queue (not Swift's cooperative pool) once a slot is free.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try work() })
            }
        }
    }
}

/// Monotonic seconds.
func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
