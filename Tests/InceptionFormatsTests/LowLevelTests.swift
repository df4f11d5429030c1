import XCTest
@testable import InceptionFormats

final class CRC32CTests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xff, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum([UInt8]((0..<32).map { UInt8($0) })), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
    }

    func testSliceBy8MatchesBytewiseForEveryLengthAndSplit() {
        let data = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for n in 0...data.count {
            var bytewise: UInt32 = 0
            for b in data[0..<n] { bytewise = CRC32C.extend(bytewise, [b]) }
            XCTAssertEqual(CRC32C.checksum(data[0..<n]), bytewise, "length \(n)")
            XCTAssertEqual(CRC32C.extend(CRC32C.checksum(data[0..<(n / 3)]), data[(n / 3)..<n]), bytewise)
        }
    }

    func testMaskAndUnmaskAreInverses() {
        for crc: UInt32 in [0, 1, 0xE306_9283, 0xffff_ffff, 0x8000_0000] {
            XCTAssertEqual(CRC32C.unmask(CRC32C.mask(crc)), crc)
            XCTAssertNotEqual(CRC32C.mask(crc), crc)
        }
        XCTAssertEqual(CRC32C.mask(0), 0xa282_ead8)
    }
}

final class SnappyTests: XCTestCase {
    func testLiteralsAndAllThreeCopyKinds() throws {
        // "abcd" literal; copy-1 (len 4, offset 4) → "abcd"; copy-2 (len 2, offset 1) → "dd";
        // copy-4 (len 3, offset 10) → "abc"; total 13 bytes.
        let stream: [UInt8] = [13, 3 << 2, 0x61, 0x62, 0x63, 0x64,
                               0b000_000_01, 4,
                               (1 << 2) | 2, 1, 0,
                               (2 << 2) | 3, 10, 0, 0, 0]
        XCTAssertEqual(String(decoding: try Snappy.decompress(stream), as: UTF8.self), "abcdabcdddabc")
    }

    func testOverlappingCopyRepeatsARun() throws {
        // "ab" then a copy of 10 bytes from offset 2: "ababababab".
        let stream: [UInt8] = [12, 1 << 2, 0x61, 0x62, (9 << 2) | 2, 2, 0]
        XCTAssertEqual(String(decoding: try Snappy.decompress(stream), as: UTF8.self), "abababababab")
    }

    func testLongLiteralWithExtraLengthBytes() throws {
        let payload = (0..<300).map { UInt8(truncatingIfNeeded: $0) }
        let stream: [UInt8] = [0xac, 0x02, 61 << 2, 0x2b, 0x01] + payload  // length 300, 2-byte literal length 299
        XCTAssertEqual(try Snappy.decompress(stream), payload)
    }

    func testCopyBeforeTheStartIsAnError() {
        XCTAssertThrowsError(try Snappy.decompress([8, 0b000_000_01, 5]))
    }

    func testLengthThatDisagreesWithTheDataIsAnError() {
        XCTAssertThrowsError(try Snappy.decompress([5, 1 << 2, 0x61, 0x62]))  // says 5, holds 2
        XCTAssertThrowsError(try Snappy.decompress([1, 1 << 2, 0x61, 0x62]))  // says 1, holds 2
    }

    func testGiantDeclaredLengthIsRefusedBeforeAllocating() {
        XCTAssertThrowsError(try Snappy.decompress(ProtoWriter.varint(1 << 40) + [0])) { error in
            XCTAssertTrue((error as? Malformed)?.message.contains("impossible") ?? false)
        }
    }
}

final class ProtobufTests: XCTestCase {
    func testVarintsOfEverySizeDecode() throws {
        for v: UInt64 in [0, 1, 127, 128, 300, 1 << 32, UInt64.max] {
            var c = ByteCursor(ProtoWriter.varint(v))
            XCTAssertEqual(try c.readVarint64(), v)
            XCTAssertTrue(c.isAtEnd)
        }
    }

    func testOverlongVarintIsAnError() {
        var c = ByteCursor([UInt8](repeating: 0xff, count: 11))
        XCTAssertThrowsError(try c.readVarint64())
        var d = ByteCursor([0x80, 0x80])
        XCTAssertThrowsError(try d.readVarint64())
    }

    func testPackedAndUnpackedRepeatedFloatsAreBothAccepted() throws {
        var w = ProtoWriter()
        w.varint(1, 1)
        w.bytesField(5, littleEndianBytes([1, 2]))
        w.fixed32(5, Float(3).bitPattern)
        let (dtype, values) = try decodeTensorProto(w.bytes, 0..<w.bytes.count, count: 3)
        XCTAssertEqual(dtype.name, "float32")
        XCTAssertEqual(values, [1, 2, 3])
    }

    func testTensorProtoValuesOfEachDtype() throws {
        func decode(_ dtype: UInt64, count: Int, _ fill: (inout ProtoWriter) -> Void) throws -> [Float] {
            var w = ProtoWriter()
            w.varint(1, dtype)
            fill(&w)
            return try decodeTensorProto(w.bytes, 0..<w.bytes.count, count: count).1
        }
        XCTAssertEqual(try decode(2, count: 1) { $0.fixed64(6, (0.1 as Double).bitPattern) }, [Float(0.1 as Double)])
        XCTAssertEqual(try decode(9, count: 2) { $0.varint(10, 5); $0.varint(10, UInt64(bitPattern: -3)) }, [5, -3])
        XCTAssertEqual(try decode(3, count: 1) { $0.varint(7, UInt64(bitPattern: -7)) }, [-7])
        XCTAssertEqual(try decode(19, count: 1) { $0.varint(13, 0x3c00) }, [1])   // half 1.0
        XCTAssertEqual(try decode(14, count: 1) { $0.varint(13, 0xc000) }, [-2])  // bfloat16 −2.0
        XCTAssertEqual(try decode(10, count: 2) { $0.bytesField(11, [1, 0]) }, [1, 0])
        XCTAssertEqual(try decode(1, count: 2) { $0.bytesField(4, littleEndianBytes([0.5, -1])) }, [0.5, -1])
    }

    func testWrongWireTypeForAKnownFieldIsAnError() {
        var w = ProtoWriter()
        w.fixed32(1, 1)  // dtype must be a varint
        XCTAssertThrowsError(try decodeTensorProto(w.bytes, 0..<w.bytes.count, count: 0))
    }

    func testLengthPastTheEndOfTheMessageIsAnError() {
        let bytes: [UInt8] = [0x22, 0x7f, 1, 2, 3]  // field 4, length 127, 3 bytes present
        XCTAssertThrowsError(try decodeTensorProto(bytes, 0..<bytes.count, count: 0)) { error in
            XCTAssertTrue((error as? Malformed)?.message.contains("exceeds") ?? false)
        }
    }

    func testSliceKeysMatchTensorFlowsOrderedCode() throws {
        // The key TensorFlow wrote for slice "0,2:0,4" of the partitioned fixture variable.
        let name = "InceptionV1/Mixed_4b/Branch_0/Conv2d_0a_1x1/weights"
        let key = try encodeSliceKey(name: name, [SliceExtent(start: 0, length: 2), SliceExtent(start: 0, length: 4)])
        XCTAssertEqual(key, [0x00] + Array(name.utf8) + [0x00, 0x01, 0x01, 0x02, 0x80, 0x82, 0x80, 0x84])
        // Signed numbers: one byte within ±64, the length in unary, negatives first.
        var bytes: [UInt8] = []
        for v: Int64 in [-1, 63, 64, -65, 8191, 8192] { try appendOrderedSignedNumber(v, to: &bytes) }
        XCTAssertEqual(bytes, [0x7f, 0xbf, 0xc0, 0x40, 0x3f, 0xbf, 0xdf, 0xff, 0xe0, 0x20, 0x00])
    }
}

final class HalfPrecisionTests: XCTestCase {
    func testEveryHalfSurvivesARoundTripThroughFloat() {
        for bits in 0...UInt16.max {
            let f = floatFromHalf(bits)
            if f.isNaN {
                XCTAssertTrue(floatFromHalf(halfFromFloat(f)).isNaN)
            } else {
                XCTAssertEqual(halfFromFloat(f), bits, "half 0x\(String(bits, radix: 16))")
            }
        }
    }

    func testFloatToHalfRoundsToNearestEven() {
        XCTAssertEqual(halfFromFloat(1 + 0x1p-11), 0x3c00)               // tie → even (1.0)
        XCTAssertEqual(halfFromFloat(1 + 3 * 0x1p-11), 0x3c02)           // tie → even (up)
        XCTAssertEqual(halfFromFloat(1 + 0x1p-11 + 0x1p-20), 0x3c01)     // above the tie
        XCTAssertEqual(halfFromFloat(65520), 0x7c00)                     // rounds past the max: infinity
        XCTAssertEqual(halfFromFloat(65519), 0x7bff)
        XCTAssertEqual(halfFromFloat(0x1p-25), 0x0000)                   // tie at the smallest subnormal → 0
        XCTAssertEqual(halfFromFloat(0x1.8p-25), 0x0001)
        XCTAssertEqual(halfFromFloat(-0.0), 0x8000)
    }

    func testBFloat16IsTheTopHalfOfAFloat() {
        XCTAssertEqual(floatFromBFloat16(0x3f80), 1)
        XCTAssertEqual(floatFromBFloat16(0xc040), -3)
    }
}

final class LevelDBTableTests: XCTestCase {
    private func entries(_ n: Int) -> [(key: [UInt8], value: [UInt8])] {
        (0..<n).map { i in (Array(String(format: "key/%05d/suffix", i).utf8), Array(repeating: UInt8(i & 0xff), count: i % 7)) }
    }

    private func readAll(_ bytes: [UInt8]) throws -> [(key: [UInt8], value: [UInt8])] {
        let table = try LevelDBTable(file: FileBytes(path: "test.table", data: Data(bytes)))
        var out: [(key: [UInt8], value: [UInt8])] = []
        try table.forEachEntry { key, block, _, value in out.append((key, Array(block.contents[value]))) }
        return out
    }

    func testEntriesComeBackInOrderAcrossBlocksAndRestarts() throws {
        let want = entries(500)
        for (blockSize, restart) in [(64, 1), (256, 3), (4096, 16), (1 << 20, 1000)] {
            let got = try readAll(TestTableBuilder(blockSize: blockSize, restartInterval: restart).build(want))
            XCTAssertEqual(got.map(\.key), want.map(\.key), "block \(blockSize) restart \(restart)")
            XCTAssertEqual(got.map(\.value), want.map(\.value))
        }
    }

    func testSnappyBlocksComeBackTheSame() throws {
        let want = entries(100)
        XCTAssertEqual(try readAll(TestTableBuilder(blockSize: 200, snappy: true).build(want)).map(\.key), want.map(\.key))
    }

    func testUnknownCompressionTypeIsAnError() throws {
        var bytes = TestTableBuilder().build(entries(3))
        // The first block's type byte follows its contents; rewrite it and fix the checksum.
        let table = try LevelDBTable(file: FileBytes(path: "t", data: Data(bytes)))
        let size = table.dataBlocks[0].size
        bytes[size] = 7
        let crc = CRC32C.mask(CRC32C.checksum(bytes[0...size]))
        bytes.replaceSubrange((size + 1)..<(size + 5), with: withUnsafeBytes(of: crc.littleEndian) { [UInt8]($0) })
        XCTAssertThrowsError(try readAll(bytes)) { error in
            XCTAssertTrue("\(error)".contains("unknown compression type 7"), "\(error)")
        }
    }

    func testBlockWithAnImpossibleRestartCountIsAnError() throws {
        // One block whose restart count claims more entries than its bytes can hold.
        var contents = [UInt8](repeating: 0, count: 8)
        contents += withUnsafeBytes(of: UInt32(1000).littleEndian) { [UInt8]($0) }
        XCTAssertThrowsError(try LevelDBTable.parseEntries(contents)) { error in
            XCTAssertTrue(((error as? Malformed)?.message ?? "").contains("1000 restart points"))
        }
    }

    func testEveryTruncationOfAFixtureIndexIsAnErrorNotACrash() throws {
        let bytes = try readBytes(fixture("v2/model.ckpt.index"))
        for n in 0..<bytes.count {
            XCTAssertThrowsError(try readAll(Array(bytes[0..<n])), "prefix of \(n) bytes")
        }
    }

    func testEverySingleByteFlipInAFixtureIndexIsDetected() throws {
        let bytes = try readBytes(fixture("v2/model.ckpt.index"))
        // Skip the footer's zero padding, which no reader looks at.
        let footer = bytes.count - 48
        let table = try LevelDBTable(file: FileBytes(path: "t", data: Data(bytes)))
        _ = table
        var padding = Set<Int>()
        var c = ByteCursor(Array(bytes[footer...]))
        for _ in 0..<4 { _ = try c.readVarint64() }
        for i in c.position..<40 { padding.insert(footer + i) }
        for i in 0..<bytes.count where !padding.contains(i) {
            var copy = bytes
            copy[i] ^= 0x20
            XCTAssertThrowsError(try readAll(copy), "flip at byte \(i)")
        }
    }
}
