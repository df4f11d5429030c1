import Foundation
import XCTest
@testable import InceptionFormats

/// Builds small zip archives laid out like torch.save's (see scripts/make_pytorch_fixtures.py),
/// with knobs for the malformations the tests need.
struct TestZipBuilder {
    var method: UInt16 = 0
    var flags: UInt16 = 0x0808
    var comment: [UInt8] = []
    var zip64Extras = false
    /// Name written in the local headers instead of the real one (by member index).
    var localNameOverride: [Int: String] = [:]

    static func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { [UInt8]($0) } }
    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { [UInt8]($0) } }
    static func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { [UInt8]($0) } }

    func build(_ records: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for (i, (name, data)) in records.enumerated() {
            let offset = out.count
            let crc = ZipCRC32.checksum(data)
            let local = Array((localNameOverride[i] ?? name).utf8)
            out += Self.le32(0x0403_4b50) + Self.le16(0) + Self.le16(flags) + Self.le16(method) + Self.le32(0)
            out += Self.le32(0) + Self.le32(0) + Self.le32(0) + Self.le16(UInt16(local.count)) + Self.le16(0) + local
            out += data
            out += Self.le32(0x0807_4b50) + Self.le32(crc) + Self.le32(UInt32(data.count)) + Self.le32(UInt32(data.count))
            let nameBytes = Array(name.utf8)
            var extra: [UInt8] = []
            var size32 = UInt32(data.count), offset32 = UInt32(offset)
            if zip64Extras {
                extra = Self.le16(1) + Self.le16(24) + Self.le64(UInt64(data.count)) + Self.le64(UInt64(data.count)) + Self.le64(UInt64(offset))
                size32 = 0xFFFF_FFFF
                offset32 = 0xFFFF_FFFF
            }
            central += Self.le32(0x0201_4b50) + Self.le16(0) + Self.le16(0) + Self.le16(flags) + Self.le16(method) + Self.le32(0)
            central += Self.le32(crc) + Self.le32(size32) + Self.le32(size32)
            central += Self.le16(UInt16(nameBytes.count)) + Self.le16(UInt16(extra.count)) + Self.le16(0)
            central += Self.le16(0) + Self.le16(0) + Self.le32(0) + Self.le32(offset32) + nameBytes + extra
        }
        let directoryOffset = out.count
        out += central
        let n = UInt16(records.count)
        out += Self.le32(0x0605_4b50) + Self.le16(0) + Self.le16(0) + Self.le16(n) + Self.le16(n)
        out += Self.le32(UInt32(central.count)) + Self.le32(UInt32(directoryOffset)) + Self.le16(UInt16(comment.count)) + comment
        return out
    }
}

extension P {
    /// torch._utils._rebuild_tensor_v2(('storage', torch.TYPE, key, 'cpu', numel), offset, size, stride, False, OrderedDict())
    static func tensorV2(_ type: String, _ key: String, numel: Int, offset: Int, size: [Int], stride: [Int]) -> [UInt8] {
        func tuple(_ items: [Int]) -> [UInt8] { [0x28] + items.flatMap { int1(UInt8($0)) } + [0x74] }
        let id = [0x28] + unicode("storage") + global("torch", type) + unicode(key) + unicode("cpu") + int1(UInt8(numel)) + [0x74]
        return global("torch._utils", "_rebuild_tensor_v2") + [0x28] + id + [0x51] + int1(UInt8(offset))
            + tuple(size) + tuple(stride) + [0x89] + global("collections", "OrderedDict") + [0x29, 0x52, 0x74, 0x52]
    }

    /// OrderedDict() with SETITEMS of the pairs, then STOP.
    static func stateDict(_ entries: [(String, [UInt8])]) -> [UInt8] {
        proto2 + global("collections", "OrderedDict") + [0x29, 0x52, 0x28]
            + entries.flatMap { unicode($0.0) + $0.1 } + [0x75] + stop
    }
}

/// The records of a torch archive named "archive" holding `pickle` and `storages`.
func torchRecords(_ pickle: [UInt8], _ storages: [(String, [UInt8])]) -> [(String, [UInt8])] {
    [("archive/data.pkl", pickle), ("archive/byteorder", Array("little".utf8))]
        + storages.map { ("archive/data/" + $0.0, $0.1) } + [("archive/version", Array("3\n".utf8))]
}

final class PyTorchZipTests: XCTestCase {
    let oneTensor = P.stateDict([("w", P.tensorV2("FloatStorage", "0", numel: 4, offset: 0, size: [2, 2], stride: [2, 1]))])
    let fourFloats = littleEndianBytes([1, 2, 3, 4])

    private func write(_ bytes: [UInt8], _ name: String = "model.pth") throws -> String {
        let path = try temporaryDirectory(self).appendingPathComponent(name).path
        try writeBytes(bytes, path)
        return path
    }

    func testCRC32OfTheCheckString() {
        XCTAssertEqual(ZipCRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(ZipCRC32.checksum([]), 0)
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var bitwise: UInt32 = 0xFFFF_FFFF
        for b in long {
            bitwise ^= UInt32(b)
            for _ in 0..<8 { bitwise = bitwise & 1 != 0 ? (bitwise >> 1) ^ 0xEDB8_8320 : bitwise >> 1 }
        }
        XCTAssertEqual(ZipCRC32.checksum(long), ~bitwise)
    }

    func testBuilderArchiveReads() throws {
        let path = try write(TestZipBuilder().build(torchRecords(oneTensor, [("0", fourFloats)])))
        let reader = try PyTorchReader(path: path)
        XCTAssertEqual(reader.archiveName, "archive")
        XCTAssertEqual(try reader.tensor(named: "w").scalars, [1, 2, 3, 4])
    }

    func testArchiveCommentIsSkipped() throws {
        var builder = TestZipBuilder()
        builder.comment = Array("a comment holding a fake PK\u{05}\u{06} signature".utf8)
        let path = try write(builder.build(torchRecords(oneTensor, [("0", fourFloats)])))
        XCTAssertEqual(try PyTorchReader(path: path).tensor(named: "w").scalars, [1, 2, 3, 4])
    }

    func testZip64ExtraFields() throws {
        var builder = TestZipBuilder()
        builder.zip64Extras = true
        let path = try write(builder.build(torchRecords(oneTensor, [("0", fourFloats)])))
        XCTAssertEqual(try PyTorchReader(path: path).tensor(named: "w").scalars, [1, 2, 3, 4])
    }

    func testZip64MarkerWithoutExtraFieldIsAnError() throws {
        var bytes = TestZipBuilder().build(torchRecords(oneTensor, [("0", fourFloats)]))
        // Set the first central header's size to 0xFFFFFFFF without adding a zip64 extra field.
        let directory = try XCTUnwrap(Self.find([0x50, 0x4b, 0x01, 0x02], in: bytes))
        for i in 0..<4 { bytes[directory + 24 + i] = 0xff }
        let path = try write(bytes)
        assertFormatError(try PyTorchReader(path: path), path: path, "zip64 extra field")
    }

    func testCompressedMemberIsRefused() throws {
        var builder = TestZipBuilder()
        builder.method = 8
        let path = try write(builder.build(torchRecords(oneTensor, [("0", fourFloats)])))
        assertFormatError(try PyTorchReader(path: path), path: path, "archive/", "compressed (deflate)", "stored")
    }

    func testEncryptedMemberIsRefused() throws {
        var builder = TestZipBuilder()
        builder.flags = 0x0809
        let path = try write(builder.build(torchRecords(oneTensor, [("0", fourFloats)])))
        assertFormatError(try PyTorchReader(path: path), path: path, "encrypted")
    }

    func testDuplicateNamesAreRefused() throws {
        let records = torchRecords(oneTensor, [("0", fourFloats), ("0", fourFloats)])
        let path = try write(TestZipBuilder().build(records))
        assertFormatError(try PyTorchReader(path: path), path: path, "archive/data/0", "appears twice")
    }

    func testLocalHeaderMustNameTheSameMember() throws {
        var builder = TestZipBuilder()
        builder.localNameOverride = [2: "archive/data/9"]
        let path = try write(builder.build(torchRecords(oneTensor, [("0", fourFloats)])))
        assertFormatError(try PyTorchReader(path: path), path: path, "archive/data/0", "names \"archive/data/9\"")
    }

    func testMissingStorageRecord() throws {
        let path = try write(TestZipBuilder().build(torchRecords(oneTensor, [("1", fourFloats)])))
        assertFormatError(try PyTorchReader(path: path), path: path, "storage \"0\"", "no record archive/data/0")
    }

    func testNoPickleRecord() throws {
        let path = try write(TestZipBuilder().build([("archive/readme.txt", Array("hi".utf8))]))
        assertFormatError(try PyTorchReader(path: path), path: path, "no data.pkl")
        XCTAssertFalse(PyTorchReader.recognises(try FileBytes.load(path)))
        assertFormatError(try WeightFile.open(path), path: path, "no data.pkl")  // named .pth
    }

    func testTwoPickleRecordsAreAmbiguous() throws {
        let records = torchRecords(oneTensor, [("0", fourFloats)]) + [("other/data.pkl", oneTensor)]
        let path = try write(TestZipBuilder().build(records))
        assertFormatError(try PyTorchReader(path: path), path: path, "2 data.pkl records")
    }

    func testTopLevelMustBeAStateDict() throws {
        let list = P.proto2 + [0x5d] + P.stop
        let path = try write(TestZipBuilder().build(torchRecords(list, [])))
        assertFormatError(try PyTorchReader(path: path), path: path, "holds a list", "not a state_dict")
    }

    func testTwoDictsOfTensorsAreAmbiguous() throws {
        let inner = [0x7d] + P.unicode("w") + P.tensorV2("FloatStorage", "0", numel: 4, offset: 0, size: [4], stride: [1]) + [0x73]
        let outer = P.proto2 + [0x7d] + P.unicode("model") + inner + [0x73] + P.unicode("ema") + inner + [0x73]
            + P.unicode("epoch") + P.int1(3) + [0x73] + P.stop
        let path = try write(TestZipBuilder().build(torchRecords(outer, [("0", fourFloats)])))
        assertFormatError(try PyTorchReader(path: path), path: path, "\"model\", \"ema\"", "ambiguous")
    }

    func testNonStringStateDictKey() throws {
        let pickle = P.proto2 + [0x7d] + P.int1(5) + P.tensorV2("FloatStorage", "0", numel: 4, offset: 0, size: [4], stride: [1]) + [0x73] + P.stop
        let path = try write(TestZipBuilder().build(torchRecords(pickle, [("0", fourFloats)])))
        assertFormatError(try PyTorchReader(path: path), path: path, "key is the integer 5")
    }

    func testStorageDescribedTwiceDifferently() throws {
        let pickle = P.stateDict([
            ("a", P.tensorV2("FloatStorage", "0", numel: 4, offset: 0, size: [4], stride: [1])),
            ("b", P.tensorV2("HalfStorage", "0", numel: 8, offset: 0, size: [8], stride: [1])),
        ])
        let path = try write(TestZipBuilder().build(torchRecords(pickle, [("0", fourFloats)])))
        assertFormatError(try PyTorchReader(path: path), path: path, "storage \"0\" is described twice")
    }

    func testChecksumsCanBeSkippedForStorages() throws {
        var bytes = TestZipBuilder().build(torchRecords(oneTensor, [("0", fourFloats)]))
        let at = try XCTUnwrap(Self.find(fourFloats, in: bytes))
        bytes[at + 3] ^= 0x80  // 1.0 becomes -1.0
        let path = try write(bytes)
        assertFormatError(try PyTorchReader(path: path).tensor(named: "w"), path: path, "archive/data/0", "CRC-32")
        XCTAssertEqual(try PyTorchReader(path: path, verifyChecksums: false).tensor(named: "w").scalars, [-1, 2, 3, 4])
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
