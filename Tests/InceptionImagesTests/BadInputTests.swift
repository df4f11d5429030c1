import Foundation
import XCTest
import InceptionImages

final class BadInputTests: XCTestCase {
    func testEmptyFileIsRefusedByName() throws {
        let path = try Paths.temporaryFile(named: "empty.jpg", bytes: [])
        let error = assertImageError { _ = try ImageDecoder.decode(contentsOf: path) }
        XCTAssertEqual(error?.kind, .empty)
        XCTAssertEqual(error?.description, "\(path) is empty (0 bytes); expected a JPEG or PNG image")
    }

    func testMissingFileIsUnreadable() {
        let error = assertImageError { _ = try ImageDecoder.decode(contentsOf: "/nonexistent/photo.jpg") }
        XCTAssertEqual(error?.kind, .unreadable)
        XCTAssertTrue(error?.description.hasPrefix("/nonexistent/photo.jpg: cannot read the file") ?? false)
    }

    func testDirectoryIsUnreadable() {
        let error = assertImageError { _ = try ImageDecoder.decode(contentsOf: Paths.samples.path) }
        XCTAssertEqual(error?.kind, .unreadable)
    }

    func testTruncatedJPEGIsAnErrorNotGreyPixels() throws {
        let bytes = try Paths.bytes(Paths.sample("cat.jpg"))
        let error = assertImageError { _ = try ImageDecoder.decode(bytes: Array(bytes.prefix(bytes.count / 2)), name: "cat.jpg") }
        XCTAssertEqual(error?.kind, .truncated)
        XCTAssertEqual(error?.description,
                       "cat.jpg: truncated JPEG: the data ends before the image is complete (Premature end of JPEG file)")
    }

    func testTruncatedProgressiveJPEGIsAnError() throws {
        let bytes = try Paths.bytes(Paths.sample("coffee-progressive.jpg"))
        let error = assertImageError { _ = try ImageDecoder.decode(bytes: Array(bytes.prefix(bytes.count * 3 / 4)), name: "c.jpg") }
        XCTAssertEqual(error?.kind, .truncated)
    }

    func testProgressiveJPEGCutAtAScanBoundaryIsTruncated() throws {
        // Losing whole scans raises no libjpeg warning; it must still be an error.
        let bytes = try Paths.bytes(Paths.sample("coffee-progressive.jpg"))
        let scanStarts = (0..<bytes.count - 1).filter { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xDA }
        XCTAssertGreaterThan(scanStarts.count, 2)
        for cut in scanStarts.dropFirst() {
            let error = assertImageError { _ = try ImageDecoder.decode(bytes: Array(bytes.prefix(cut)), name: "c.jpg") }
            XCTAssertEqual(error?.kind, .truncated, "cut before the scan at byte \(cut)")
        }
    }

    func testBaselineJPEGCutAnywhereIsTruncated() throws {
        let bytes = try Paths.bytes(Paths.sample("cat.jpg"))
        for cut in stride(from: 3, to: bytes.count - 16, by: 701) {
            let error = assertImageError { _ = try ImageDecoder.decode(bytes: Array(bytes.prefix(cut)), name: "cat.jpg") }
            XCTAssertEqual(error?.kind, .truncated, "cut at byte \(cut)")
        }
    }

    func testProgressiveJPEGWithTooManyScansIsRefused() {
        let error = assertImageError {
            _ = try ImageDecoder.decode(contentsOf: Paths.sample("coffee-progressive.jpg"), options: DecodeOptions(maxProgressiveScans: 3))
        }
        XCTAssertEqual(error?.kind, .corrupt)
        XCTAssertTrue(error?.detail.contains("more than 3 scans") ?? false, error?.description ?? "")
    }

    func testJPEGCutInsideItsHeaderIsTruncated() throws {
        let bytes = try Paths.bytes(Paths.sample("cat.jpg"))
        for length in [3, 20, 200] {
            let error = assertImageError { _ = try ImageDecoder.decode(bytes: Array(bytes.prefix(length)), name: "cat.jpg") }
            XCTAssertEqual(error?.kind, .truncated, "cut at \(length) bytes")
        }
    }

    func testTruncatedPNGIsAnError() throws {
        let bytes = try Paths.bytes(Paths.sample("chelsea.png"))
        for length in [12, 40, bytes.count / 2] {
            let error = assertImageError { _ = try ImageDecoder.decode(bytes: Array(bytes.prefix(length)), name: "chelsea.png") }
            XCTAssertEqual(error?.kind, .truncated, "cut at \(length) bytes")
            XCTAssertTrue(error?.description.hasPrefix("chelsea.png: truncated PNG") ?? false, error?.description ?? "")
        }
    }

    func testPNGWithBadChecksumIsCorrupt() throws {
        var bytes = try Paths.bytes(Paths.fixture("png/rgb_interlaced.png"))
        bytes[bytes.count - 20] ^= 0x55 // inside the IDAT chunk
        let error = assertImageError { _ = try ImageDecoder.decode(bytes: bytes, name: "bad.png") }
        XCTAssertEqual(error?.kind, .corrupt)
    }

    func testJPEGWithImpossibleHeaderIsCorrupt() {
        // SOF0 announcing zero components.
        let bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x08, 0x08, 0x00, 0x10, 0x00, 0x10, 0x00, 0xFF, 0xD9]
        let error = assertImageError { _ = try ImageDecoder.decode(bytes: bytes, name: "bad.jpg") }
        XCTAssertEqual(error?.kind, .corrupt)
        XCTAssertTrue(error?.description.hasPrefix("bad.jpg: cannot decode JPEG: ") ?? false, error?.description ?? "")
    }

    func testRandomBytesAreNotAnImage() {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[0] = 0x3F
        let error = assertImageError { _ = try ImageDecoder.decode(bytes: bytes, name: "noise.bin") }
        XCTAssertEqual(error?.kind, .notAnImage)
        XCTAssertTrue(error?.description.hasPrefix("noise.bin is not a JPEG or PNG image (unrecognised content starting with bytes 3f ") ?? false,
                      error?.description ?? "")
    }

    func testGIFIsRefusedByName() {
        let gif = Array("GIF89a".utf8) + [0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x3B]
        let error = assertImageError { _ = try ImageDecoder.decode(bytes: gif, name: "anim.gif") }
        XCTAssertEqual(error?.kind, .unsupportedFormat(.gif))
        XCTAssertEqual(error?.description, "anim.gif is a GIF image; only JPEG and PNG are supported")
    }

    func testWebPIsRefusedByName() {
        let webp = Array("RIFF".utf8) + [0x1A, 0, 0, 0] + Array("WEBPVP8 ".utf8) + [UInt8](repeating: 0, count: 18)
        let error = assertImageError { _ = try ImageDecoder.decode(bytes: webp, name: "photo.webp") }
        XCTAssertEqual(error?.description, "photo.webp is a WebP image; only JPEG and PNG are supported")
    }

    func testOtherFormatsAreRecognisedByTheirFirstBytes() {
        func ftyp(_ brands: String...) -> [UInt8] {
            let body = Array(brands[0].utf8) + [0, 0, 0, 0] + brands.dropFirst().flatMap { Array($0.utf8) }
            return [0, 0, 0, UInt8(8 + body.count)] + Array("ftyp".utf8) + body
        }
        var bmp = Array("BM".utf8) + [UInt8](repeating: 0, count: 30)
        bmp[14] = 40
        let cases: [([UInt8], ImageFormat)] = [
            (bmp, .bmp),
            ([0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0], .tiff),
            ([0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8], .tiff),
            (ftyp("heic", "mif1", "heic"), .heic),
            (ftyp("mif1", "mif1", "heic"), .heic),
            (ftyp("avif", "mif1", "avif"), .avif),
            (ftyp("mif1", "avif"), .avif),
            (ftyp("mif1", "miaf"), .heif),
            ([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A], .jpeg2000),
            ([0xFF, 0x0A, 0xFA], .jpegXL),
            (Array("8BPS".utf8) + [0, 1], .psd),
            (Array("%PDF-1.7\n".utf8), .pdf),
            (Array("<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>".utf8), .svg),
        ]
        for (bytes, format) in cases {
            XCTAssertEqual(ImageFormat.detect(bytes), format)
            let error = assertImageError { _ = try ImageDecoder.decode(bytes: bytes, name: "f") }
            XCTAssertEqual(error?.kind, .unsupportedFormat(format))
        }
        let avif = assertImageError { _ = try ImageDecoder.decode(bytes: ftyp("avif"), name: "x.avif") }
        XCTAssertEqual(avif?.description, "x.avif is an AVIF image; only JPEG and PNG are supported")
    }

    /// A PNG made of the signature and an IHDR chunk (with a valid checksum), nothing else.
    private func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
        func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        let chunk = Array("IHDR".utf8) + be32(width) + be32(height) + [8, 2, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + be32(13) + chunk + be32(CRC32.checksum(chunk))
    }

    func testGiantPNGHeaderIsRefusedBeforeAllocating() {
        // 100000 x 100000 RGB would need 30 GB; the header alone must be enough to refuse it.
        let error = assertImageError { _ = try ImageDecoder.decode(bytes: pngHeader(width: 100_000, height: 100_000), name: "huge.png") }
        XCTAssertEqual(error?.kind, .tooManyPixels(width: 100_000, height: 100_000, limit: 100_000_000))
        XCTAssertEqual(error?.description,
                       "huge.png: PNG of 100000x100000 pixels (10000.0 megapixels) exceeds the limit of 100.0 megapixels "
                       + "(100000000 pixels); raise the maximum pixel count if the image is genuine")
    }

    func testGiantJPEGHeaderIsRefusedBeforeAllocating() {
        // SOI, SOF0 65000 x 65000 x 3 components, SOS: enough for jpeg_read_header.
        let sof: [UInt8] = [0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFD, 0xE8, 0xFD, 0xE8, 0x03,
                            0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]
        let sos: [UInt8] = [0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00]
        let bytes = [0xFF, 0xD8] + sof + sos + [UInt8](repeating: 0, count: 16) + [0xFF, 0xD9]
        let error = assertImageError { _ = try ImageDecoder.decode(bytes: bytes, name: "huge.jpg") }
        XCTAssertEqual(error?.kind, .tooManyPixels(width: 65000, height: 65000, limit: 100_000_000))
    }

    func testPixelLimitIsConfigurable() throws {
        let path = Paths.sample("cat.jpg")
        let error = assertImageError { _ = try ImageDecoder.decode(contentsOf: path, maxPixels: 451 * 300 - 1) }
        XCTAssertEqual(error?.kind, .tooManyPixels(width: 451, height: 300, limit: 451 * 300 - 1))
        XCTAssertNoThrow(try ImageDecoder.decode(contentsOf: path, maxPixels: 451 * 300))
    }

    func testDamagedFilesThrowOrDecodeButNeverCrash() throws {
        var generator = SplitMix64(seed: 42)
        for name in ["cat.jpg", "coffee-progressive.jpg", "chelsea.png"] {
            let original = try Paths.bytes(Paths.sample(name))
            for _ in 0..<60 {
                var bytes = original
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    bytes[Int.random(in: 2..<min(bytes.count, 2000), using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
                if Bool.random(using: &generator) { bytes = Array(bytes.prefix(Int.random(in: 4..<bytes.count, using: &generator))) }
                do {
                    let image = try ImageDecoder.decode(bytes: bytes, name: name, options: DecodeOptions(maxPixels: 4_000_000))
                    XCTAssertEqual(image.pixels.count, image.width * image.height * 3)
                } catch {
                    XCTAssertFalse(error.description.isEmpty)
                }
            }
        }
    }
}

/// A small seeded generator, so the damage test is repeatable.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
