import XCTest
import InceptionCore
@testable import InceptionFormats

final class TFCheckpointV2Tests: XCTestCase {
    let prefix = fixture("v2/model.ckpt")
    let v2Files = ["v2/model.ckpt.index", "v2/model.ckpt.data-00000-of-00002", "v2/model.ckpt.data-00001-of-00002"]

    func testEveryTensorMatchesTheValuesTensorFlowWrote() throws {
        let reader = try TFCheckpointV2Reader(prefix: prefix)
        let want = expectedTensors("checkpoint")
        XCTAssertEqual(want.count, 15)
        for (name, e) in want {
            let t = try reader.tensor(named: name)
            XCTAssertEqual(t.shape, e.shape, name)
            XCTAssertEqual(t.scalars.map(\.bitPattern), e.values.map(\.bitPattern), name)
        }
    }

    func testListingGivesNamesDtypesAndShapesSortedByName() throws {
        let reader = try TFCheckpointV2Reader(prefix: prefix)
        let want = expectedTensors("checkpoint")
        let names = reader.variables.map(\.name)
        XCTAssertEqual(names, names.sorted())
        XCTAssertEqual(Set(names), Set(want.keys).union(["extra/string_var"]))
        for info in reader.variables where info.name != "extra/string_var" {
            XCTAssertEqual(info.dtype, want[info.name]!.dtype, info.name)
            XCTAssertEqual(info.shape, want[info.name]!.shape, info.name)
            XCTAssertTrue(info.isConvertibleToFloat)
        }
        let conv = reader.info(named: "InceptionV1/Conv2d_1a_7x7/weights")!
        XCTAssertEqual(conv.byteCount, 3 * 3 * 3 * 4 * 4)
        XCTAssertEqual(reader.info(named: "global_step")?.dtype, "int64")
        XCTAssertEqual(reader.info(named: "global_step")?.shape, [])
    }

    func testPartitionedVariableIsAssembledFromItsSlices() throws {
        let reader = try TFCheckpointV2Reader(prefix: prefix)
        let name = "InceptionV1/Mixed_4b/Branch_0/Conv2d_0a_1x1/weights"
        XCTAssertEqual(expectedTensors("checkpoint")[name]!.partitions, 3)
        XCTAssertEqual(try reader.tensor(named: name), expectedTensors("checkpoint")[name]!.tensor)
    }

    func testCheckpointHasTwoShardsAndBothAreUsed() throws {
        // Variables alternate devices in the fixture script, so both shards hold data.
        for shard in v2Files.dropFirst() {
            XCTAssertGreaterThan(try readBytes(fixture(shard)).count, 0)
        }
        XCTAssertNoThrow(try TFCheckpointV2Reader(prefix: prefix).readAll())
    }

    func testStringVariableIsListedButRefusedWithItsNameAndDtype() throws {
        let reader = try TFCheckpointV2Reader(prefix: prefix)
        XCTAssertEqual(reader.info(named: "extra/string_var")?.dtype, "string")
        assertFormatError(try reader.tensor(named: "extra/string_var"), path: prefix, "extra/string_var", "string")
        XCTAssertNil(try reader.readAll()["extra/string_var"])
    }

    func testUnknownVariableNameIsAnError() throws {
        let reader = try TFCheckpointV2Reader(prefix: prefix)
        assertFormatError(try reader.tensor(named: "weights"), path: prefix, "no variable named \"weights\"")
    }

    func testTruncatedIndexIsAnError() throws {
        let dir = try copyFixtures(v2Files, self)
        let index = dir.appendingPathComponent("model.ckpt.index").path
        try mutate(index) { $0.removeLast($0.count / 2) }
        assertFormatError(try TFCheckpointV2Reader(prefix: dir.appendingPathComponent("model.ckpt").path),
                          path: index, "magic")
    }

    func testTruncatedDataShardIsAnError() throws {
        let dir = try copyFixtures(v2Files, self)
        let shard = dir.appendingPathComponent("model.ckpt.data-00001-of-00002").path
        try mutate(shard) { $0.removeLast(10) }
        assertFormatError(try TFCheckpointV2Reader(prefix: dir.appendingPathComponent("model.ckpt").path),
                          path: shard, "runs past the end of the file")
    }

    func testFlippedByteInIndexBlockFailsTheBlockChecksum() throws {
        let dir = try copyFixtures(v2Files, self)
        let index = dir.appendingPathComponent("model.ckpt.index").path
        try mutate(index) { $0[20] ^= 0x40 }
        assertFormatError(try TFCheckpointV2Reader(prefix: dir.appendingPathComponent("model.ckpt").path),
                          path: index, "data block 0 at offset 0", "fails its CRC32C check", "stored 0x", "computed 0x")
    }

    func testFlippedByteInTensorDataFailsTheTensorChecksum() throws {
        let dir = try copyFixtures(v2Files, self)
        let shard = dir.appendingPathComponent("model.ckpt.data-00000-of-00002").path
        try mutate(shard) { $0[1] ^= 0x01 }
        let reader = try TFCheckpointV2Reader(prefix: dir.appendingPathComponent("model.ckpt").path)
        assertFormatError(try reader.readAll(), path: shard, "variable \"", "fails its CRC32C check")
    }

    func testWrongFooterMagicIsAnError() throws {
        let dir = try copyFixtures(v2Files, self)
        let index = dir.appendingPathComponent("model.ckpt.index").path
        try mutate(index) { $0[$0.count - 1] = 0x00 }
        assertFormatError(try TFCheckpointV2Reader(prefix: dir.appendingPathComponent("model.ckpt").path),
                          path: index, "bad table magic", "0xdb4775248b80fb57")
    }

    func testMissingShardIsAnErrorNamingTheShard() throws {
        let dir = try copyFixtures(Array(v2Files.prefix(2)), self)
        assertFormatError(try TFCheckpointV2Reader(prefix: dir.appendingPathComponent("model.ckpt").path),
                          path: "model.ckpt.data-00001-of-00002", "missing", "shard 1 of 2")
    }

    func testMissingIndexIsAnError() throws {
        let dir = try temporaryDirectory(self)
        let prefix = dir.appendingPathComponent("model.ckpt").path
        assertFormatError(try TFCheckpointV2Reader(prefix: prefix), path: prefix + ".index", "no such file")
    }

    func testZeroByteIndexIsAnError() throws {
        let dir = try copyFixtures(v2Files, self)
        let index = dir.appendingPathComponent("model.ckpt.index").path
        try writeBytes([], index)
        assertFormatError(try TFCheckpointV2Reader(prefix: dir.appendingPathComponent("model.ckpt").path),
                          path: index, "empty")
    }

    func testBlockHandleBeyondTheFileIsAnErrorNotAnAllocation() throws {
        // An index whose footer points the index block at a giant size.
        let dir = try temporaryDirectory(self)
        let path = dir.appendingPathComponent("giant.index").path
        var footer = ProtoWriter.varint(0) + ProtoWriter.varint(1 << 40) + ProtoWriter.varint(0) + ProtoWriter.varint(0)
        footer += [UInt8](repeating: 0, count: 40 - footer.count)
        footer += withUnsafeBytes(of: LevelDBTable.magic.littleEndian) { [UInt8]($0) }
        try writeBytes(footer, path)
        assertFormatError(try TFCheckpointV2Reader(prefix: dir.appendingPathComponent("giant").path),
                          path: path, "size 1099511627776", "runs past the end")
    }

    // MARK: Synthetic bundles (multi-block index, malformed entries)

    /// Writes a one-shard bundle of float32 vectors `values[i]` named "var/NNNN" with a small
    /// index block size, so the index has many data blocks.
    private func writeSyntheticBundle(_ values: [[Float]], in dir: URL, snappy: Bool = false,
                                      editEntry: ((Int, inout ProtoWriter) -> Void)? = nil) throws -> String {
        var data: [UInt8] = []
        var entries: [(key: [UInt8], value: [UInt8])] = []
        var header = ProtoWriter()
        header.varint(1, 1)
        entries.append(([], header.bytes))
        for (i, v) in values.enumerated() {
            let raw = littleEndianBytes(v)
            var entry = ProtoWriter()
            entry.varint(1, 1)  // DT_FLOAT
            entry.message(2) { shape in shape.message(2) { dim in dim.varint(1, UInt64(v.count)) } }
            entry.varint(4, UInt64(data.count))
            entry.varint(5, UInt64(raw.count))
            entry.fixed32(6, CRC32C.mask(CRC32C.checksum(raw)))
            editEntry?(i, &entry)
            entries.append((Array(String(format: "var/%04d", i).utf8), entry.bytes))
            data += raw
        }
        let prefix = dir.appendingPathComponent("synthetic").path
        try writeBytes(TestTableBuilder(blockSize: 256, restartInterval: 4, snappy: snappy).build(entries), prefix + ".index")
        try writeBytes(data, prefix + ".data-00000-of-00001")
        return prefix
    }

    func testIndexWithManyDataBlocksIsReadCompletely() throws {
        let dir = try temporaryDirectory(self)
        let values = (0..<200).map { i in (0..<(i % 5 + 1)).map { Float(i) + Float($0) / 8 } }
        let prefix = try writeSyntheticBundle(values, in: dir)
        let table = try LevelDBTable(file: FileBytes.load(prefix + ".index"))
        XCTAssertGreaterThan(table.dataBlocks.count, 10)
        let reader = try TFCheckpointV2Reader(prefix: prefix)
        XCTAssertEqual(reader.variables.count, 200)
        for (i, v) in values.enumerated() {
            XCTAssertEqual(try reader.tensor(named: String(format: "var/%04d", i)).scalars, v)
        }
    }

    func testSnappyCompressedIndexBlocksAreDecompressed() throws {
        let dir = try temporaryDirectory(self)
        let values: [[Float]] = (0..<50).map { [Float($0), -Float($0)] }
        let prefix = try writeSyntheticBundle(values, in: dir, snappy: true)
        let reader = try TFCheckpointV2Reader(prefix: prefix)
        XCTAssertEqual(try reader.tensor(named: "var/0049").scalars, [49, -49])
    }

    func testEntryWithShardBeyondTheHeaderIsAnError() throws {
        let dir = try temporaryDirectory(self)
        let prefix = try writeSyntheticBundle([[1, 2]], in: dir) { _, entry in entry.varint(3, 4) }
        assertFormatError(try TFCheckpointV2Reader(prefix: prefix), path: prefix + ".index",
                          "variable \"var/0000\" is in shard 4", "1 shards")
    }

    func testEntryWhoseSizeDisagreesWithItsShapeIsAnError() throws {
        let dir = try temporaryDirectory(self)
        let prefix = try writeSyntheticBundle([[1, 2, 3], [4, 5, 6]], in: dir) { i, entry in
            if i == 0 { entry.varint(5, 8) }  // a later field wins: size 8 for a [3] float32
        }
        assertFormatError(try TFCheckpointV2Reader(prefix: prefix), path: prefix + ".index",
                          "var/0000", "shape [3] of float32", "8 bytes")
    }

    func testOpeningThroughWeightFileAcceptsPrefixIndexAndShardPaths() throws {
        for path in [prefix, prefix + ".index", prefix + ".data-00001-of-00002"] {
            let reader = try WeightFile.open(path)
            XCTAssertTrue(reader is TFCheckpointV2Reader, path)
            XCTAssertEqual(reader.path, prefix)
        }
    }
}
