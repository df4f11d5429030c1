import Foundation
import Inception
@testable import InceptionServer
import XCTest

/// The page in a real headless Chromium (skipped when no chromium is on PATH; CI installs
/// Debian's `chromium`).
final class BrowserTests: XCTestCase {
    static func chromium() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            for directory in path.split(separator: ":") {
                let candidate = "\(directory)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }

    /// Runs Chromium headless with `arguments` + `url`; returns its standard output.
    static func runChromium(_ executable: String, _ arguments: [String], url: String, timeoutSeconds: Double = 90) async throws -> String {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-profile-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
                             "--disable-dev-shm-usage", "--disable-extensions", "--disable-background-networking",
                             "--user-data-dir=\(profile.path)"] + arguments + [url]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    try process.run()
                    let timer = DispatchWorkItem { if process.isRunning { process.terminate() } }
                    DispatchQueue.global().asyncAfter(deadline: .now() + timeoutSeconds, execute: timer)
                    let data = output.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    timer.cancel()
                    continuation.resume(returning: String(decoding: data, as: UTF8.self))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    func testPageElementsInChromium() async throws {
        guard let chromium = Self.chromium() else { throw XCTSkip("chromium is not on PATH (apt-get install chromium)") }
        try await withLiveServer { port, _ in
            let dom = try await Self.runChromium(chromium, ["--dump-dom", "--virtual-time-budget=3000"], url: "http://127.0.0.1:\(port)/")
            for element in ["id=\"drop\"", "id=\"file\"", "id=\"choose\"", "id=\"predictions\"", "Drop a photo here", "data-state=\"idle\""] {
                XCTAssertTrue(dom.contains(element), "the page in Chromium lacks \(element):\n\(dom.prefix(3000))")
            }
        }
    }

    func testDemoClassifiesASampleAndShowsBars() async throws {
        guard let chromium = Self.chromium() else { throw XCTSkip("chromium is not on PATH (apt-get install chromium)") }
        let classifier = try Classifier(weights: Fixture.weightsPath)
        let expected = try classifier.classify([ImageDecoder.decode(data: Fixture.sample("cat.jpg"), name: "cat.jpg")], top: 5)[0]
        try await withLiveServer { port, _ in
            let url = "http://127.0.0.1:\(port)/?demo=/samples/cat.jpg"
            let dom = try await Self.runChromium(chromium, ["--dump-dom", "--virtual-time-budget=15000"], url: url)
            XCTAssertTrue(dom.contains("data-state=\"done\""), "the demo did not finish:\n\(dom.suffix(4000))")
            XCTAssertEqual(dom.components(separatedBy: "class=\"prediction\"").count - 1, 5, dom)
            XCTAssertEqual(dom.components(separatedBy: "class=\"bar\"").count - 1, 5, dom)
            for prediction in expected {
                let escaped = prediction.label.replacingOccurrences(of: "&", with: "&amp;")
                XCTAssertTrue(dom.contains("data-label=\"\(escaped)\""), "no bar for \(prediction.label)")
            }
            XCTAssertTrue(dom.contains("%</span>"), "no percentages")

            // A screenshot of the same page: a real picture, not a blank one.
            let shot = FileManager.default.temporaryDirectory.appendingPathComponent("inception-page-\(UUID().uuidString).png").path
            _ = try await Self.runChromium(chromium, ["--screenshot=\(shot)", "--window-size=1000,720", "--hide-scrollbars",
                                                       "--virtual-time-budget=15000"], url: url)
            let image = try ImageDecoder.decode(contentsOf: shot)
            XCTAssertEqual(image.width, 1000)
            XCTAssertEqual(image.height, 720)
            var colours = Set<Int>()
            for i in stride(from: 0, to: image.pixels.count, by: 3 * 97) {
                colours.insert(Int(image.pixels[i]) << 16 | Int(image.pixels[i + 1]) << 8 | Int(image.pixels[i + 2]))
            }
            XCTAssertGreaterThan(colours.count, 50, "the screenshot is nearly uniform")
            if let keep = ProcessInfo.processInfo.environment["INCEPTION_SCREENSHOT"] {
                try? FileManager.default.removeItem(atPath: keep)
                try FileManager.default.copyItem(atPath: shot, toPath: keep)
            }
            try? FileManager.default.removeItem(atPath: shot)
        }
    }

    func testPageShowsServerErrors() async throws {
        guard let chromium = Self.chromium() else { throw XCTSkip("chromium is not on PATH (apt-get install chromium)") }
        try await withLiveServer { port, _ in
            // make_samples.py is not served: the page reports the failure instead of hanging.
            let dom = try await Self.runChromium(chromium, ["--dump-dom", "--virtual-time-budget=5000"],
                                                 url: "http://127.0.0.1:\(port)/?demo=/samples/missing.jpg")
            XCTAssertTrue(dom.contains("data-state=\"error\""), dom)
            XCTAssertTrue(dom.contains("HTTP 404"), dom)
        }
    }
}
