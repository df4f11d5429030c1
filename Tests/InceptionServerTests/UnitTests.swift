import Foundation
import Inception
@testable import InceptionServer
import XCTest

final class MultipartTests: XCTestCase {
    func parse(_ text: String, boundary: String) throws -> [(Multipart.Part, String)] {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { raw in
            try Multipart.parse(raw, boundary: boundary).map { ($0, String(decoding: bytes[$0.range], as: UTF8.self)) }
        }
    }

    func testParsesFieldsAndFiles() throws {
        let body = "preamble\r\n--XyZ\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\none\r\n"
            + "--XyZ  \r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b \\\"c\\\".png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--X\r\n--XyZ--\r\nepilogue"
        let parts = try parse(body, boundary: "XyZ")
        XCTAssertEqual(parts.count, 2)
        XCTAssertEqual(parts[0].0.name, "a")
        XCTAssertEqual(parts[0].1, "one")
        XCTAssertEqual(parts[1].0.name, "file")
        XCTAssertEqual(parts[1].0.filename, "a;b \"c\".png")
        XCTAssertEqual(parts[1].0.contentType, "image/png")
        XCTAssertEqual(parts[1].1, "PNG\r\n--X")
        XCTAssertEqual(Multipart.filePart(parts.map(\.0))?.name, "file")
    }

    func testPartWithoutHeadersAndEmptyBody() throws {
        let parts = try parse("--b\r\n\r\nraw\r\n--b\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--b--", boundary: "b")
        XCTAssertEqual(parts.map(\.1), ["raw", ""])
        XCTAssertNil(Multipart.filePart(parts.map(\.0)))
    }

    func testMalformedBodies() {
        for (body, boundary) in [("no boundary here", "b"), ("--b\r\nX: y\r\n\r\nunterminated", "b"),
                                 ("--bjunk", "b"), ("--b\r\nbad header line\r\n\r\nx\r\n--b--", "b"), ("--b\r\nX: y", "b")] {
            XCTAssertThrowsError(try parse(body, boundary: boundary), body)
        }
    }

    func testContentTypeParameters() {
        XCTAssertEqual(Multipart.boundary(contentType: "multipart/form-data; boundary=abc"), "abc")
        XCTAssertEqual(Multipart.boundary(contentType: "Multipart/Form-Data;BOUNDARY=\"a b;c\""), "a b;c")
        XCTAssertNil(Multipart.boundary(contentType: "multipart/form-data"))
        XCTAssertEqual(Multipart.parameters("Image/JPEG ; q=1")[""], "image/jpeg")
    }
}

final class NPYBytesTests: XCTestCase {
    func testMatchesTheFileWriter() throws {
        for shape in [[3], [2, 3], [1, 7, 7, 4], []] {
            let count = shape.reduce(1, *)
            let tensor = Tensor(shape: shape, scalars: (0..<count).map { Float($0) * 0.5 - 1 })
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("npy-\(UUID().uuidString).npy").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            try NPY.write(tensor, to: path)
            let file = try Data(contentsOf: URL(fileURLWithPath: path))
            XCTAssertEqual(Data(NPYBytes.encode(tensor)), file, "shape \(shape)")
            XCTAssertEqual(NPYBytes.encode(tensor).count % 4, 0)
        }
    }
}

final class MetricsTests: XCTestCase {
    func testExposition() {
        let metrics = Metrics(model: "m\"x", maxBatch: 8)
        metrics.recordRequest(route: "/v1/classify", status: 200, seconds: 0.02)
        metrics.recordRequest(route: "/v1/classify", status: 200, seconds: 3)
        metrics.recordBatch(size: 3, seconds: 0.2)
        metrics.recordBatch(size: 8, seconds: 0.4)
        metrics.recordError(reason: "too_large")
        let text = metrics.render()
        XCTAssertEqual(metricValue(text, #"inception_http_requests_total{route="/v1/classify",status="200"}"#), 2)
        XCTAssertEqual(metricValue(text, #"inception_request_duration_seconds_bucket{route="/v1/classify",le="0.025"}"#), 1)
        XCTAssertEqual(metricValue(text, #"inception_request_duration_seconds_bucket{route="/v1/classify",le="+Inf"}"#), 2)
        XCTAssertEqual(metricValue(text, #"inception_batch_size_bucket{le="2"}"#), 0)
        XCTAssertEqual(metricValue(text, #"inception_batch_size_bucket{le="3"}"#), 1)
        XCTAssertEqual(metricValue(text, #"inception_batch_size_bucket{le="8"}"#), 2)
        XCTAssertEqual(metricValue(text, "inception_batch_size_sum"), 11)
        XCTAssertEqual(metricValue(text, #"inception_http_errors_total{reason="too_large"}"#), 1)
        XCTAssertTrue(text.contains(#"inception_model_info{model="m\"x"} 1"#))
        XCTAssertTrue(text.contains("# TYPE inception_batch_size histogram"))
        XCTAssertEqual(metrics.largestBatch, 8)
    }
}

final class ServedArchitectureTests: XCTestCase {
    /// `inception serve --model M` refuses weights of another network, naming the file.
    func testServingWeightsOfAnotherArchitectureIsAnError() throws {
        var options = ServerOptions(weightsPath: Fixture.weightsPath)
        options.architecture = .googlenet
        XCTAssertThrowsError(try ServerState(options: options)) { error in
            XCTAssertTrue("\(error)".contains(Fixture.weightsPath) && "\(error)".contains("inception_v1"), "\(error)")
        }
        options.architecture = .inceptionV1
        XCTAssertEqual(try ServerState(options: options).modelName, "inception_v1")
    }
}
