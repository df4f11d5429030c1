import XCTest
import InceptionCore
@testable import InceptionFormats

final class WeightFileTests: XCTestCase {
    func testV1AndV2CheckpointsHoldTheSameTensors() throws {
        let v1 = try WeightFile.readAll(fixture("v1/model.ckpt"))
        let v2 = try WeightFile.readAll(fixture("v2/model.ckpt"))
        XCTAssertEqual(Set(v2.keys).subtracting(v1.keys), ["extra/bfloat16_var"])
        for (name, t) in v1 { XCTAssertEqual(v2[name], t, name) }
    }

    func testCheckpointConvertedToSafetensorsReadsBackIdentically() throws {
        let all = try WeightFile.readAll(fixture("v2/model.ckpt"))
        let path = try temporaryDirectory(self).appendingPathComponent("converted.safetensors").path
        try SafeTensors.write(all, metadata: ["source": "v2/model.ckpt"], to: path)
        XCTAssertEqual(try WeightFile.readAll(path), all)
    }

    func testUnrecognisedFileErrorSaysWhatWasTried() throws {
        let dir = try temporaryDirectory(self)
        let path = dir.appendingPathComponent("weights.bin").path
        try writeBytes([UInt8](repeating: 7, count: 100), path)
        assertFormatError(try WeightFile.open(path), path: path, "unrecognised", "safetensors", ".index", "V1")
    }

    func testMissingPathErrorMentionsTheV2Index() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("nothing").path
        assertFormatError(try WeightFile.open(path), path: path, "no such file", "nothing.index")
    }

    func testDirectoryIsAnError() throws {
        let dir = try temporaryDirectory(self)
        assertFormatError(try WeightFile.open(dir.path), path: dir.path, "directory")
    }

    func testSafetensorsAndNpyAreDetectedByContentWithoutTheirSuffix() throws {
        let dir = try temporaryDirectory(self)
        let st = dir.appendingPathComponent("weights.st").path
        try SafeTensors.write(["a": Tensor(shape: [2], scalars: [1, 2])], to: st)
        XCTAssertTrue(try WeightFile.open(st) is SafeTensorsReader)
        let npy = dir.appendingPathComponent("array.bin").path
        try FileManager.default.copyItem(atPath: fixture("npy/f4.npy"), toPath: npy)
        XCTAssertTrue(try WeightFile.open(npy) is NPYReader)
    }

    func testFormatErrorDescriptionIsPathThenMessage() {
        let error = FormatError("/tmp/x.index", "block at offset 3 fails")
        XCTAssertEqual(error.description, "/tmp/x.index: block at offset 3 fails")
        XCTAssertEqual(error.localizedDescription, "/tmp/x.index: block at offset 3 fails")
    }
}
