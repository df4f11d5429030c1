import Foundation
import Hummingbird
import HummingbirdTesting
import Inception
@testable import InceptionServer
import NIOCore
import XCTest

/// Batching, back-pressure, isolation of bad requests, streaming limits and graceful shutdown.
final class LoadBehaviourTests: XCTestCase {
    func testConcurrentRequestsAreBatched() async throws {
        try await withRouterServer({ $0.maxBatch = 8; $0.maxDelayMilliseconds = 150 }) { client in
            let sizes = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for i in 0..<8 {
                    group.addTask {
                        let response = try await client.post("/v1/classify?top=1", Fixture.png(size: 48, seed: i))
                        XCTAssertEqual(response.status, .ok, response.text)
                        let top = (response.json["predictions"] as? [[String: Any]])?.first?["index"] as? Int ?? -1
                        return (response.json["batch_size"] as? Int ?? 0, top)
                    }
                }
                var all: [(Int, Int)] = []
                for try await result in group { all.append(result) }
                return all
            }
            XCTAssertEqual(sizes.count, 8)
            XCTAssertGreaterThan(sizes.map(\.0).max() ?? 0, 1, "no request shared a batch: \(sizes)")
            let metrics = try await client.execute(uri: "/metrics", method: .get).text
            let batches = try XCTUnwrap(metricValue(metrics, "inception_batch_size_count"))
            XCTAssertLessThan(batches, 8, metrics)
            XCTAssertEqual(metricValue(metrics, "inception_batch_size_sum"), 8)
            XCTAssertEqual(metricValue(metrics, #"inception_batch_size_bucket{le="1"}"#).map { $0 < batches }, true,
                           "the histogram shows no batch above 1")
        }
    }

    func testBatchedResultsMatchSingleResults() async throws {
        // Each request gets its own row of the batch: the same image gives the same answer alone or batched.
        let images = (0..<4).map { Fixture.png(size: 40, seed: 10 + $0) }
        let alone = try await withRouterServer({ $0.maxBatch = 1 }) { client in
            var out: [[Int]] = []
            for image in images {
                let r = try await client.post("/v1/classify?top=3", image)
                out.append((r.json["predictions"] as? [[String: Any]] ?? []).compactMap { $0["index"] as? Int })
            }
            return out
        }
        let batched = try await withRouterServer({ $0.maxBatch = 4; $0.maxDelayMilliseconds = 200 }) { client in
            try await withThrowingTaskGroup(of: (Int, [Int], Int).self) { group in
                for (i, image) in images.enumerated() {
                    group.addTask {
                        let r = try await client.post("/v1/classify?top=3", image)
                        return (i, (r.json["predictions"] as? [[String: Any]] ?? []).compactMap { $0["index"] as? Int },
                                r.json["batch_size"] as? Int ?? 0)
                    }
                }
                var out = [[Int]](repeating: [], count: images.count)
                var largest = 0
                for try await (i, indices, size) in group { out[i] = indices; largest = max(largest, size) }
                XCTAssertGreaterThan(largest, 1)
                return out
            }
        }
        XCTAssertEqual(alone, batched)
    }

    func testFullQueueGets503WithRetryAfter() async throws {
        try await withRouterServer({ $0.maxBatch = 1; $0.maxQueue = 1; $0.maxDelayMilliseconds = 0 }) { client in
            let statuses = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?, String).self) { group in
                for i in 0..<12 {
                    group.addTask {
                        let r = try await client.post("/v1/classify", Fixture.png(size: 64, seed: i))
                        return (r.status, r.headers[.retryAfter], r.text)
                    }
                }
                var all: [(HTTPResponse.Status, String?, String)] = []
                for try await result in group { all.append(result) }
                return all
            }
            let busy = statuses.filter { $0.0 == .serviceUnavailable }
            let ok = statuses.filter { $0.0 == .ok }
            XCTAssertEqual(busy.count + ok.count, 12, "unexpected statuses: \(statuses.map(\.0.code))")
            XCTAssertGreaterThan(busy.count, 0, "nothing was refused")
            XCTAssertGreaterThan(ok.count, 0, "nothing was served")
            for (_, retryAfter, text) in busy {
                XCTAssertNotNil(retryAfter.flatMap { Int($0) }, "503 without a numeric Retry-After")
                XCTAssertTrue(text.contains("\"error\""), text)
            }
            // The server is fine afterwards.
            let after = try await client.post("/v1/classify", Fixture.png())
            XCTAssertEqual(after.status, .ok)
            let metrics = try await client.execute(uri: "/metrics", method: .get).text
            XCTAssertEqual(metricValue(metrics, #"inception_http_requests_total{route="/v1/classify",status="503"}"#), Double(busy.count))
        }
    }

    func testBadRequestsDoNotDisturbGoodOnes() async throws {
        let bad: [(Data, String)] = [
            (Data("garbage".utf8), "application/octet-stream"),
            (Fixture.sample("cat.jpg").prefix(3000), "image/jpeg"),
            (Data([0xFF, 0xD8, 0xFF, 0xE0] + [UInt8](repeating: 0x41, count: 500)), "image/jpeg"),
            (Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 0, count: 100)), "image/png"),
            (Data("--x\r\n\r\n".utf8), "multipart/form-data; boundary=x"),
        ]
        try await withRouterServer({ $0.maxBatch = 4; $0.maxDelayMilliseconds = 30 }) { client in
            let results = try await withThrowingTaskGroup(of: (Bool, HTTPResponse.Status).self) { group in
                for i in 0..<15 {
                    group.addTask {
                        if i % 3 == 0 {
                            let (data, type) = bad[(i / 3) % bad.count]
                            return (false, try await client.post("/v1/classify", data, contentType: type).status)
                        }
                        return (true, try await client.post("/v1/classify", Fixture.png(size: 40, seed: i)).status)
                    }
                }
                var all: [(Bool, HTTPResponse.Status)] = []
                for try await r in group { all.append(r) }
                return all
            }
            for (good, status) in results {
                if good { XCTAssertEqual(status, .ok) } else { XCTAssertTrue([400, 415].contains(status.code), "\(status)") }
            }
        }
    }

    func testBodyLimitIsEnforcedWhileStreaming() async throws {
        // A chunked upload has no Content-Length: the server must stop at the limit, not buffer it all.
        try await withLiveServer({ $0.maxBodyBytes = 64 * 1024 }) { port, _ in
            let chunk = [UInt8](repeating: 0xAB, count: 16 * 1024)
            var chunks: [[UInt8]] = []
            for _ in 0..<16 { chunks.append(Array("4000\r\n".utf8) + chunk + Array("\r\n".utf8)) }
            chunks.append(Array("0\r\n\r\n".utf8))
            let head = "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            let reply = try await RawHTTP.exchange(port: port, head: head, chunks: chunks)
            XCTAssertEqual(reply.status, 413, reply.text)
            XCTAssertTrue(reply.text.contains("limit"), reply.text)

            // A declared Content-Length over the limit is refused before the body is read.
            let declared = "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                + "Content-Length: 999999999\r\nConnection: close\r\n\r\n"
            let early = try await RawHTTP.exchange(port: port, head: declared, chunks: [Array(repeating: 0, count: 1000)], timeoutSeconds: 20)
            XCTAssertEqual(early.status, 413, early.text)

            // And the server still answers.
            let png = [UInt8](Fixture.png())
            let ok = try await RawHTTP.exchange(
                port: port,
                head: "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: \(png.count)\r\nConnection: close\r\n\r\n",
                chunks: [png])
            XCTAssertEqual(ok.status, 200, ok.text)
        }
    }

    func testStalledUploadIsDroppedAndFreesItsPlace() async throws {
        // One place in all (max batch 1, max queue 0): a client that stops sending mid-body holds it
        // until the idle timeout closes its connection; then others are served again.
        try await withLiveServer({ $0.maxBatch = 1; $0.maxQueue = 0; $0.idleTimeoutSeconds = 1 }) { port, _ in
            let stalled = Task {
                try? await RawHTTP.exchange(
                    port: port,
                    head: "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n",
                    chunks: [[UInt8](repeating: 0x89, count: 10)], timeoutSeconds: 20)
            }
            let png = [UInt8](Fixture.png())
            let request = "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: \(png.count)\r\nConnection: close\r\n\r\n"
            try await Task.sleep(for: .milliseconds(300))
            let busy = try await RawHTTP.exchange(port: port, head: request, chunks: [png])
            XCTAssertEqual(busy.status, 503, busy.text)
            let started = Date()
            _ = await stalled.value
            XCTAssertLessThan(Date().timeIntervalSince(started), 10, "the stalled connection was not closed")
            // The place is freed when the stalled request's handler sees its body end, which can
            // come a moment after the client sees the connection close (a fresh-clone CI run got
            // one more 503 here): retry busy answers for up to 5 s.
            let closed = Date()
            var served = try await RawHTTP.exchange(port: port, head: request, chunks: [png])
            while served.status == 503 && Date().timeIntervalSince(closed) < 5 {
                try await Task.sleep(for: .milliseconds(100))
                served = try await RawHTTP.exchange(port: port, head: request, chunks: [png])
            }
            XCTAssertEqual(served.status, 200, served.text)
        }
    }

    func testGracefulShutdownFinishesRequestsInFlight() async throws {
        let png = [UInt8](Fixture.png(size: 64))
        let statuses = try await withLiveServer({ $0.maxBatch = 2; $0.maxDelayMilliseconds = 0 }) { port, shutdown in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<6 {
                    // The last request sends the second half of its body 400 ms after the first,
                    // so that it is still being read when the shutdown starts (a pass takes a few
                    // milliseconds: without a slow request, all six could be done by then).
                    let half = png.count / 2
                    let chunks = i == 5 ? [Array(png[..<half]), Array(png[half...])] : [png]
                    group.addTask {
                        try await RawHTTP.exchange(
                            port: port,
                            head: "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: \(png.count)\r\nConnection: close\r\n\r\n",
                            chunks: chunks, pauseMilliseconds: i == 5 ? 400 : 0).status
                    }
                }
                // Shut down once all six are accepted and some are still being decoded, queued or run.
                var inFlightAtShutdown = 0.0
                for _ in 0..<500 {
                    let metrics = try await RawHTTP.exchange(port: port, head: "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").text
                    let inFlight = metricValue(metrics, "inception_requests_in_flight") ?? 0
                    let done = metricValue(metrics, #"inception_http_requests_total{route="/v1/classify",status="200"}"#) ?? 0
                    if inFlight + done >= 6 { inFlightAtShutdown = inFlight; break }
                    try await Task.sleep(for: .milliseconds(5))
                }
                await shutdown()
                var all: [Int] = []
                for try await status in group { all.append(status) }
                XCTAssertGreaterThan(inFlightAtShutdown, 0, "everything had finished before the shutdown")
                return all
            }
        }
        XCTAssertEqual(statuses, [Int](repeating: 200, count: 6))
    }
}
