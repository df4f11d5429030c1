import XCTest
import InceptionCore
@testable import InceptionFormats

final class TFCheckpointV1Tests: XCTestCase {
    let path = fixture("v1/model.ckpt")

    func testEveryTensorMatchesTheValuesTensorFlowWrote() throws {
        let reader = try TFCheckpointV1Reader(path: path)
        let want = expectedTensors("checkpoint").filter { !$0.value.v2Only }
        XCTAssertEqual(want.count, 14)
        for (name, e) in want {
            let t = try reader.tensor(named: name)
            XCTAssertEqual(t.shape, e.shape, name)
            XCTAssertEqual(t.scalars.map(\.bitPattern), e.values.map(\.bitPattern), name)
        }
    }

    func testListingGivesNamesDtypesAndShapesSortedByName() throws {
        let reader = try TFCheckpointV1Reader(path: path)
        let want = expectedTensors("checkpoint").filter { !$0.value.v2Only }
        let names = reader.variables.map(\.name)
        XCTAssertEqual(names, names.sorted())
        XCTAssertEqual(Set(names), Set(want.keys).union(["extra/string_var"]))
        for info in reader.variables where info.name != "extra/string_var" {
            XCTAssertEqual(info.dtype, want[info.name]!.dtype, info.name)
            XCTAssertEqual(info.shape, want[info.name]!.shape, info.name)
        }
        XCTAssertEqual(reader.info(named: "extra/float16_var")?.byteCount, 10)
    }

    func testPartitionedVariableIsAssembledFromItsSlices() throws {
        let reader = try TFCheckpointV1Reader(path: path)
        let name = "InceptionV1/Mixed_4b/Branch_0/Conv2d_0a_1x1/weights"
        XCTAssertEqual(try reader.tensor(named: name), expectedTensors("checkpoint")[name]!.tensor)
    }

    func testStringVariableIsRefusedWithItsNameAndDtype() throws {
        let reader = try TFCheckpointV1Reader(path: path)
        assertFormatError(try reader.tensor(named: "extra/string_var"), path: path, "extra/string_var", "dtype string")
    }

    func testWeightFileDetectsTheSingleFileFormat() throws {
        let reader = try WeightFile.open(path)
        XCTAssertTrue(reader is TFCheckpointV1Reader)
        XCTAssertEqual(try WeightFile.readAll(path).count, 14)
    }

    func testFlippedByteInADataBlockFailsTheBlockChecksum() throws {
        let dir = try copyFixtures(["v1/model.ckpt"], self)
        let copy = dir.appendingPathComponent("model.ckpt").path
        try mutate(copy) { $0[100] ^= 0x10 }
        assertFormatError(try TFCheckpointV1Reader(path: copy), path: copy, "fails its CRC32C check")
    }

    func testTruncatedFileIsAnError() throws {
        let dir = try copyFixtures(["v1/model.ckpt"], self)
        let copy = dir.appendingPathComponent("model.ckpt").path
        try mutate(copy) { $0.removeLast(7) }
        assertFormatError(try TFCheckpointV1Reader(path: copy), path: copy, "bad table magic")
    }

    func testZeroByteFileIsAnError() throws {
        let dir = try temporaryDirectory(self)
        let empty = dir.appendingPathComponent("empty.ckpt").path
        try writeBytes([], empty)
        assertFormatError(try TFCheckpointV1Reader(path: empty), path: empty, "empty")
        assertFormatError(try WeightFile.open(empty), path: empty, "empty")
    }

    // MARK: Synthetic V1 tables

    /// A V1 table: metadata for one float32 variable of `shape`, and the given slices.
    private func writeV1(_ shape: [Int], slices: [(extents: [(Int, Int?)], values: [Float], packed: Bool)],
                         to path: String) throws {
        func shapeProto(_ w: inout ProtoWriter, _ s: [Int]) {
            for d in s { w.message(2) { dim in dim.varint(1, UInt64(d)) } }
        }
        func sliceProto(_ w: inout ProtoWriter, _ extents: [(Int, Int?)]) {
            for (start, length) in extents {
                w.message(1) { e in
                    if let length { e.varint(1, UInt64(start)); e.varint(2, UInt64(length)) }
                }
            }
        }
        var meta = ProtoWriter()
        meta.message(1) { m in
            m.message(1) { t in
                t.bytesField(1, Array("w".utf8))
                t.message(2) { shapeProto(&$0, shape) }
                t.varint(3, 1)
                for s in slices { t.message(4) { sliceProto(&$0, s.extents) } }
            }
        }
        var entries: [(key: [UInt8], value: [UInt8])] = [([], meta.bytes)]
        for (i, s) in slices.enumerated() {
            var message = ProtoWriter()
            message.message(2) { saved in
                saved.bytesField(1, Array("w".utf8))
                saved.message(2) { sliceProto(&$0, s.extents) }
                saved.message(3) { proto in
                    proto.varint(1, 1)
                    if s.packed {
                        proto.bytesField(5, littleEndianBytes(s.values))
                    } else {
                        for v in s.values { proto.fixed32(5, v.bitPattern) }
                    }
                }
            }
            entries.append(([0, UInt8(i + 1)], message.bytes))  // any ascending keys will do
        }
        try writeBytes(TestTableBuilder().build(entries), path)
    }

    func testSlicesAlongTwoAxesWithPackedAndUnpackedFloatsAreAssembled() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("sliced.ckpt").path
        // A 2×3 tensor [[0,1,2],[3,4,5]] stored as rows 0 / 1 split at column 1.
        try writeV1([2, 3], slices: [
            ([(0, 1), (0, nil)], [0, 1, 2], true),
            ([(1, 1), (0, 1)], [3], false),
            ([(1, 1), (1, 2)], [4, 5], false),
        ], to: path)
        let t = try TFCheckpointV1Reader(path: path).tensor(named: "w")
        XCTAssertEqual(t, Tensor(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5]))
    }

    func testSlicesThatLeaveAGapAreAnError() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("gap.ckpt").path
        try writeV1([2, 3], slices: [([(0, 1), (0, nil)], [0, 1, 2], true)], to: path)
        assertFormatError(try TFCheckpointV1Reader(path: path).tensor(named: "w"), path: path,
                          "variable \"w\"", "do not cover")
    }

    func testSliceWithTheWrongNumberOfValuesIsAnError() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("short.ckpt").path
        try writeV1([2, 3], slices: [([(0, nil), (0, nil)], [0, 1, 2, 3, 4], true)], to: path)
        assertFormatError(try TFCheckpointV1Reader(path: path).tensor(named: "w"), path: path,
                          "float_val holds 5 values, expected 6")
    }
}
