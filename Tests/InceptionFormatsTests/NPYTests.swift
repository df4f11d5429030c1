import XCTest
import InceptionCore
@testable import InceptionFormats

final class NPYTests: XCTestCase {
    func testEveryFixtureDtypeReadsAsItsFloat32Values() throws {
        let want = expectedTensors("npy")
        XCTAssertEqual(want.count, 9)
        for (name, e) in want {
            let (tensor, info) = try NPY.readWithInfo(fixture("npy/\(name).npy"))
            XCTAssertEqual(tensor.shape, e.shape, name)
            XCTAssertEqual(tensor.scalars.map(\.bitPattern), e.values.map(\.bitPattern), name)
            XCTAssertEqual(info.dtype, e.dtype, name)  // the stored type, so callers can say it was converted
        }
    }

    func testVersion2And3HeadersAreRead() throws {
        let f4 = try NPY.read(fixture("npy/f4.npy"))
        XCTAssertEqual(try NPY.read(fixture("npy/v2_f4.npy")), f4)
        XCTAssertEqual(try NPY.read(fixture("npy/v3_f4.npy")), f4)
    }

    func testRoundTripIsExactAndReadableByTheSameLayoutNumpyWrites() throws {
        let dir = try temporaryDirectory(self)
        for shape in [[2, 3], [5], [], [0, 2], [1, 2, 3, 4]] {
            let n = shape.reduce(1, *)
            let t = Tensor(shape: shape, scalars: (0..<n).map { Float($0) * 0.37 - 1 })
            let path = dir.appendingPathComponent("t.npy").path
            try NPY.write(t, to: path)
            XCTAssertEqual(try NPY.read(path), t, "\(shape)")
            let bytes = try readBytes(path)
            XCTAssertEqual((bytes.count - 4 * n) % 64, 0, "header padded to 64 bytes")
        }
        // Byte-identical to what NumPy writes for the same array.
        let path = dir.appendingPathComponent("f4.npy").path
        try NPY.write(try NPY.read(fixture("npy/f4.npy")), to: path)
        XCTAssertEqual(try readBytes(path), try readBytes(fixture("npy/f4.npy")))
    }

    func testBigEndianIsRefused() {
        let path = fixture("npy/bad_big_endian_f4.npy")
        assertFormatError(try NPY.read(path), path: path, "big-endian", ">f4")
    }

    func testFortranOrderIsRefused() {
        let path = fixture("npy/bad_fortran_f4.npy")
        assertFormatError(try NPY.read(path), path: path, "fortran_order")
    }

    func testObjectDtypeIsRefused() {
        let path = fixture("npy/bad_object.npy")
        assertFormatError(try NPY.read(path), path: path, "object arrays")
    }

    func testStructuredDtypeIsRefused() {
        let path = fixture("npy/bad_structured.npy")
        assertFormatError(try NPY.read(path), path: path, "structured dtype")
    }

    func testHeaderClaimingMoreDataThanTheFileHoldsIsAnError() throws {
        let dir = try copyFixtures(["npy/f4.npy"], self)
        let path = dir.appendingPathComponent("f4.npy").path
        try mutate(path) { $0.removeLast(4) }
        assertFormatError(try NPY.read(path), path: path, "(24 bytes) but only 20 data bytes follow")
    }

    func testTrailingBytesAfterTheDataAreAnError() throws {
        let dir = try copyFixtures(["npy/f4.npy"], self)
        let path = dir.appendingPathComponent("f4.npy").path
        try mutate(path) { $0 += [0, 0, 0, 0, 0] }
        assertFormatError(try NPY.read(path), path: path, "5 trailing bytes")
    }

    /// A copy of f4.npy whose header claims `shape` (same header length, same 24 data bytes).
    private func withShape(_ shape: String) throws -> String {
        let dir = try copyFixtures(["npy/f4.npy"], self)
        let path = dir.appendingPathComponent("f4.npy").path
        var header = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }".utf8)
        header += [UInt8](repeating: 0x20, count: 117 - header.count) + [0x0a]
        try mutate(path) { $0.replaceSubrange(10..<128, with: header) }
        return path
    }

    func testShapeWhoseSizeOverflowsIsAnErrorNotACrash() throws {
        let path = try withShape("(4294967296, 4294967296, 4294967296)")
        assertFormatError(try NPY.read(path), path: path, "too large")
    }

    func testHugeShapeIsAnErrorNotAnAllocation() throws {
        let path = try withShape("(100000000000,)")
        assertFormatError(try NPY.read(path), path: path, "only 24 data bytes follow")
    }

    func testHeaderLengthPastTheEndIsAnError() throws {
        let dir = try copyFixtures(["npy/f4.npy"], self)
        let path = dir.appendingPathComponent("f4.npy").path
        try mutate(path) { $0[8] = 0xff; $0[9] = 0xff }
        assertFormatError(try NPY.read(path), path: path, "header length 65535 runs past the end")
    }

    func testMissingMagicAndEmptyFilesAreErrors() throws {
        let dir = try temporaryDirectory(self)
        let empty = dir.appendingPathComponent("empty.npy").path
        try writeBytes([], empty)
        assertFormatError(try NPY.read(empty), path: empty, "empty")
        let text = dir.appendingPathComponent("text.npy").path
        try writeBytes(Array("hello, world".utf8), text)
        assertFormatError(try NPY.read(text), path: text, "not a .npy file")
    }

    func testWeightFileOpensNpyAsOneVariableNamedAfterTheFile() throws {
        let reader = try WeightFile.open(fixture("npy/f8.npy"))
        XCTAssertEqual(reader.variables, [TensorInfo(name: "f8", dtype: "float64", shape: [2, 3], byteCount: 48)])
        XCTAssertEqual(try reader.tensor(named: "f8"), try NPY.read(fixture("npy/f8.npy")))
    }
}
