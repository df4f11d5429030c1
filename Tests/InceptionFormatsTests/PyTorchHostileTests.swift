import Foundation
import XCTest
@testable import InceptionFormats

/// Runs `bytes` on the restricted pickle machine.
func runPickle(_ bytes: [UInt8], limits: PickleMachine.Limits = .init()) throws -> (PickleMachine, PickleValue) {
    var machine = PickleMachine(bytes: bytes, name: "test/data.pkl", limits: limits)
    let value = try machine.run()
    return (machine, value)
}

/// Asserts that running `bytes` fails with a message containing every fragment.
func assertPickleError(_ bytes: [UInt8], limits: PickleMachine.Limits = .init(), _ fragments: String...,
                       file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try runPickle(bytes, limits: limits)
        XCTFail("expected a PickleError mentioning \(fragments)", file: file, line: line)
    } catch let error as PickleError {
        for fragment in fragments {
            XCTAssertTrue(error.message.contains(fragment), "message lacks \"\(fragment)\": \(error.message)", file: file, line: line)
        }
    } catch {
        XCTFail("expected a PickleError, got \(error)", file: file, line: line)
    }
}

/// Pickle opcode helpers for hand-built inputs.
enum P {
    static let proto2: [UInt8] = [0x80, 0x02]
    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
    static func unicode(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        return [0x58] + withUnsafeBytes(of: UInt32(b.count).littleEndian) { [UInt8]($0) } + b
    }
    static func int1(_ n: UInt8) -> [UInt8] { [0x4b, n] }
    static let stop: [UInt8] = [0x2e]
}

final class PyTorchHostileTests: XCTestCase {
    private func hostile(_ name: String) -> (path: String, refused: String, marker: String?) {
        let all = pytorchExpected["hostile"] as! [String: Any]
        let entry = all[name] as! [String: Any]
        return (pytorchFixture(name), entry["refused"] as! String, entry["marker"] as? String)
    }

    /// Opens a hostile fixture, expects the refusal naming `refused`, and checks the payload's
    /// marker file was not created.
    private func assertRefused(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let h = hostile(name)
        if let marker = h.marker { try? FileManager.default.removeItem(atPath: marker) }
        assertFormatError(try PyTorchReader(path: h.path), path: h.path, "refuses to load", h.refused, file: file, line: line)
        assertFormatError(try WeightFile.open(h.path), path: h.path, "refuses to load", h.refused, file: file, line: line)
        if let marker = h.marker {
            XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "\(marker) exists: the payload ran", file: file, line: line)
        }
    }

    func testRefusesOsSystemWithTheExactMessage() throws {
        try assertRefused("hostile_os_system.pth")
        let path = pytorchFixture("hostile_os_system.pth")
        XCTAssertThrowsError(try PyTorchReader(path: path)) { error in
            XCTAssertEqual((error as? FormatError)?.description,
                           "\(path): refuses to load: the pickle references os.system, which a state_dict never needs (only tensors and ordered dicts are allowed)")
        }
    }

    func testRefusesBuiltinsEvalThroughStackGlobal() throws {
        try assertRefused("hostile_builtins_eval.pth")
    }

    func testRefusesSubprocessHiddenAfterARealTensor() throws {
        try assertRefused("hostile_subprocess.pth")
    }

    func testRefusesPosixSystemInTheLegacyFormat() throws {
        try assertRefused("hostile_legacy.pt")
    }

    func testRefusesMarkBomb() throws {
        try assertRefused("hostile_mark_bomb.pth")
    }

    func testRefusesNestingBomb() throws {
        try assertRefused("hostile_nesting_bomb.pth")
    }

    func testRefusesPosixSystem() {
        assertPickleError(P.proto2 + P.global("posix", "system") + P.unicode("true") + [0x85, 0x52] + P.stop,
                          "refuses to load: the pickle references posix.system")
    }

    func testRefusesGlobalsOutsideTheAllowListEvenFromTorch() {
        // Allowed by torch.load(weights_only=True) or merely torch-looking, but not a state_dict's.
        for (module, name) in [("torch", "load"), ("torch._utils", "_rebuild_qtensor"), ("torch.storage", "_load_from_bytes"),
                               ("torch", "QInt8Storage"), ("builtins", "getattr"), ("collections", "defaultdict"),
                               ("numpy.core.multiarray", "_reconstruct"), ("__builtin__", "eval")] {
            assertPickleError(P.proto2 + P.global(module, name) + P.stop, "refuses to load", "\(module).\(name)")
        }
    }

    func testRefusesInstByName() {
        assertPickleError(P.proto2 + [0x28] + Array("ios\nsystem\n".utf8) + P.stop, "refuses to load", "os.system")
    }

    func testRefusesObjectConstructionAndExtensions() {
        let dict = P.global("collections", "OrderedDict")
        assertPickleError(P.proto2 + dict + [0x29, 0x81] + P.stop, "NEWOBJ", "refuses to load")
        assertPickleError(P.proto2 + [0x28] + dict + [0x6f] + P.stop, "OBJ", "refuses to load")
        assertPickleError(P.proto2 + [0x82, 0x01] + P.stop, "EXT1", "extension registry")
    }

    func testRefusesCallingAStorageClassOrDtype() {
        assertPickleError(P.proto2 + P.global("torch", "FloatStorage") + [0x29, 0x52] + P.stop,
                          "REDUCE calls torch.FloatStorage")
        assertPickleError(P.proto2 + P.global("torch", "float32") + [0x29, 0x52] + P.stop, "REDUCE calls torch.float32")
    }

    func testRefusesBuildOnAnythingButADict() {
        assertPickleError(P.proto2 + [0x5d, 0x7d, 0x62] + P.stop, "BUILD", "a list")
    }

    func testRefusesNonStoragePersistentIds() {
        let id = [0x28] + P.unicode("module") + P.global("torch", "FloatStorage") + P.unicode("0") + P.unicode("cpu") + P.int1(1) + [0x74]
        assertPickleError(P.proto2 + id + [0x51] + P.stop, "persistent id of kind \"module\"")
        let badKey = [0x28] + P.unicode("storage") + P.global("torch", "FloatStorage") + P.unicode("../../etc/passwd") + P.unicode("cpu") + P.int1(1) + [0x74]
        assertPickleError(P.proto2 + badKey + [0x51] + P.stop, "not a plain record name")
    }

    func testStackAndMemoLimits() {
        var limits = PickleMachine.Limits()
        limits.maxStack = 100
        assertPickleError(P.proto2 + [UInt8](repeating: 0x4e, count: 101) + P.stop, limits: limits, "stack grows past 100")
        limits.maxMemo = 3
        var memo = P.proto2 + [0x4e]
        for i in 0..<5 { memo += [0x71, UInt8(i)] }
        assertPickleError(memo + P.stop, limits: limits, "memo grows past 3")
    }

    func testMalformedPicklesAreErrorsNotCrashes() {
        assertPickleError(P.proto2 + [0x4e], "without a STOP")
        assertPickleError(P.proto2 + [0x58, 0xff, 0xff, 0xff, 0x7f, 0x41] + P.stop, "runs past the end")
        assertPickleError(P.proto2 + [0x68, 0x07] + P.stop, "memo entry 7 was never stored")
        assertPickleError(P.proto2 + [0x74] + P.stop, "no MARK")
        assertPickleError(P.proto2 + [0x28, 0x52] + P.stop, "stack underflow")
        assertPickleError(P.proto2 + [0x73] + P.stop, "stack underflow")
        assertPickleError(P.proto2 + [0x4e, 0x4e, 0x4e, 0x73] + P.stop, "SETITEM target is None")
        assertPickleError(P.proto2 + [0x8c, 0x02, 0xc3, 0x28] + P.stop, "not valid UTF-8")
        assertPickleError(P.proto2 + [0x8a, 0x09] + [UInt8](repeating: 1, count: 9) + P.stop, "too large")
        assertPickleError(P.proto2 + [0xff] + P.stop, "0xff", "unsupported opcode")
    }

    func testEveryTruncationOfARealPickleIsAnError() throws {
        let path = pytorchFixture("state_dict.pth")
        let archive = try ZipArchive(FileBytes.load(path))
        let pickle = try archive.read(archive.entry(named: "state_dict/data.pkl")!, limit: 1 << 20)
        XCTAssertNoThrow(try runPickle(pickle))
        for length in 0..<pickle.count {
            XCTAssertThrowsError(try runPickle(Array(pickle[0..<length])), "length \(length)") { error in
                XCTAssertTrue(error is PickleError)
            }
        }
    }

    func testEverySingleByteChangeOfARealPickleIsHandled() throws {
        let path = pytorchFixture("state_dict.pth")
        let archive = try ZipArchive(FileBytes.load(path))
        let pickle = try archive.read(archive.entry(named: "state_dict/data.pkl")!, limit: 1 << 20)
        for i in 0..<pickle.count {
            for value: UInt8 in [0x00, 0x63, 0xff, pickle[i] ^ 0x01] {
                var mutated = pickle
                mutated[i] = value
                do { _ = try runPickle(mutated) } catch is PickleError {} catch { XCTFail("byte \(i): \(error)") }
            }
        }
    }
}
