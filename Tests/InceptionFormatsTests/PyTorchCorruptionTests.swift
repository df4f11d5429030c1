import Foundation
import XCTest
@testable import InceptionFormats

final class PyTorchCorruptionTests: XCTestCase {
    /// Copies a pytorch fixture into a temporary directory, optionally changing its bytes.
    private func copy(_ name: String, as newName: String? = nil, _ change: ((inout [UInt8]) -> Void)? = nil) throws -> String {
        let directory = try temporaryDirectory(self)
        let path = directory.appendingPathComponent(newName ?? name).path
        var bytes = try readBytes(pytorchFixture(name))
        change?(&bytes)
        try writeBytes(bytes, path)
        return path
    }

    /// The absolute data range of one member of a fixture.
    private func range(of member: String, in name: String) throws -> Range<Int> {
        let archive = try ZipArchive(FileBytes.load(pytorchFixture(name)))
        return try archive.dataRange(of: XCTUnwrap(archive.entry(named: member)))
    }

    /// Opens `bytes` (as if read from `path`) and reads every convertible tensor; anything but a
    /// FormatError naming the file fails the test.
    private func openAndReadEverything(_ bytes: [UInt8], as path: String = "/tmp/mutated.pth",
                                       file: StaticString = #filePath, line: UInt = #line) -> Bool {
        do {
            let reader = try PyTorchReader(file: FileBytes(path: path, data: Data(bytes)))
            _ = try reader.readAll()
            return true
        } catch let error as FormatError {
            XCTAssertTrue(error.description.hasPrefix(path + ": "), "error does not name the file: \(error)", file: file, line: line)
            return false
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
            return false
        }
    }

    func testTruncatedArchivesAreErrors() throws {
        let full = try readBytes(pytorchFixture("state_dict.pth"))
        XCTAssertTrue(openAndReadEverything(full))
        for length in 0..<full.count {
            XCTAssertFalse(openAndReadEverything(Array(full[0..<length])), "a file cut to \(length) of \(full.count) bytes was accepted")
        }
        let path = try copy("state_dict.pth") { $0.removeLast($0.count / 2) }
        assertFormatError(try PyTorchReader(path: path), path: path, "no end-of-central-directory record", "truncated")
    }

    func testFlippedPickleByteFailsItsChecksum() throws {
        let pickle = try range(of: "state_dict/data.pkl", in: "state_dict.pth")
        let path = try copy("state_dict.pth") { $0[pickle.lowerBound + 40] ^= 0x20 }
        assertFormatError(try PyTorchReader(path: path), path: path, "state_dict/data.pkl", "CRC-32")
    }

    func testFlippedStorageByteFailsItsChecksumOnRead() throws {
        let storage = try range(of: "state_dict/data/0", in: "state_dict.pth")
        let path = try copy("state_dict.pth") { $0[storage.lowerBound + 5] ^= 0x01 }
        let reader = try PyTorchReader(path: path)  // storages are checked when read
        assertFormatError(try reader.tensor(named: "conv1.weight"), path: path, "state_dict/data/0", "CRC-32")
        XCTAssertNoThrow(try reader.tensor(named: "conv1.bias"))
    }

    func testEverySingleByteFlipIsAnErrorOrHarmless() throws {
        let full = try readBytes(pytorchFixture("state_dict.pth"))
        var accepted = 0
        for i in 0..<full.count {
            var bytes = full
            bytes[i] ^= 0xff
            if openAndReadEverything(bytes) { accepted += 1 }
        }
        // Only bytes nobody reads (padding, times, attributes, unread records) may change freely.
        XCTAssertLessThan(accepted, full.count / 2)
    }

    func testStorageTooShortForItsTensor() throws {
        let path = pytorchFixture("short_storage.pth")
        assertFormatError(try PyTorchReader(path: path), path: path, "short_storage/data/0 holds 16 bytes",
                          "6 float32 elements (24 bytes)", "too short")
    }

    func testViewReachingPastItsStorage() throws {
        let path = pytorchFixture("out_of_bounds.pth")
        assertFormatError(try PyTorchReader(path: path), path: path, "size [3, 3]", "reaches element 8", "holds 6 float32 elements")
    }

    func testCompressedArchiveIsRefused() throws {
        let path = pytorchFixture("compressed.pth")
        assertFormatError(try PyTorchReader(path: path), path: path, "compressed (deflate)", "stored")
    }

    func testEveryTruncationOfALegacyFileIsAnError() throws {
        let full = try readBytes(pytorchFixture("legacy.pt"))
        XCTAssertTrue(openAndReadEverything(full))
        for length in 0..<full.count {
            XCTAssertFalse(openAndReadEverything(Array(full[0..<length])), "a legacy file cut to \(length) of \(full.count) bytes was accepted")
        }
        let path = try copy("legacy.pt") { $0.removeLast(4) }
        assertFormatError(try PyTorchReader(path: path), path: path, "legacy storage", "runs past the end of the file")
    }

    func testEverySingleByteFlipOfALegacyFileIsHandled() throws {
        let full = try readBytes(pytorchFixture("legacy.pt"))
        for i in 0..<full.count {
            var bytes = full
            bytes[i] ^= 0xff
            _ = openAndReadEverything(bytes)
        }
    }

    func testTorchScriptArchiveIsRefusedWithAnExplanation() throws {
        let path = pytorchFixture("torchscript.pt")
        assertFormatError(try PyTorchReader(path: path), path: path, "TorchScript", "state_dict")
    }

    func testNonZipAndEmptyFiles() throws {
        let directory = try temporaryDirectory(self)
        let junk = directory.appendingPathComponent("junk.pth").path
        try writeBytes(Array("hello, not a zip".utf8), junk)
        assertFormatError(try PyTorchReader(path: junk), path: junk, "is not a PyTorch file", "PK")
        let empty = directory.appendingPathComponent("empty.pt").path
        try writeBytes([], empty)
        assertFormatError(try WeightFile.open(empty), path: empty, "empty")
        let missing = directory.appendingPathComponent("missing.pth").path
        assertFormatError(try PyTorchReader(path: missing), path: missing, "no such file")
    }

    func testCentralDirectoryOffsetPastTheEnd() throws {
        let path = try copy("wrapped.pth") { bytes in
            // The zip64 end record's central-directory offset (its last 8 bytes).
            let locator = bytes.count - 22 - 20
            var record = 0
            for i in 0..<8 { record |= Int(bytes[locator + 8 + i]) << (8 * i) }
            for i in 0..<8 { bytes[record + 48 + i] = 0x7f }
        }
        assertFormatError(try PyTorchReader(path: path), path: path, "central directory", "not inside the archive")
    }
}
