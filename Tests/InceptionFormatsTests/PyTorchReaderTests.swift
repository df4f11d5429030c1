import Foundation
import XCTest
import InceptionCore
@testable import InceptionFormats

// Fixtures written by scripts/make_pytorch_fixtures.py (real torch.save for state_dict.pth and
// wrapped.pth; emulated torch archives for zip64.pth and bigendian.pth).

/// Fixtures/pytorch/expected.json.
nonisolated(unsafe) let pytorchExpected: [String: Any] = {
    let data = try! Data(contentsOf: fixtures.appendingPathComponent("pytorch/expected.json"))
    return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
}()

func pytorchFixture(_ name: String) -> String { fixture("pytorch/" + name) }

struct ExpectedTorchTensor {
    let dtype: String
    let shape: [Int]
    let values: [Float]?
    let contiguous: Bool?

    init(_ any: Any) {
        let d = any as! [String: Any]
        dtype = d["dtype"] as! String
        shape = (d["shape"] as! [Any]).map { ($0 as! NSNumber).intValue }
        values = (d["f32_bits"] as? [Any])?.map { Float(bitPattern: ($0 as! NSNumber).uint32Value) }
        contiguous = (d["contiguous"] as? NSNumber)?.boolValue
    }
}

func expectedTorchTensors(_ file: String) -> [String: ExpectedTorchTensor] {
    let section = pytorchExpected[file] as! [String: Any]
    return (section["tensors"] as! [String: Any]).mapValues(ExpectedTorchTensor.init)
}

/// Bitwise equality (so NaNs and signed zeros count), with a readable failure.
func assertSameBits(_ actual: [Float], _ expected: [Float], _ what: String,
                    file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): element count", file: file, line: line)
    for (i, (a, e)) in zip(actual, expected).enumerated() where a.bitPattern != e.bitPattern {
        XCTFail("\(what)[\(i)]: \(a) != \(e)", file: file, line: line)
        return
    }
}

final class PyTorchReaderTests: XCTestCase {
    func testListsEveryTensorWithDtypeShapeAndBytes() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        let expected = expectedTorchTensors("state_dict.pth")
        XCTAssertEqual(reader.variables.map(\.name), expected.keys.sorted())
        let sizes = ["float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int64": 8, "int32": 4,
                     "int8": 1, "uint8": 1, "bool": 1, "uint16": 2, "complex64": 8]
        for info in reader.variables {
            let want = expected[info.name]!
            XCTAssertEqual(info.dtype, want.dtype, info.name)
            XCTAssertEqual(info.shape, want.shape, info.name)
            XCTAssertEqual(info.byteCount, want.shape.reduce(1, *) * sizes[want.dtype]!, info.name)
        }
        XCTAssertNil(reader.stateDictKey)
        XCTAssertEqual(reader.archiveName, "state_dict")
        XCTAssertEqual(reader.formatVersion, "3")
        XCTAssertFalse(reader.isBigEndian)
    }

    func testReadsEveryConvertibleTensorExactly() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        for (name, want) in expectedTorchTensors("state_dict.pth") {
            guard let values = want.values else { continue }
            let t = try reader.tensor(named: name)
            XCTAssertEqual(t.shape, want.shape, name)
            assertSameBits(t.scalars, values, name)
        }
    }

    func testConvWeightsKeepPyTorchLayout() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        let t = try reader.tensor(named: "conv1.weight")
        XCTAssertEqual(t.shape, [4, 3, 3, 3])  // [out, in, kh, kw]
        assertSameBits(t.scalars, expectedTorchTensors("state_dict.pth")["conv1.weight"]!.values!, "conv1.weight")
        XCTAssertEqual(try reader.tensor(named: "conv2.weight").shape, [2, 4, 1, 1])
    }

    func testConvertsHalfBFloat16AndDouble() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        let expected = expectedTorchTensors("state_dict.pth")
        for name in ["extra.half", "extra.bfloat16", "extra.double"] {
            assertSameBits(try reader.tensor(named: name).scalars, expected[name]!.values!, name)
        }
        XCTAssertEqual(reader.info(named: "extra.half")?.dtype, "float16")
    }

    func testConvertsInt64NumBatchesTracked() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        XCTAssertEqual(reader.info(named: "bn1.num_batches_tracked")?.dtype, "int64")
        let t = try reader.tensor(named: "bn1.num_batches_tracked")
        XCTAssertEqual(t.shape, [])
        XCTAssertEqual(t.scalars, [12345])
        XCTAssertEqual(try reader.tensor(named: "extra.int64_large").scalars, [Float(1 << 40 + 1), -3])
    }

    func testConvertsSmallIntegerAndBoolTensors() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        XCTAssertEqual(try reader.tensor(named: "extra.int32").scalars, [-7, 0, 70000, 1, 2, 3])
        XCTAssertEqual(try reader.tensor(named: "extra.int8").scalars, [-128, -1, 127])
        XCTAssertEqual(try reader.tensor(named: "extra.uint8").scalars, [0, 200, 255])
        XCTAssertEqual(try reader.tensor(named: "extra.bool").scalars, [1, 0, 1])
    }

    func testUInt16ThroughRebuildTensorV3() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        XCTAssertEqual(reader.info(named: "extra.uint16")?.dtype, "uint16")
        XCTAssertEqual(try reader.tensor(named: "extra.uint16").scalars, [1, 65535, 300])
    }

    func testTransposedTensorIsMaterializedRowMajor() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        let want = expectedTorchTensors("state_dict.pth")["extra.transposed"]!
        XCTAssertEqual(want.contiguous, false)
        let t = try reader.tensor(named: "extra.transposed")
        XCTAssertEqual(t.shape, [5, 3])
        assertSameBits(t.scalars, want.values!, "extra.transposed")
    }

    func testExpandedTensorWithZeroStride() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        let t = try reader.tensor(named: "extra.expanded")
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t.scalars, [1.5, -2, 3.25, 1.5, -2, 3.25])
    }

    func testTwoTensorsShareOneStorageAtDifferentOffsets() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        // base = arange(24) / 8 - 1; a = base[2:8].view(2, 3); b = base[6:22].view(4, 4)[:, 1:3].
        let base = (0..<24).map { Float($0) / 8 - 1 }
        let a = try reader.tensor(named: "extra.shared_a")
        XCTAssertEqual(a.shape, [2, 3])
        XCTAssertEqual(a.scalars, Array(base[2..<8]))
        let b = try reader.tensor(named: "extra.shared_b")
        XCTAssertEqual(b.shape, [4, 2])
        XCTAssertEqual(b.scalars, [7, 8, 11, 12, 15, 16, 19, 20].map { base[$0] })
        XCTAssertEqual(expectedTorchTensors("state_dict.pth")["extra.shared_b"]!.contiguous, false)
    }

    func testScalarEmptyAndParameterTensors() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        let scalar = try reader.tensor(named: "extra.scalar")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.scalars, [3.5])
        let empty = try reader.tensor(named: "extra.empty")
        XCTAssertEqual(empty.shape, [0, 3])
        XCTAssertEqual(empty.scalars, [])
        assertSameBits(try reader.tensor(named: "extra.parameter").scalars,
                       expectedTorchTensors("state_dict.pth")["extra.parameter"]!.values!, "extra.parameter")
    }

    func testComplexTensorIsListedButNotConverted() throws {
        let reader = try PyTorchReader(path: pytorchFixture("state_dict.pth"))
        let info = try XCTUnwrap(reader.info(named: "extra.complex"))
        XCTAssertEqual(info.dtype, "complex64")
        XCTAssertFalse(info.isConvertibleToFloat)
        let path = pytorchFixture("state_dict.pth")
        assertFormatError(try reader.tensor(named: "extra.complex"), path: path, "complex64", "cannot be converted")
        XCTAssertNil(try reader.readAll()["extra.complex"])
    }

    func testUnknownNameIsAnError() throws {
        let path = pytorchFixture("state_dict.pth")
        let reader = try PyTorchReader(path: path)
        assertFormatError(try reader.tensor(named: "weight"), path: path, "no variable named \"weight\"", "conv1.weight")
    }

    func testCheckpointWrapperUsesItsStateDictEntry() throws {
        let reader = try PyTorchReader(path: pytorchFixture("wrapped.pth"))
        XCTAssertEqual(reader.stateDictKey, "state_dict")
        XCTAssertEqual(reader.variables.map(\.name), ["fc.bias", "fc.weight"])
        for (name, want) in expectedTorchTensors("wrapped.pth") {
            let t = try reader.tensor(named: name)
            XCTAssertEqual(t.shape, want.shape)
            assertSameBits(t.scalars, want.values!, name)
        }
    }

    func testZip64CentralDirectory() throws {
        let reader = try PyTorchReader(path: pytorchFixture("zip64.pth"))
        for (name, want) in expectedTorchTensors("zip64.pth") {
            let t = try reader.tensor(named: name)
            XCTAssertEqual(t.shape, want.shape, name)
            assertSameBits(t.scalars, want.values!, name)
        }
    }

    func testBigEndianStoragesAreSwapped() throws {
        let reader = try PyTorchReader(path: pytorchFixture("bigendian.pth"))
        XCTAssertTrue(reader.isBigEndian)
        for (name, want) in expectedTorchTensors("bigendian.pth") {
            let t = try reader.tensor(named: name)
            XCTAssertEqual(t.shape, want.shape, name)
            assertSameBits(t.scalars, want.values!, name)
        }
    }

    func testWeightFileOpensPthByName() throws {
        let reader = try WeightFile.open(pytorchFixture("state_dict.pth"))
        XCTAssertTrue(reader is PyTorchReader)
        XCTAssertEqual(try WeightFile.readAll(pytorchFixture("wrapped.pth")).keys.sorted(), ["fc.bias", "fc.weight"])
    }

    func testWeightFileRecognisesTorchZipByContent() throws {
        let directory = try temporaryDirectory(self)
        let path = directory.appendingPathComponent("pytorch_model.bin").path
        try FileManager.default.copyItem(atPath: pytorchFixture("state_dict.pth"), toPath: path)
        let reader = try WeightFile.open(path)
        XCTAssertTrue(reader is PyTorchReader)
        XCTAssertEqual(reader.variables.count, expectedTorchTensors("state_dict.pth").count)
    }

    func testReadsTheLegacyFormat() throws {
        let reader = try PyTorchReader(path: pytorchFixture("legacy.pt"))
        XCTAssertTrue(reader.isLegacyFormat)
        XCTAssertEqual(reader.formatVersion, "1001")
        let expected = expectedTorchTensors("legacy.pt")
        XCTAssertEqual(reader.variables.map(\.name), expected.keys.sorted())
        for (name, want) in expected {
            XCTAssertEqual(reader.info(named: name)?.dtype, want.dtype, name)
            let t = try reader.tensor(named: name)
            XCTAssertEqual(t.shape, want.shape, name)
            assertSameBits(t.scalars, want.values!, name)
        }
        XCTAssertEqual(expected["transposed"]?.contiguous, false)
        XCTAssertEqual(try reader.tensor(named: "bn.num_batches_tracked").scalars, [77])
    }

    func testWeightFileRecognisesTheLegacyFormatByContent() throws {
        let directory = try temporaryDirectory(self)
        let path = directory.appendingPathComponent("old_weights.bin").path
        try FileManager.default.copyItem(atPath: pytorchFixture("legacy.pt"), toPath: path)
        let reader = try WeightFile.open(path)
        XCTAssertTrue(reader is PyTorchReader)
        XCTAssertEqual(reader.variables.count, expectedTorchTensors("legacy.pt").count)
    }

    func testReadAllSkipsOnlyUnconvertible() throws {
        let all = try PyTorchReader(path: pytorchFixture("state_dict.pth")).readAll()
        XCTAssertEqual(all.count, expectedTorchTensors("state_dict.pth").count - 1)
    }
}
