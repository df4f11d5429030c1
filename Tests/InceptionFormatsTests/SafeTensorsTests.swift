import XCTest
import InceptionCore
@testable import InceptionFormats

final class SafeTensorsTests: XCTestCase {
    private func sampleTensors() -> [String: Tensor] {
        var state: UInt32 = 12345
        func next() -> Float {
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(Int32(bitPattern: state)) / Float(Int32.max) * 3
        }
        return [
            "InceptionV1/Conv2d_1a_7x7/weights": Tensor(shape: [7, 7, 3, 2], scalars: (0..<294).map { _ in next() }),
            "InceptionV1/Conv2d_1a_7x7/BatchNorm/beta": Tensor(shape: [2], scalars: [0.5, -0.25]),
            "scalar": Tensor(shape: [], scalars: [42]),
            "empty": Tensor(shape: [0, 4], scalars: []),
        ]
    }

    /// A safetensors file with the given JSON header text and data bytes.
    private func writeRaw(_ header: String, _ data: [UInt8], headerLength: UInt64? = nil) throws -> String {
        let path = try temporaryDirectory(self).appendingPathComponent("raw.safetensors").path
        let h = Array(header.utf8)
        let length = headerLength ?? UInt64(h.count)
        try writeBytes(withUnsafeBytes(of: length.littleEndian) { [UInt8]($0) } + h + data, path)
        return path
    }

    func testFloat32RoundTripIsExact() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("w.safetensors").path
        let tensors = sampleTensors()
        try SafeTensors.write(tensors, metadata: ["format": "pt", "note": "quote \" and\nnewline"], to: path)
        XCTAssertEqual(try SafeTensors.read(path), tensors)
        let reader = try SafeTensorsReader(path: path)
        XCTAssertEqual(reader.metadata, ["format": "pt", "note": "quote \" and\nnewline"])
        XCTAssertEqual(reader.variables.map(\.name), tensors.keys.sorted())
        XCTAssertEqual(reader.info(named: "scalar")?.dtype, "float32")
    }

    func testFloat16RoundTripIsWithinHalfPrecisionRounding() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("h.safetensors").path
        let tensors = sampleTensors()
        try SafeTensors.write(tensors, to: path, dtype: .float16)
        let back = try SafeTensors.read(path)
        for (name, t) in tensors {
            let b = back[name]!
            XCTAssertEqual(b.shape, t.shape)
            for (x, y) in zip(t.scalars, b.scalars) {
                // Half has an 11-bit significand: relative error ≤ 2^-11 for normal values.
                XCTAssertLessThanOrEqual(abs(x - y), max(abs(x) * 0x1p-11, 0x1p-25), name)
            }
        }
        XCTAssertEqual(try SafeTensorsReader(path: path).info(named: "scalar")?.dtype, "float16")
    }

    func testFloat16WriteRefusesValuesBeyondItsRange() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("big.safetensors").path
        assertFormatError(try SafeTensors.write(["x": Tensor(shape: [1], scalars: [70000])], to: path, dtype: .float16),
                          path: path, "\"x\"", "float16 range")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testWriteReplacesAnExistingFileAndLeavesNoTemporaryFiles() throws {
        let dir = try temporaryDirectory(self)
        let path = dir.appendingPathComponent("w.safetensors").path
        try SafeTensors.write(["a": Tensor(shape: [1], scalars: [1])], to: path)
        try SafeTensors.write(["b": Tensor(shape: [1], scalars: [2])], to: path)
        XCTAssertEqual(try SafeTensors.read(path), ["b": Tensor(shape: [1], scalars: [2])])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["w.safetensors"])
    }

    func testDataStartsEightByteAligned() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("w.safetensors").path
        try SafeTensors.write(sampleTensors(), to: path)
        let bytes = try readBytes(path)
        let n = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual((8 + n) % 8, 0)
    }

    func testFileWrittenByPythonSafetensorsIsRead() throws {
        let path = fixture("python.safetensors")
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("fixture made without the safetensors package") }
        let reader = try SafeTensorsReader(path: path)
        XCTAssertEqual(reader.metadata, ["format": "np", "source": "fixture"])
        let want = expectedTensors("safetensors")
        XCTAssertEqual(Set(reader.variables.map(\.name)), Set(want.keys))
        for (name, e) in want {
            XCTAssertEqual(reader.info(named: name)?.dtype, e.dtype, name)
            XCTAssertEqual(try reader.tensor(named: name), e.tensor, name)
        }
    }

    func testOffsetsPastTheEndAreAnError() throws {
        let path = try writeRaw(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, [0, 0, 0, 0])
        assertFormatError(try SafeTensorsReader(path: path), path: path, "\"a\"", "run past the end of the data")
    }

    func testHeaderLengthPastTheEndOfTheFileIsAnError() throws {
        let path = try writeRaw(#"{}"#, [], headerLength: 1 << 40)
        assertFormatError(try SafeTensorsReader(path: path), path: path, "header length 1099511627776 runs past the end")
    }

    func testOverlappingTensorsAreAnError() throws {
        let path = try writeRaw(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                                [UInt8](repeating: 0, count: 8))
        assertFormatError(try SafeTensorsReader(path: path), path: path, "overlaps")
    }

    func testGapBetweenTensorsIsAnError() throws {
        let path = try writeRaw(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                                [UInt8](repeating: 0, count: 12))
        assertFormatError(try SafeTensorsReader(path: path), path: path, "not contiguous", "\"b\"")
    }

    func testUnusedTrailingDataIsAnError() throws {
        let path = try writeRaw(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, [UInt8](repeating: 0, count: 6))
        assertFormatError(try SafeTensorsReader(path: path), path: path, "2 bytes at the end")
    }

    func testSizeThatDisagreesWithShapeIsAnError() throws {
        let path = try writeRaw(#"{"a":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8))
        assertFormatError(try SafeTensorsReader(path: path), path: path, "needs 6 bytes", "span 8")
    }

    func testDuplicateNamesAreAnError() throws {
        let path = try writeRaw(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                                [UInt8](repeating: 0, count: 4))
        assertFormatError(try SafeTensorsReader(path: path), path: path, "duplicate key \"a\"")
    }

    func testMalformedJSONIsAnError() throws {
        let path = try writeRaw(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#, [UInt8](repeating: 0, count: 4))
        assertFormatError(try SafeTensorsReader(path: path), path: path, "JSON header")
    }

    func testUnconvertibleDtypeIsListedButRefused() throws {
        let path = try writeRaw(#"{"q":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}    "#, [1, 2])
        let reader = try SafeTensorsReader(path: path)
        XCTAssertEqual(reader.info(named: "q")?.dtype, "F8_E4M3")
        assertFormatError(try reader.tensor(named: "q"), path: path, "\"q\"", "F8_E4M3")
    }

    func testZeroByteAndTinyFilesAreErrors() throws {
        let dir = try temporaryDirectory(self)
        let empty = dir.appendingPathComponent("empty.safetensors").path
        try writeBytes([], empty)
        assertFormatError(try SafeTensorsReader(path: empty), path: empty, "empty")
        let tiny = dir.appendingPathComponent("tiny.safetensors").path
        try writeBytes([1, 2, 3], tiny)
        assertFormatError(try SafeTensorsReader(path: tiny), path: tiny, "too short")
    }

    func testWeightFileOpensSafetensorsByName() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("w.safetensors").path
        try SafeTensors.write(sampleTensors(), to: path)
        XCTAssertTrue(try WeightFile.open(path) is SafeTensorsReader)
        XCTAssertEqual(try WeightFile.readAll(path), sampleTensors())
    }
}
