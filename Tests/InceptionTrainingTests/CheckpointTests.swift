import Foundation
import Inception
import XCTest
@testable import InceptionTraining

final class CheckpointTests: XCTestCase {
    struct RunOptions: Codable, Equatable {
        var batchSize: Int
        var optimizer: String
        var learningRate: Double
    }

    func checkpoint(step: Int, scale: Float = 1) -> RunCheckpoint {
        let tensors: [String: Tensor] = [
            "InceptionV1/Conv2d_1a_7x7/weights": Tensor(shape: [2, 2, 3, 4], scalars: (0..<48).map { Float($0) * 0.01 * scale }),
            "InceptionV1/Conv2d_1a_7x7/BatchNorm/moving_mean": Tensor(shape: [4], scalars: [1, -2, 3.5, Float(step)]),
            "optimizer/InceptionV1/Conv2d_1a_7x7/weights/RMSProp": Tensor(shape: [2, 2, 3, 4], scalars: Array(repeating: 0.5 * scale, count: 48)),
        ]
        return try! RunCheckpoint(tensors: tensors, step: step, epoch: step / 10, batchInEpoch: step % 10,
                                  randomState: ["dropout": UInt64.max - 5, "seed": 42],
                                  options: RunOptions(batchSize: 32, optimizer: "rmsprop", learningRate: 0.01),
                                  extra: ["note": "hello"])
    }

    func testARoundTripKeepsTensorsPositionRandomStateAndOptions() throws {
        let run = makeTemporaryDirectory(self, "run")
        let saved = checkpoint(step: 123)
        let path = try saved.save(in: run)
        XCTAssertEqual(path, run + "/checkpoint-latest.safetensors")
        let loaded = try RunCheckpoint.load(from: path)
        XCTAssertEqual(loaded.tensors, saved.tensors)
        XCTAssertEqual(loaded.step, 123)
        XCTAssertEqual(loaded.epoch, 12)
        XCTAssertEqual(loaded.batchInEpoch, 3)
        XCTAssertEqual(loaded.randomState, ["dropout": UInt64.max - 5, "seed": 42])
        XCTAssertEqual(try loaded.options(as: RunOptions.self), RunOptions(batchSize: 32, optimizer: "rmsprop", learningRate: 0.01))
        XCTAssertEqual(loaded.extra, ["note": "hello"])
        // A plain safetensors file: the weights open with the ordinary reader.
        XCTAssertEqual(try SafeTensors.read(path)["InceptionV1/Conv2d_1a_7x7/weights"], saved.tensors["InceptionV1/Conv2d_1a_7x7/weights"])
        // Nothing but the checkpoint in the folder (no temporary files).
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run), ["checkpoint-latest.safetensors"])
    }

    func testLatestFindsTheNewestCheckpoint() throws {
        let run = makeTemporaryDirectory(self, "run")
        XCTAssertNil(try RunCheckpoint.latest(in: run))
        for step in [10, 20, 30] { try checkpoint(step: step).save(in: run, keepLast: 5) }
        let found = try XCTUnwrap(try RunCheckpoint.latest(in: run, warning: { XCTFail("unexpected warning: \($0)") }))
        XCTAssertEqual(found.checkpoint.step, 30)
    }

    func testKeepLastDeletesOlderNumberedCheckpoints() throws {
        let run = makeTemporaryDirectory(self, "run")
        for step in [100, 200, 300, 400] { try checkpoint(step: step).save(in: run, keepLast: 2) }
        let names = try FileManager.default.contentsOfDirectory(atPath: run).sorted()
        XCTAssertEqual(names, ["checkpoint-00000300.safetensors", "checkpoint-00000400.safetensors", "checkpoint-latest.safetensors"])
        XCTAssertEqual(try RunCheckpoint.load(from: run + "/checkpoint-00000300.safetensors").step, 300)
    }

    func testATruncatedNewestCheckpointFallsBackToThePreviousOne() throws {
        let run = makeTemporaryDirectory(self, "run")
        try checkpoint(step: 10).save(in: run, keepLast: 3)
        try checkpoint(step: 20, scale: 2).save(in: run, keepLast: 3)
        // Cut the newest file short, as a crash during a non-atomic copy would.
        let latest = run + "/checkpoint-latest.safetensors"
        let size = try FileManager.default.attributesOfItem(atPath: latest)[.size] as! Int
        XCTAssertEqual(truncate(latest, off_t(size - 100)), 0)
        var warnings: [String] = []
        let found = try XCTUnwrap(try RunCheckpoint.latest(in: run, warning: { warnings.append($0) }))
        XCTAssertEqual(found.checkpoint.step, 10)
        XCTAssertEqual(found.checkpoint.tensors, checkpoint(step: 10).tensors)
        XCTAssertFalse(warnings.isEmpty)
        XCTAssertTrue(warnings.contains { $0.contains(latest) }, "\(warnings)")
    }

    func testDamagedDataIsCaughtByTheChecksum() throws {
        let run = makeTemporaryDirectory(self, "run")
        let path = try checkpoint(step: 5).save(in: run)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 7] ^= 0x40  // inside the last tensor's data; the length is unchanged
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = thrownError { _ = try RunCheckpoint.load(from: path) }
        XCTAssertTrue("\(error.map { "\($0)" } ?? "no error")".contains("checksum"), "\(String(describing: error))")
        XCTAssertThrowsError(try RunCheckpoint.latest(in: run, warning: { _ in }))
    }

    func testOnlyUnusableCheckpointsIsAnErrorNotAFreshStart() throws {
        let run = makeTemporaryDirectory(self, "run")
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: run + "/checkpoint-latest.safetensors"))
        let error = thrownError { _ = try RunCheckpoint.latest(in: run, warning: { _ in }) }
        XCTAssertTrue("\(String(describing: error))".contains("no usable checkpoint"), "\(String(describing: error))")
    }

    func testAnInterruptedWriteLeavesThePreviousCheckpointUsable() throws {
        let run = makeTemporaryDirectory(self, "run")
        try checkpoint(step: 7).save(in: run, keepLast: 1)
        // What a kill -9 during SafeTensors.write leaves: a partial hidden temporary file.
        let temporary = run + "/.checkpoint-latest.safetensors.tmp-999999-12345"
        try Data(repeating: 0x41, count: 1000).write(to: URL(fileURLWithPath: temporary))
        XCTAssertEqual(try RunCheckpoint.latest(in: run, warning: { XCTFail("unexpected warning: \($0)") })?.checkpoint.step, 7)
        // The next save clears it away.
        try checkpoint(step: 8).save(in: run, keepLast: 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary))
        XCTAssertEqual(try RunCheckpoint.latest(in: run)?.checkpoint.step, 8)
    }

    func testAFileThatIsNotARunCheckpointIsRejected() throws {
        let run = makeTemporaryDirectory(self, "run")
        let path = run + "/weights.safetensors"
        try SafeTensors.write(["w": Tensor(shape: [1], scalars: [1])], to: path)
        let error = thrownError { _ = try RunCheckpoint.load(from: path) }
        XCTAssertTrue("\(String(describing: error))".contains("not a run checkpoint"), "\(String(describing: error))")
    }

    // MARK: - kill -9 while writing

    /// Environment variable that turns `testCheckpointWriterChildProcess` into a checkpoint writer.
    static let writerEnvironment = "INCEPTION_TEST_CHECKPOINT_WRITER_DIR"

    /// In a child process (see below): resumes from the run folder's latest checkpoint and saves
    /// 24 MB checkpoints as fast as it can, until killed. In a normal test run it does nothing.
    func testCheckpointWriterChildProcess() throws {
        guard let run = ProcessInfo.processInfo.environment[Self.writerEnvironment] else { return }
        var step = (try RunCheckpoint.latest(in: run)?.checkpoint.step) ?? 0
        var big = Tensor(zeros: [6_000_000])
        while true {
            step += 1
            big.scalars[step % big.count] = Float(step)
            try RunCheckpoint(tensors: ["big": big, "step": Tensor(shape: [1], scalars: [Float(step)])],
                              step: step, epoch: step / 4, batchInEpoch: step % 4).save(in: run, keepLast: 2)
        }
    }

    func testKillDashNineWhileSavingNeverLeavesTheRunUnresumable() throws {
        #if os(Linux)
        let run = makeTemporaryDirectory(self, "kill9")
        let executable = CommandLine.arguments[0]
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw XCTSkip("the test runner \(executable) cannot be started as a child process")
        }
        var previous = 0
        var interrupted = 0  // rounds killed in the middle of a write (a temporary file was left)
        var generator = SeededGenerator(seed: 2024)
        for round in 0..<6 {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: executable)
            child.arguments = ["InceptionTrainingTests.CheckpointTests/testCheckpointWriterChildProcess"]
            var environment = ProcessInfo.processInfo.environment
            environment[Self.writerEnvironment] = run
            child.environment = environment
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            // Let it get past the previous round's step, then kill it at a random moment.
            let progressed = waitUntil(timeout: 60) {
                let step = (try? RunCheckpoint.Header(SafeTensorsReader(path: run + "/" + RunCheckpoint.latestFileName).metadata,
                                                       path: "").step) ?? 0
                return step > previous
            }
            XCTAssertTrue(progressed, "round \(round): the writer made no progress")
            usleep(UInt32(DataRandom.uniform(below: 150_000, using: &generator)))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            XCTAssertEqual(child.terminationReason, .uncaughtSignal)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []
            if names.contains(where: { $0.contains(".tmp-") }) { interrupted += 1 }

            let found = try XCTUnwrap(try RunCheckpoint.latest(in: run, warning: { XCTFail("round \(round): \($0)") }))
            XCTAssertGreaterThan(found.checkpoint.step, previous)
            XCTAssertEqual(found.checkpoint.tensors["step"]?.scalars, [Float(found.checkpoint.step)])
            XCTAssertEqual(found.checkpoint.tensors["big"]?.scalars[found.checkpoint.step % 6_000_000], Float(found.checkpoint.step))
            previous = found.checkpoint.step
        }
        print("kill -9 test: \(interrupted) of 6 kills landed in the middle of a checkpoint write")
        #else
        throw XCTSkip("needs the Linux test runner as a child process")
        #endif
    }
}
