// HTTP download straight to a file, hashing the bytes as they arrive: a URLSession data task whose
// delegate appends each piece to the file and to a SHA-256, so the archive is never held in memory
// and is read only once. The caller's thread waits and reports progress.
import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

enum HTTPDownload {
    struct Result {
        var byteCount: Int64
        var sha256: String
    }

    enum Failure: Error {
        /// No answer, or the connection broke (`received` bytes had arrived by then).
        case transport(reason: String, received: Int64)
        /// An answer other than 200 (after redirects, which are followed).
        case httpStatus(Int, finalURL: String?)
        /// The server announced a Content-Length other than the expected size.
        case announcedSize(Int64)
        /// More bytes arrived than expected.
        case tooLong
        /// The file could not be written.
        case file(path: String, reason: String)
    }

    /// Downloads `url` into a new file at `path` (replacing any). Fails on a status other than 200,
    /// on `timeout` seconds without data, and as soon as the transfer is known to have the wrong
    /// size. A transfer that simply ends early is not an error here: `byteCount` says how far it got.
    static func fetch(_ url: URL, to path: String, expectedSize: Int64?, timeout: TimeInterval,
                      progress: ((Int64, Int64?) -> Void)?) throws -> Result {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw Failure.file(path: path, reason: "cannot create the file")
        }
        defer { try? handle.close() }

        let configuration = URLSessionConfiguration.ephemeral
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.timeoutIntervalForRequest = timeout  // the longest silence, not the whole transfer
        configuration.urlCache = nil
        let delegate = DownloadDelegate(handle: handle, path: path, expectedSize: expectedSize)
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }

        var request = URLRequest(url: url, timeoutInterval: timeout)
        // The bytes exactly as published: a transparently decoded .tar.gz would not match its hash.
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        let task = session.dataTask(with: request)
        task.resume()

        var reported: Int64 = -1
        func report() {
            guard let progress else { return }
            let (done, total) = delegate.progress
            if done != reported {
                reported = done
                progress(done, total)
            }
        }
        while delegate.finished.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
            report()
        }
        return try delegate.outcome(timeout: timeout, report: report)
    }

    /// "not found" for 404 and so on.
    static func reasonPhrase(_ status: Int) -> String {
        HTTPURLResponse.localizedString(forStatusCode: status)
    }

    static func describe(_ error: Error, timeout: TimeInterval) -> String {
        guard let error = error as? URLError else { return error.localizedDescription }
        switch error.code {
        case .cannotConnectToHost: return "cannot connect to the server"
        case .cannotFindHost, .dnsLookupFailed: return "cannot resolve the server's name"
        case .notConnectedToInternet: return "no network connection"
        case .timedOut: return "no data for \(String(format: "%g", timeout)) seconds"
        case .networkConnectionLost: return "the connection was lost"
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
             .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot:
            return "the secure connection failed"
        case .httpTooManyRedirects, .redirectToNonExistentLocation: return "too many or broken redirects"
        case .badServerResponse: return "the server's answer was not valid HTTP"
        case .unknown: return error.localizedDescription
        default: return "\(error.localizedDescription) [URLError \(error.code.rawValue)]"
        }
    }
}

/// Runs on the session's delegate queue; the waiting thread reads its state under the lock.
private final class DownloadDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let finished = DispatchSemaphore(value: 0)

    private let lock = NSLock()
    private let handle: FileHandle
    private let path: String
    private let expectedSize: Int64?
    private var hasher = SHA256()
    private var received: Int64 = 0
    private var total: Int64?
    private var failure: HTTPDownload.Failure?
    private var transportError: Error?

    init(handle: FileHandle, path: String, expectedSize: Int64?) {
        self.handle = handle
        self.path = path
        self.expectedSize = expectedSize
        self.total = expectedSize
    }

    var progress: (Int64, Int64?) {
        lock.withLock { (received, total) }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
        let disposition: URLSession.ResponseDisposition = lock.withLock {
            guard let http = response as? HTTPURLResponse else { return .allow }
            guard http.statusCode == 200 else {
                failure = .httpStatus(http.statusCode, finalURL: http.url?.absoluteString)
                return .cancel
            }
            let announced = http.expectedContentLength
            if announced >= 0 {
                if let expectedSize, announced != expectedSize {
                    failure = .announcedSize(announced)
                    return .cancel
                }
                total = announced
            }
            return .allow
        }
        completionHandler(disposition)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let keepGoing: Bool = lock.withLock {
            guard failure == nil else { return false }
            if let expectedSize, received + Int64(data.count) > expectedSize {
                failure = .tooLong
                return false
            }
            do {
                try handle.write(contentsOf: data)
            } catch {
                failure = .file(path: path, reason: error.localizedDescription)
                return false
            }
            hasher.update(data: data)
            received += Int64(data.count)
            return true
        }
        if !keepGoing { dataTask.cancel() }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        lock.withLock {
            if let error, failure == nil { transportError = error }
        }
        finished.signal()
    }

    /// After `finished`: the result, or the first thing that went wrong.
    func outcome(timeout: TimeInterval, report: () -> Void) throws -> HTTPDownload.Result {
        let (failure, transportError, received, hasher) = lock.withLock {
            (self.failure, self.transportError, self.received, self.hasher)
        }
        if let failure { throw failure }
        if let transportError {
            throw HTTPDownload.Failure.transport(
                reason: HTTPDownload.describe(transportError, timeout: timeout), received: received)
        }
        do {
            try handle.synchronize()
        } catch {
            throw HTTPDownload.Failure.file(path: path, reason: error.localizedDescription)
        }
        report()
        return HTTPDownload.Result(byteCount: received, sha256: hexString(hasher.finalize()))
    }
}
