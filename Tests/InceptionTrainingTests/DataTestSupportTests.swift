import Foundation
import Inception
import XCTest
@testable import InceptionTraining

// Helpers shared by the data, augmentation, loader, checkpoint, metrics and plot tests: tiny
// image folders written with PNGEncoder into per-test temporary directories.

/// A fresh temporary directory, removed when the test ends.
func makeTemporaryDirectory(_ test: XCTestCase, _ name: String = "data") -> String {
    let path = NSTemporaryDirectory() + "inception-\(name)-\(getpid())-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// A `width` × `height` image whose pixels encode their position and `seed` (so every image of a
/// fixture differs and a flip or crop is visible).
func patternImage(width: Int, height: Int, seed: Int = 0) -> RGBImage {
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        for x in 0..<width {
            let i = (y * width + x) * 3
            pixels[i] = UInt8((x * 255) / max(1, width - 1))
            pixels[i + 1] = UInt8((y * 255) / max(1, height - 1))
            pixels[i + 2] = UInt8(truncatingIfNeeded: seed * 37 + (x ^ y) * 5)
        }
    }
    return RGBImage(width: width, height: height, pixels: pixels)
}

/// Writes a PNG (creating folders).
func writePNG(_ image: RGBImage, to path: String) {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    try! FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try! PNGEncoder.write(image, to: path)
}

/// `root/<class>/img<k>.png` for each class with its count of small images; returns the root.
@discardableResult
func makeImageFolder(_ root: String, _ classes: [(String, Int)], size: (Int, Int) = (12, 10)) -> String {
    var seed = 0
    for (name, count) in classes {
        try! FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
        for k in 0..<count {
            seed += 1
            writePNG(patternImage(width: size.0, height: size.1, seed: seed), to: "\(root)/\(name)/img\(k).png")
        }
    }
    return root
}

/// Writes a file that claims to be an image but is not decodable.
func writeCorruptImage(to path: String, truncatedPNG: Bool = true) {
    if truncatedPNG {
        let data = try! PNGEncoder.encode(pixels: patternImage(width: 16, height: 16).pixels, width: 16, height: 16, channels: 3)
        try! data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
    } else {
        try! Data("this is not a JPEG".utf8).write(to: URL(fileURLWithPath: path))
    }
}

/// Threads of this process whose name starts with `prefix` (Linux: /proc/self/task/*/comm).
func threadCount(named prefix: String) -> Int? {
    #if os(Linux)
    guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
    var n = 0
    for task in tasks {
        if let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
           comm.hasPrefix(prefix) { n += 1 }
    }
    return n
    #else
    return nil
    #endif
}

/// Polls `condition` until it holds or `timeout` seconds pass.
func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// The error thrown by `body`, or nil.
func thrownError(_ body: () throws -> Void) -> Error? {
    do { try body() } catch { return error }
    return nil
}

final class DataTestSupportTests: XCTestCase {
    func testPatternImagesRoundTripThroughPNG() throws {
        let dir = makeTemporaryDirectory(self)
        let image = patternImage(width: 7, height: 5, seed: 3)
        writePNG(image, to: dir + "/a.png")
        XCTAssertEqual(try ImageDecoder.decode(contentsOf: dir + "/a.png"), image)
    }
}
