import Foundation
import XCTest
import InceptionImages

final class DecodingTests: XCTestCase {
    func testBaselineJPEGPixelsEqualTensorFlowDecodeJPEG() throws {
        let image = try ImageDecoder.decode(contentsOf: Paths.sample("cat.jpg"))
        let reference = try NPYArray(path: Paths.fixture("cat_decoded.npy"))
        XCTAssertEqual(reference.shape, [image.height, image.width, 3])
        XCTAssertEqual(maxByteDifference(image.pixels, reference.bytes), 0,
                       "pixels differ from tf.io.decode_jpeg (default dct_method, i.e. JDCT_IFAST)")
    }

    func testEveryJPEGSampleEqualsTensorFlowDefaultDecodeDigest() throws {
        let digests = try DecodeDigests.load()
        XCTAssertEqual(digests.jpeg.count, 4)
        for (name, expected) in digests.jpeg {
            // TensorFlow does not apply EXIF orientation, so compare the stored pixels.
            let options = DecodeOptions(appliesEXIFOrientation: false)
            let image = try ImageDecoder.decode(contentsOf: Paths.sample(name), options: options)
            XCTAssertEqual([image.width, image.height], [expected.width, expected.height], name)
            XCTAssertEqual(CRC32.checksum(image.pixels), expected.fast, "\(name): differs from TF's default decode")
        }
    }

    func testAccurateDCTEqualsTensorFlowIntegerAccurateDigest() throws {
        let digests = try DecodeDigests.load()
        for (name, expected) in digests.jpeg {
            let options = DecodeOptions(appliesEXIFOrientation: false, jpegDCT: .accurate)
            let image = try ImageDecoder.decode(contentsOf: Paths.sample(name), options: options)
            XCTAssertEqual(CRC32.checksum(image.pixels), expected.accurate,
                           "\(name): differs from TF's dct_method='INTEGER_ACCURATE'")
        }
    }

    func testProgressiveJPEGDecodes() throws {
        let image = try ImageDecoder.decode(contentsOf: Paths.sample("coffee-progressive.jpg"))
        XCTAssertEqual([image.width, image.height], [600, 400])
    }

    func testGrayscaleJPEGDecodesToThreeEqualChannels() throws {
        let image = try ImageDecoder.decode(contentsOf: Paths.sample("astronaut-gray.jpg"))
        XCTAssertEqual([image.width, image.height], [512, 512])
        for i in stride(from: 0, to: image.pixels.count, by: 3) {
            guard image.pixels[i] == image.pixels[i + 1] && image.pixels[i] == image.pixels[i + 2] else {
                return XCTFail("pixel \(i / 3) is not gray")
            }
        }
    }

    func testAdobeCMYKJPEGConvertsToRGB() throws {
        let image = try ImageDecoder.decode(contentsOf: Paths.fixture("cmyk.jpg"))
        XCTAssertEqual([image.width, image.height], [32, 32])
        let expected: [(Int, Int, (Int, Int, Int))] = [
            (8, 8, (255, 0, 0)), (24, 8, (0, 255, 0)), (8, 24, (0, 0, 255)), (24, 24, (255, 255, 255)),
        ]
        for (x, y, colour) in expected {
            let p = image[x: x, y: y]
            XCTAssertLessThanOrEqual(max(abs(Int(p.r) - colour.0), abs(Int(p.g) - colour.1), abs(Int(p.b) - colour.2)), 8,
                                     "pixel (\(x), \(y)) is \(p), expected \(colour)")
        }
    }

    func testRGBPNGEqualsTensorFlowDecodePNG() throws {
        let expected = try XCTUnwrap(DecodeDigests.load().png["chelsea.png"])
        let image = try ImageDecoder.decode(contentsOf: Paths.sample("chelsea.png"))
        XCTAssertEqual([image.width, image.height], [expected.width, expected.height])
        XCTAssertEqual(CRC32.checksum(image.pixels), expected.alpha_ignored)
    }

    func testRGBAPNGIsCompositedOntoWhite() throws {
        let expected = try XCTUnwrap(DecodeDigests.load().png["coffee-alpha.png"])
        let image = try ImageDecoder.decode(contentsOf: Paths.sample("coffee-alpha.png"))
        XCTAssertEqual(CRC32.checksum(image.pixels), expected.composited_on_white)
        let corner = image[x: 0, y: 0] // fully transparent
        XCTAssertTrue(corner == (255, 255, 255), "transparent corner is \(corner), expected white")
    }

    func testRGBAPNGWithAlphaIgnoredEqualsTensorFlowDecodePNG() throws {
        let expected = try XCTUnwrap(DecodeDigests.load().png["coffee-alpha.png"])
        let image = try ImageDecoder.decode(contentsOf: Paths.sample("coffee-alpha.png"), options: DecodeOptions(alpha: .ignore))
        XCTAssertEqual(CRC32.checksum(image.pixels), expected.alpha_ignored)
    }

    private func assertPNGFixtureDecodes(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let image = try ImageDecoder.decode(contentsOf: Paths.fixture("png/\(name).png"))
        let expected = try NPYArray(path: Paths.fixture("png/\(name)_expected.npy"))
        XCTAssertEqual([image.height, image.width, 3], expected.shape, file: file, line: line)
        XCTAssertEqual(image.pixels, expected.bytes, file: file, line: line)
    }

    func testPalettePNGWithTransparencyIsExpandedAndComposited() throws { try assertPNGFixtureDecodes("palette_trns") }
    func testOneBitGrayPNGIsExpandedTo0And255() throws { try assertPNGFixtureDecodes("gray_1bit") }
    func testGrayAlphaPNGIsComposited() throws { try assertPNGFixtureDecodes("gray_alpha") }
    func testSixteenBitRGBPNGIsRoundedTo8Bits() throws { try assertPNGFixtureDecodes("rgb16") }
    func testSixteenBitGrayAlphaPNGIsRoundedAndComposited() throws { try assertPNGFixtureDecodes("gray_alpha16") }
    func testInterlacedPNGIsDeinterlaced() throws { try assertPNGFixtureDecodes("rgb_interlaced") }

    func testDecodingDataEqualsDecodingTheFile() throws {
        let path = Paths.sample("cat.jpg")
        let fromFile = try ImageDecoder.decode(contentsOf: path)
        let fromData = try ImageDecoder.decode(data: Data(contentsOf: URL(fileURLWithPath: path)), name: "cat.jpg")
        let fromBytes = try ImageDecoder.decode(bytes: Paths.bytes(path), name: "cat.jpg")
        XCTAssertEqual(fromFile, fromData)
        XCTAssertEqual(fromFile, fromBytes)
    }

    func testJPEGMissingOnlyItsEndMarkerStillDecodes() throws {
        let bytes = try Paths.bytes(Paths.sample("cat.jpg"))
        XCTAssertEqual(Array(bytes.suffix(2)), [0xFF, 0xD9])
        let whole = try ImageDecoder.decode(bytes: bytes, name: "cat.jpg")
        let withoutEOI = try ImageDecoder.decode(bytes: Array(bytes.dropLast(2)), name: "cat.jpg")
        XCTAssertEqual(whole, withoutEOI)
    }

    func testLibraryVersionsAreReported() {
        XCTAssertTrue(ImageDecoder.libraryVersions.contains("libpng 1."), ImageDecoder.libraryVersions)
    }
}
