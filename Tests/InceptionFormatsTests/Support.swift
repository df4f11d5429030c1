import Foundation
import XCTest
import InceptionCore
@testable import InceptionFormats

/// The fixture directory copied into the test bundle.
let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

func fixture(_ relative: String) -> String { fixtures.appendingPathComponent(relative).path }

/// expected.json, written by scripts/make_format_fixtures.py.
nonisolated(unsafe) let expected: [String: Any] = {
    let data = try! Data(contentsOf: fixtures.appendingPathComponent("expected.json"))
    return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
}()

/// One expected tensor from expected.json: dtype, shape and float32 values.
struct ExpectedTensor {
    let dtype: String
    let shape: [Int]
    let values: [Float]
    let v2Only: Bool
    let partitions: Int

    init(_ any: Any) {
        let d = any as! [String: Any]
        dtype = d["dtype"] as! String
        shape = (d["shape"] as! [Any]).map { ($0 as! NSNumber).intValue }
        values = (d["f32_bits"] as! [Any]).map { Float(bitPattern: ($0 as! NSNumber).uint32Value) }
        v2Only = (d["v2_only"] as? Bool) ?? false
        partitions = (d["partitions"] as? NSNumber)?.intValue ?? 1
    }

    var tensor: Tensor { Tensor(shape: shape, scalars: values) }
}

func expectedTensors(_ section: String) -> [String: ExpectedTensor] {
    (expected[section] as! [String: Any]).mapValues(ExpectedTensor.init)
}

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("inception-formats-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Copies fixture files (relative paths) into a temporary directory; returns the directory.
func copyFixtures(_ names: [String], _ test: XCTestCase) throws -> URL {
    let directory = try temporaryDirectory(test)
    for name in names {
        let destination = directory.appendingPathComponent((name as NSString).lastPathComponent)
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: destination)
    }
    return directory
}

func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

func writeBytes(_ bytes: [UInt8], _ path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Rewrites a file through `change`.
func mutate(_ path: String, _ change: (inout [UInt8]) -> Void) throws {
    var bytes = try readBytes(path)
    change(&bytes)
    try writeBytes(bytes, path)
}

/// Asserts that `body` throws a `FormatError` whose description names `path` (its last
/// component is enough) and contains every one of `fragments`.
func assertFormatError<T>(_ body: @autoclosure () throws -> T, path: String, _ fragments: String...,
                          file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a FormatError mentioning \(fragments)", file: file, line: line)
    } catch let error as FormatError {
        let text = error.description
        XCTAssertTrue(text.contains((path as NSString).lastPathComponent),
                      "error does not name \((path as NSString).lastPathComponent): \(text)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(text.contains(fragment), "error lacks \"\(fragment)\": \(text)", file: file, line: line)
        }
    } catch {
        XCTFail("expected a FormatError, got \(error)", file: file, line: line)
    }
}

// MARK: - Writing test inputs

/// Protocol-buffer encoding, for building synthetic messages in tests.
struct ProtoWriter {
    var bytes: [UInt8] = []

    static func varint(_ v: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        var x = v
        while x >= 0x80 { out.append(UInt8(x & 0x7f) | 0x80); x >>= 7 }
        out.append(UInt8(x))
        return out
    }

    mutating func varint(_ field: Int, _ v: UInt64) { bytes += Self.varint(UInt64(field << 3)) + Self.varint(v) }
    mutating func fixed32(_ field: Int, _ v: UInt32) {
        bytes += Self.varint(UInt64(field << 3 | 5)) + withUnsafeBytes(of: v.littleEndian) { [UInt8]($0) }
    }
    mutating func fixed64(_ field: Int, _ v: UInt64) {
        bytes += Self.varint(UInt64(field << 3 | 1)) + withUnsafeBytes(of: v.littleEndian) { [UInt8]($0) }
    }
    mutating func bytesField(_ field: Int, _ payload: [UInt8]) {
        bytes += Self.varint(UInt64(field << 3 | 2)) + Self.varint(UInt64(payload.count)) + payload
    }
    mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        build(&inner)
        bytesField(field, inner.bytes)
    }
}

func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { [UInt8]($0) } }
}

/// Builds LevelDB-format tables the way LevelDB's TableBuilder lays them out, with a
/// configurable block size and restart interval, optionally "compressing" blocks with Snappy
/// literals (a valid Snappy stream), so multi-block and compressed paths can be tested.
struct TestTableBuilder {
    var blockSize = 4096
    var restartInterval = 16
    var snappy = false

    func build(_ entries: [(key: [UInt8], value: [UInt8])]) -> [UInt8] {
        var file: [UInt8] = []
        var index: [(key: [UInt8], value: [UInt8])] = []
        var block = BlockWriter(restartInterval: restartInterval)
        for (i, entry) in entries.enumerated() {
            block.add(entry.key, entry.value)
            if block.size >= blockSize || i == entries.count - 1 {
                let handle = writeBlock(block.finish(), compress: snappy, to: &file)
                index.append((entry.key, handle))
                block = BlockWriter(restartInterval: restartInterval)
            }
        }
        let metaHandle = writeBlock(BlockWriter(restartInterval: 1).finish(), compress: false, to: &file)
        var indexBlock = BlockWriter(restartInterval: 1)
        for e in index { indexBlock.add(e.key, e.value) }
        let indexHandle = writeBlock(indexBlock.finish(), compress: false, to: &file)
        var footer = metaHandle + indexHandle
        footer += [UInt8](repeating: 0, count: 40 - footer.count)
        footer += withUnsafeBytes(of: UInt64(0xdb47_7524_8b80_fb57).littleEndian) { [UInt8]($0) }
        return file + footer
    }

    /// Appends contents + trailer; returns the encoded BlockHandle.
    private func writeBlock(_ contents: [UInt8], compress: Bool, to file: inout [UInt8]) -> [UInt8] {
        let stored = compress ? snappyLiterals(contents) : contents
        let type: UInt8 = compress ? 1 : 0
        let handle = ProtoWriter.varint(UInt64(file.count)) + ProtoWriter.varint(UInt64(stored.count))
        file += stored
        file.append(type)
        let crc = CRC32C.mask(CRC32C.checksum(stored + [type]))
        file += withUnsafeBytes(of: crc.littleEndian) { [UInt8]($0) }
        return handle
    }

    struct BlockWriter {
        let restartInterval: Int
        var buffer: [UInt8] = []
        var restarts: [UInt32] = [0]
        var counter = 0
        var lastKey: [UInt8] = []
        var size: Int { buffer.count + 4 * restarts.count + 4 }

        init(restartInterval: Int) { self.restartInterval = restartInterval }

        mutating func add(_ key: [UInt8], _ value: [UInt8]) {
            var shared = 0
            if counter < restartInterval {
                while shared < min(key.count, lastKey.count) && key[shared] == lastKey[shared] { shared += 1 }
            } else {
                restarts.append(UInt32(buffer.count))
                counter = 0
            }
            buffer += ProtoWriter.varint(UInt64(shared)) + ProtoWriter.varint(UInt64(key.count - shared))
                + ProtoWriter.varint(UInt64(value.count))
            buffer += key[shared...] + value
            lastKey = key
            counter += 1
        }

        func finish() -> [UInt8] {
            var out = buffer
            for r in restarts { out += withUnsafeBytes(of: r.littleEndian) { [UInt8]($0) } }
            out += withUnsafeBytes(of: UInt32(restarts.count).littleEndian) { [UInt8]($0) }
            return out
        }
    }
}

/// A valid Snappy stream made only of literals (of up to 100 bytes each, exercising both the
/// short and the one-extra-byte literal lengths).
func snappyLiterals(_ data: [UInt8]) -> [UInt8] {
    var out = ProtoWriter.varint(UInt64(data.count))
    var i = 0
    while i < data.count {
        let n = min(100, data.count - i)
        if n <= 60 {
            out.append(UInt8(n - 1) << 2)
        } else {
            out += [60 << 2, UInt8(n - 1)]
        }
        out += data[i..<(i + n)]
        i += n
    }
    return out
}
