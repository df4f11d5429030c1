import XCTest
import InceptionImages

final class OrientationTests: XCTestCase {
    /// A TIFF structure with IFD0 = [Make, Orientation = value].
    private func tiff(orientation value: Int, bigEndian: Bool, type: Int = 3) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { bigEndian ? [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: Int) -> [UInt8] { bigEndian ? u16(v >> 16) + u16(v & 0xFFFF) : u16(v & 0xFFFF) + u16(v >> 16) }
        var t: [UInt8] = bigEndian ? [0x4D, 0x4D] : [0x49, 0x49]
        t += u16(42) + u32(8) + u16(2)
        t += u16(0x010F) + u16(2) + u32(4) + Array("Abc\0".utf8)
        t += u16(0x0112) + u16(type) + u32(1) + (type == 4 ? u32(value) : u16(value) + [0, 0])
        return t + u32(0)
    }

    func testEXIFOrientationIsReadInLittleEndian() {
        XCTAssertEqual(EXIF.orientation(fromTIFF: tiff(orientation: 6, bigEndian: false)), .rotated90CW)
    }

    func testEXIFOrientationIsReadInBigEndian() {
        XCTAssertEqual(EXIF.orientation(fromTIFF: tiff(orientation: 8, bigEndian: true)), .rotated90CCW)
    }

    func testEXIFHeaderPrefixAndLongTypeAreAccepted() {
        XCTAssertEqual(EXIF.orientation(fromTIFF: Array("Exif\0\0".utf8) + tiff(orientation: 3, bigEndian: true, type: 4)),
                       .rotated180)
    }

    func testEXIFOrientationOutsideOneToEightIsIgnored() {
        XCTAssertNil(EXIF.orientation(fromTIFF: tiff(orientation: 0, bigEndian: false)))
        XCTAssertNil(EXIF.orientation(fromTIFF: tiff(orientation: 9, bigEndian: true)))
    }

    func testEXIFParserSurvivesEveryTruncationAndBadOffset() {
        let whole = tiff(orientation: 6, bigEndian: true)
        for length in 0..<(whole.count - 4) { // the last 4 bytes (next-IFD offset) are not needed
            XCTAssertNil(EXIF.orientation(fromTIFF: Array(whole.prefix(length))), "prefix of \(length) bytes")
        }
        var badOffset = whole
        badOffset[4...7] = [0x7F, 0xFF, 0xFF, 0xF0] // IFD0 far outside the data
        XCTAssertNil(EXIF.orientation(fromTIFF: badOffset))
        var manyEntries = whole
        manyEntries[8...9] = [0xFF, 0xFF] // 65535 entries announced
        XCTAssertEqual(EXIF.orientation(fromTIFF: manyEntries), .rotated90CW) // found before running out
        manyEntries[22...23] = [0, 0] // hide the orientation tag: the scan must stop at the end
        XCTAssertNil(EXIF.orientation(fromTIFF: manyEntries))
    }

    /// 3x2 image whose pixel values are their index: 0 1 2 / 3 4 5.
    private let small = RGBImage(width: 3, height: 2, pixels: (0..<6).flatMap { [UInt8($0), 0, 0] })
    private func indices(_ image: RGBImage) -> [UInt8] { stride(from: 0, to: image.pixels.count, by: 3).map { image.pixels[$0] } }

    func testEachOrientationMovesPixelsAsEXIFDefines() {
        let expected: [EXIFOrientation: (Int, Int, [UInt8])] = [
            .up: (3, 2, [0, 1, 2, 3, 4, 5]),
            .mirrored: (3, 2, [2, 1, 0, 5, 4, 3]),
            .rotated180: (3, 2, [5, 4, 3, 2, 1, 0]),
            .flippedVertically: (3, 2, [3, 4, 5, 0, 1, 2]),
            .transposed: (2, 3, [0, 3, 1, 4, 2, 5]),
            .rotated90CW: (2, 3, [3, 0, 4, 1, 5, 2]),
            .transverse: (2, 3, [5, 2, 4, 1, 3, 0]),
            .rotated90CCW: (2, 3, [2, 5, 1, 4, 0, 3]),
        ]
        for orientation in EXIFOrientation.allCases {
            let out = small.oriented(orientation)
            let (w, h, order) = expected[orientation]!
            XCTAssertEqual([out.width, out.height], [w, h], "\(orientation)")
            XCTAssertEqual(indices(out), order, "\(orientation)")
        }
    }

    func testEveryOrientationFixtureIsDisplayedUpright() throws {
        let quadrants: [(Int, Int, (UInt8, UInt8, UInt8))] = [
            (12, 8, (255, 0, 0)), (36, 8, (0, 255, 0)), (12, 24, (0, 0, 255)), (36, 24, (255, 255, 255)),
        ]
        for n in 1...8 {
            let image = try ImageDecoder.decode(contentsOf: Paths.fixture("orientation/orient_\(n).jpg"))
            XCTAssertEqual([image.width, image.height], [48, 32], "orientation \(n)")
            for (x, y, c) in quadrants {
                let p = image[x: x, y: y]
                let distance = max(abs(Int(p.r) - Int(c.0)), abs(Int(p.g) - Int(c.1)), abs(Int(p.b) - Int(c.2)))
                XCTAssertLessThan(distance, 24, "orientation \(n): pixel (\(x), \(y)) is \(p), expected \(c)")
            }
        }
    }

    func testOrientationSixSwapsDimensionsUnlessDisabled() throws {
        let path = Paths.fixture("orientation/orient_6.jpg")
        let stored = try ImageDecoder.decode(contentsOf: path, options: DecodeOptions(appliesEXIFOrientation: false))
        XCTAssertEqual([stored.width, stored.height], [32, 48])
        let shown = try ImageDecoder.decode(contentsOf: path)
        XCTAssertEqual([shown.width, shown.height], [48, 32])
        XCTAssertEqual(shown, stored.oriented(.rotated90CW))
    }

    func testRocketSampleWithOrientationSixIsLandscape() throws {
        let image = try ImageDecoder.decode(contentsOf: Paths.sample("rocket-exif6.jpg"))
        XCTAssertEqual([image.width, image.height], [640, 427])
    }
}
