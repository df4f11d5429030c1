import Foundation
import Hummingbird
import HummingbirdTesting
import Inception
@testable import InceptionServer
import NIOCore
import XCTest

final class EndpointTests: XCTestCase {
    func testHealthzAndPage() async throws {
        try await withRouterServer { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            XCTAssertEqual(health.status, .ok)
            XCTAssertEqual(health.json["status"] as? String, "ok")

            let page = try await client.execute(uri: "/", method: .get)
            XCTAssertEqual(page.status, .ok)
            XCTAssertEqual(page.headers[.contentType], "text/html; charset=utf-8")
            for element in ["<title>", "id=\"drop\"", "id=\"file\"", "id=\"predictions\"", "/v1/classify?top=5", "demo"] {
                XCTAssertTrue(page.text.contains(element), "the page lacks \(element)")
            }
            XCTAssertFalse(page.text.contains("http://"), "the page must not load external assets")
            XCTAssertFalse(page.text.contains("https://"), "the page must not load external assets")

            let get = try await client.execute(uri: "/v1/classify", method: .get)
            XCTAssertEqual(get.status, .methodNotAllowed)
            XCTAssertEqual(get.headers[.allow], "POST")

            let missing = try await client.execute(uri: "/nope", method: .get)
            XCTAssertEqual(missing.status, .notFound)
            XCTAssertNotNil(missing.json["error"] as? String)
        }
    }

    func testClassifyRawJPEGAndPNG() async throws {
        try await withRouterServer { client in
            let response = try await client.post("/v1/classify", Fixture.sample("cat.jpg"), contentType: "image/jpeg")
            XCTAssertEqual(response.status, .ok, response.text)
            XCTAssertEqual(response.headers[.contentType], "application/json; charset=utf-8")
            let json = response.json
            XCTAssertEqual(json["model"] as? String, "inception_v1")
            let predictions = try XCTUnwrap(json["predictions"] as? [[String: Any]])
            XCTAssertEqual(predictions.count, 5)
            XCTAssertEqual(predictions.map { $0["rank"] as? Int }, [1, 2, 3, 4, 5])
            let probabilities = predictions.compactMap { ($0["probability"] as? NSNumber)?.doubleValue }
            XCTAssertEqual(probabilities.count, 5)
            XCTAssertEqual(probabilities, probabilities.sorted(by: >))
            XCTAssertTrue(probabilities.allSatisfy { $0 > 0 && $0 <= 1 })
            let labels = try Labels.imagenet()
            for p in predictions {
                let index = try XCTUnwrap(p["index"] as? Int)
                XCTAssertEqual(p["label"] as? String, labels.name(forOutput: index))
            }
            let timing = try XCTUnwrap(json["timing_ms"] as? [String: Any])
            for key in ["queue", "inference", "total"] {
                XCTAssertNotNil((timing[key] as? NSNumber)?.doubleValue, "timing_ms.\(key)")
            }
            let total = (timing["total"] as! NSNumber).doubleValue
            XCTAssertGreaterThanOrEqual(total, (timing["inference"] as! NSNumber).doubleValue)

            // A PNG as application/octet-stream, and with no Content-Type at all.
            let png = try await client.post("/v1/classify?top=3", Fixture.png(), contentType: "application/octet-stream")
            XCTAssertEqual(png.status, .ok, png.text)
            XCTAssertEqual((png.json["predictions"] as? [Any])?.count, 3)
            // curl --data-binary sends application/x-www-form-urlencoded unless told otherwise.
            let curl = try await client.post("/v1/classify?top=1", Fixture.png(), contentType: "application/x-www-form-urlencoded")
            XCTAssertEqual(curl.status, .ok, curl.text)
            let bare = try await client.post("/v1/classify?top=1", Fixture.png(), contentType: nil)
            XCTAssertEqual(bare.status, .ok, bare.text)
            XCTAssertEqual((bare.json["predictions"] as? [Any])?.count, 1)
        }
    }

    func testClassifyAgreesWithTheLibrary() async throws {
        let classifier = try Classifier(weights: Fixture.weightsPath)
        let image = try ImageDecoder.decode(data: Fixture.sample("cat.jpg"), name: "cat.jpg")
        let expected = try classifier.classify([image], top: 3)[0]
        try await withRouterServer { client in
            let response = try await client.post("/v1/classify?top=3", Fixture.sample("cat.jpg"), contentType: "image/jpeg")
            let predictions = try XCTUnwrap(response.json["predictions"] as? [[String: Any]])
            XCTAssertEqual(predictions.map { $0["index"] as? Int }, expected.map(\.index))
            for (got, want) in zip(predictions, expected) {
                XCTAssertEqual((got["probability"] as! NSNumber).floatValue, want.probability, accuracy: 1e-6)
            }
        }
    }

    func testClassifyMultipart() async throws {
        try await withRouterServer { client in
            let raw = try await client.post("/v1/classify?top=2", Fixture.png(seed: 3))
            let boundary = "----inceptionTestBoundary7MA4YWxk"
            let form = try await client.post("/v1/classify?top=2", Fixture.multipart(file: Fixture.png(seed: 3), boundary: boundary),
                                             contentType: "multipart/form-data; boundary=\(boundary)")
            XCTAssertEqual(form.status, .ok, form.text)
            let a = try XCTUnwrap(raw.json["predictions"] as? [[String: Any]])
            let b = try XCTUnwrap(form.json["predictions"] as? [[String: Any]])
            XCTAssertEqual(a.map { $0["index"] as? Int }, b.map { $0["index"] as? Int })

            // A quoted boundary, as some clients send it.
            let quoted = try await client.post("/v1/classify", Fixture.multipart(file: Fixture.png(seed: 3), boundary: "abc"),
                                               contentType: "multipart/form-data; boundary=\"abc\"")
            XCTAssertEqual(quoted.status, .ok, quoted.text)
        }
    }

    func testBadRequests() async throws {
        try await withRouterServer { client in
            for top in ["0", "1001", "abc", "-3"] {
                let response = try await client.post("/v1/classify?top=\(top)", Fixture.png())
                XCTAssertEqual(response.status, .badRequest, "top=\(top)")
                XCTAssertTrue((response.json["error"] as? String ?? "").contains("top"), response.text)
            }
            let empty = try await client.execute(uri: "/v1/classify", method: .post, headers: [.contentType: "image/png"], body: nil)
            XCTAssertEqual(empty.status, .badRequest)
            XCTAssertTrue((empty.json["error"] as? String ?? "").contains("empty"), empty.text)

            let truncated = try await client.post("/v1/classify", Fixture.sample("cat.jpg").prefix(2000), contentType: "image/jpeg")
            XCTAssertEqual(truncated.status, .badRequest, truncated.text)
            XCTAssertTrue((truncated.json["error"] as? String ?? "").contains("truncated"), truncated.text)

            let noBoundary = try await client.post("/v1/classify", Fixture.multipart(file: Fixture.png()), contentType: "multipart/form-data")
            XCTAssertEqual(noBoundary.status, .badRequest)
            let wrongBoundary = try await client.post("/v1/classify", Fixture.multipart(file: Fixture.png(), boundary: "xyz"),
                                                      contentType: "multipart/form-data; boundary=other")
            XCTAssertEqual(wrongBoundary.status, .badRequest)
            XCTAssertTrue((wrongBoundary.json["error"] as? String ?? "").contains("boundary"), wrongBoundary.text)
            let unterminated = Data("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n".utf8) + Fixture.png()
            let cut = try await client.post("/v1/classify", unterminated, contentType: "multipart/form-data; boundary=b")
            XCTAssertEqual(cut.status, .badRequest)
            let noFile = Data("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n2\r\n--b--\r\n".utf8)
            let fileless = try await client.post("/v1/classify", noFile, contentType: "multipart/form-data; boundary=b")
            XCTAssertEqual(fileless.status, .badRequest)
            XCTAssertTrue((fileless.json["error"] as? String ?? "").contains("file"), fileless.text)
        }
    }

    func testUnsupportedMediaType() async throws {
        try await withRouterServer { client in
            let text = try await client.post("/v1/classify", Data("hello, world".utf8), contentType: "application/octet-stream")
            XCTAssertEqual(text.status, .unsupportedMediaType)
            XCTAssertTrue((text.json["error"] as? String ?? "").contains("not a JPEG or PNG"), text.text)

            let gif = Data("GIF89a".utf8) + Data(repeating: 0, count: 64)
            let gifResponse = try await client.post("/v1/classify", gif, contentType: "image/gif")
            XCTAssertEqual(gifResponse.status, .unsupportedMediaType)
            XCTAssertTrue((gifResponse.json["error"] as? String ?? "").contains("GIF"), gifResponse.text)

            let json = try await client.post("/v1/classify", Data("{}".utf8), contentType: "application/json")
            XCTAssertEqual(json.status, .unsupportedMediaType)
            XCTAssertTrue((json.json["error"] as? String ?? "").contains("Content-Type"), json.text)

            let formGIF = try await client.post("/v1/classify", Fixture.multipart(file: gif, filename: "a.gif", contentType: "image/gif", boundary: "q"),
                                                contentType: "multipart/form-data; boundary=q")
            XCTAssertEqual(formGIF.status, .unsupportedMediaType)
            XCTAssertTrue((formGIF.json["error"] as? String ?? "").contains("a.gif"), formGIF.text)
        }
    }

    func testBodyLimit() async throws {
        try await withRouterServer({ $0.maxBodyBytes = 32 * 1024 }) { client in
            let big = try await client.post("/v1/classify", Data(repeating: 0xFF, count: 100_000), contentType: "image/jpeg")
            XCTAssertEqual(big.status, .contentTooLarge)
            XCTAssertTrue((big.json["error"] as? String ?? "").contains("limit"), big.text)
            // Under the limit still works.
            let small = try await client.post("/v1/classify", Fixture.png(size: 32))
            XCTAssertEqual(small.status, .ok, small.text)
        }
    }

    func testFeaturesJSON() async throws {
        try await withRouterServer { client in
            let pooled = try await client.post("/v1/features?endpoint=Mixed_5c", Fixture.png())
            XCTAssertEqual(pooled.status, .ok, pooled.text)
            XCTAssertEqual(pooled.json["endpoint"] as? String, "Mixed_5c")
            XCTAssertEqual(pooled.json["shape"] as? [Int], [1024])
            XCTAssertEqual((pooled.json["values"] as? [Any])?.count, 1024)

            let maps = try await client.post("/v1/features?endpoint=Mixed_5c&pool=false", Fixture.png())
            XCTAssertEqual(maps.json["shape"] as? [Int], [7, 7, 1024])
            let values = try XCTUnwrap(maps.json["values"] as? [NSNumber]).map(\.floatValue)
            XCTAssertEqual(values.count, 7 * 7 * 1024)
            // The pooled row is the mean of the maps.
            let pooledValues = try XCTUnwrap(pooled.json["values"] as? [NSNumber]).map(\.floatValue)
            for c in [0, 17, 1023] {
                let mean = (0..<49).map { values[$0 * 1024 + c] }.reduce(0, +) / 49
                XCTAssertEqual(pooledValues[c], mean, accuracy: 1e-4 * max(1, abs(mean)))
            }

            let logits = try await client.post("/v1/features?endpoint=Logits", Fixture.png())
            XCTAssertEqual(logits.json["shape"] as? [Int], [1001])
            let early = try await client.post("/v1/features?endpoint=Conv2d_2b_1x1&pool=false", Fixture.png())
            XCTAssertEqual(early.json["shape"] as? [Int], [56, 56, 64])

            let unknown = try await client.post("/v1/features?endpoint=Mixed_9z", Fixture.png())
            XCTAssertEqual(unknown.status, .badRequest)
            XCTAssertTrue((unknown.json["error"] as? String ?? "").contains("Mixed_5c"), unknown.text)
            let missing = try await client.post("/v1/features", Fixture.png())
            XCTAssertEqual(missing.status, .badRequest)
            let badPool = try await client.post("/v1/features?endpoint=Mixed_5c&pool=maybe", Fixture.png())
            XCTAssertEqual(badPool.status, .badRequest)
        }
    }

    func testFeaturesNPYMatchesJSON() async throws {
        try await withRouterServer { client in
            let json = try await client.post("/v1/features?endpoint=Mixed_4b", Fixture.png(seed: 5))
            let expected = try XCTUnwrap(json.json["values"] as? [NSNumber]).map(\.floatValue)

            let npy = try await client.post("/v1/features?endpoint=Mixed_4b", Fixture.png(seed: 5),
                                            headers: [.accept: "application/x-npy"])
            XCTAssertEqual(npy.status, .ok)
            XCTAssertEqual(npy.headers[.contentType], "application/x-npy")
            let bytes = Data(buffer: npy.body)
            XCTAssertEqual(Array(bytes.prefix(6)), [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("features-\(UUID().uuidString).npy").path
            try bytes.write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let tensor = try NPY.read(path)
            XCTAssertEqual(tensor.shape, [512])
            XCTAssertEqual(tensor.scalars, expected)

            let viaQuery = try await client.post("/v1/features?endpoint=Mixed_4b&pool=false&format=npy", Fixture.png(seed: 5))
            try Data(buffer: viaQuery.body).write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(try NPY.read(path).shape, [14, 14, 512])
        }
    }

    func testTrainedModelBringsItsLabelsAndInputSize() async throws {
        // What `inception train` writes: 10 classes, 96x96 input, global pooling, names in the metadata.
        let names = (0..<10).map { "class-\($0)" }
        let model = try InceptionModel(options: ModelOptions(numClasses: 10, globalPool: true), seed: 3)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("trained-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensors.write(model.variables, metadata: ModelMetadata(classNames: names, imageHeight: 96, imageWidth: 96,
                                                                       globalPool: true).dictionary, to: path)
        try await withRouterServer({ $0.weightsPath = path }) { client in
            let response = try await client.post("/v1/classify?top=20", Fixture.png())
            XCTAssertEqual(response.status, .ok, response.text)
            let predictions = try XCTUnwrap(response.json["predictions"] as? [[String: Any]])
            XCTAssertEqual(predictions.count, 10, "top is capped at the number of classes")
            XCTAssertEqual(Set(predictions.compactMap { $0["label"] as? String }), Set(names))

            let pooled = try await client.post("/v1/features?endpoint=AvgPool_0a_7x7", Fixture.png())
            XCTAssertEqual(pooled.status, .ok, pooled.text)
            XCTAssertEqual(pooled.json["shape"] as? [Int], [1024])
            let maps = try await client.post("/v1/features?endpoint=Mixed_5c&pool=false", Fixture.png())
            XCTAssertEqual(maps.json["shape"] as? [Int], [3, 3, 1024], "96x96 input")
        }
    }

    func testSamplesRoute() async throws {
        try await withRouterServer { client in
            let cat = try await client.execute(uri: "/samples/cat.jpg", method: .get)
            XCTAssertEqual(cat.status, .ok)
            XCTAssertEqual(cat.headers[.contentType], "image/jpeg")
            XCTAssertEqual(Data(buffer: cat.body), Fixture.sample("cat.jpg"))
            for name in ["make_samples.py", "..%2FPackage.swift", "nothing.png"] {
                let response = try await client.execute(uri: "/samples/\(name)", method: .get)
                XCTAssertEqual(response.status, .notFound, name)
            }
        }
        // Without a samples directory there is no such route.
        try await withRouterServer({ $0.samplesDirectory = nil }) { client in
            let response = try await client.execute(uri: "/samples/cat.jpg", method: .get)
            XCTAssertEqual(response.status, .notFound)
        }
    }

    func testMetrics() async throws {
        try await withRouterServer { client in
            _ = try await client.post("/v1/classify", Fixture.png())
            _ = try await client.post("/v1/classify", Fixture.png(seed: 1))
            _ = try await client.post("/v1/classify", Data("nope".utf8), contentType: "application/octet-stream")
            _ = try await client.post("/v1/features?endpoint=Mixed_3b", Fixture.png())
            _ = try await client.execute(uri: "/healthz", method: .get)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(metrics.status, .ok)
            XCTAssertTrue(metrics.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") ?? false)
            let text = metrics.text
            XCTAssertEqual(metricValue(text, #"inception_http_requests_total{route="/v1/classify",status="200"}"#), 2)
            XCTAssertEqual(metricValue(text, #"inception_http_requests_total{route="/v1/classify",status="415"}"#), 1)
            XCTAssertEqual(metricValue(text, #"inception_http_requests_total{route="/v1/features",status="200"}"#), 1)
            XCTAssertEqual(metricValue(text, #"inception_http_requests_total{route="/healthz",status="200"}"#), 1)
            XCTAssertEqual(metricValue(text, #"inception_http_errors_total{reason="unsupported_media_type"}"#), 1)
            XCTAssertEqual(metricValue(text, "inception_images_classified_total"), 2)
            XCTAssertEqual(metricValue(text, "inception_feature_images_total"), 1)
            XCTAssertEqual(metricValue(text, "inception_batch_size_count"), 3)
            XCTAssertEqual(metricValue(text, #"inception_batch_size_bucket{le="+Inf"}"#), 3)
            XCTAssertEqual(metricValue(text, "inception_inference_seconds_count"), 3)
            XCTAssertEqual(metricValue(text, "inception_queue_wait_seconds_count"), 3)
            XCTAssertEqual(metricValue(text, #"inception_request_duration_seconds_count{route="/v1/classify"}"#), 3)
            XCTAssertEqual(metricValue(text, "inception_queue_depth"), 0)
            XCTAssertEqual(metricValue(text, "inception_requests_in_flight"), 0)
            XCTAssertGreaterThan(metricValue(text, "process_resident_memory_bytes") ?? 0, 0)
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                XCTAssertEqual(line.split(separator: " ").count, 2, "malformed sample line: \(line)")
            }
            // Histogram buckets are cumulative.
            let buckets = text.split(separator: "\n").filter { $0.hasPrefix("inception_inference_seconds_bucket") }
                .compactMap { Double($0.split(separator: " ").last!) }
            XCTAssertEqual(buckets, buckets.sorted())
        }
    }
}
