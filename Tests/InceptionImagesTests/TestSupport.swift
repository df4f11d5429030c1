import Foundation
import XCTest
import InceptionImages

/// Paths of test fixtures (bundled with the test target) and of the repository's Samples/ folder.
enum Paths {
    static let fixtures: URL = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("Fixtures folder missing from the test bundle")
        }
        return url
    }()

    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    static let samples = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Samples")

    static func sample(_ name: String) -> String { samples.appendingPathComponent(name).path }

    static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// A file in a fresh temporary directory holding `bytes`.
    static func temporaryFile(named name: String, bytes: [UInt8]) throws -> String {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("InceptionImagesTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }
}

/// A minimal .npy reader: version 1–3 headers, C order, dtypes '<f4' and '|u1'.
struct NPYArray {
    var shape: [Int]
    var floats: [Float] = []
    var bytes: [UInt8] = []

    init(path: String) throws {
        let data = try Paths.bytes(path)
        guard data.count > 10, data[0] == 0x93, Array(data[1...5]) == Array("NUMPY".utf8) else {
            throw NPYError("\(path): not a .npy file")
        }
        let major = data[6]
        let headerLength = major == 1 ? Int(data[8]) | Int(data[9]) << 8
            : Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
        let headerStart = major == 1 ? 10 : 12
        let header = String(decoding: data[headerStart..<headerStart + headerLength], as: UTF8.self)
        guard !header.contains("'fortran_order': True") else { throw NPYError("\(path): Fortran order") }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw NPYError("\(path): no shape in \(header)")
        }
        shape = header[open.upperBound..<close].split(separator: ",").compactMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        let count = shape.reduce(1, *)
        let body = Array(data[(headerStart + headerLength)...])
        if header.contains("'descr': '<f4'") {
            guard body.count == count * 4 else { throw NPYError("\(path): size mismatch") }
            floats = body.withUnsafeBytes { raw in
                (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            }
        } else if header.contains("'descr': '|u1'") {
            guard body.count == count else { throw NPYError("\(path): size mismatch") }
            bytes = body
        } else {
            throw NPYError("\(path): unsupported dtype in \(header)")
        }
    }
}

struct NPYError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// CRC-32 (IEEE, as zlib.crc32): fixture digests and PNG chunk checksums.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

/// Digests of TensorFlow's decodes of the samples, written by scripts/make_preprocess_fixtures.py.
struct DecodeDigests: Decodable {
    struct JPEG: Decodable { let width: Int; let height: Int; let fast: UInt32; let accurate: UInt32 }
    struct PNG: Decodable {
        let width: Int; let height: Int
        let alpha_ignored: UInt32
        let composited_on_white: UInt32
    }
    let tensorflow: String
    let jpeg: [String: JPEG]
    let png: [String: PNG]

    static func load() throws -> DecodeDigests {
        try JSONDecoder().decode(DecodeDigests.self, from: Data(contentsOf: URL(fileURLWithPath: Paths.fixture("decode.json"))))
    }
}

/// The largest absolute difference between two equally long byte arrays.
func maxByteDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs(Int($1.0) - Int($1.1))) }
}

/// Asserts that `body` throws an ImageError and returns it.
func assertImageError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> ImageError? {
    do {
        try body()
        XCTFail("expected an ImageError", file: file, line: line)
    } catch let error as ImageError {
        return error
    } catch {
        XCTFail("expected an ImageError, got \(error)", file: file, line: line)
    }
    return nil
}
