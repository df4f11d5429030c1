import Foundation
import Inception
import InceptionTraining
import XCTest

/// Whole runs on a tiny image folder (2 classes, 32x32 input): stopping at any step and resuming
/// from the last checkpoint must give exactly the weights of a run that was never stopped.
final class TrainingRunTests: XCTestCase {
    struct Stop: Error {}

    func configuration(_ data: String) -> TrainingRun.Configuration {
        var c = TrainingRun.Configuration(data: data)
        c.imageHeight = 32; c.imageWidth = 32
        c.batchSize = 4; c.epochs = 2
        c.validationSplit = 0.25
        c.checkpointEverySteps = 2
        c.augmentation = "slim"
        c.batchNormDecay = 0.9
        c.seed = 5
        return c
    }

    func testResumingAfterAnAbruptStopLosesNothingButTheStepsSinceTheCheckpoint() throws {
        let data = makeImageFolder(makeTemporaryDirectory(self), [("cats", 6), ("dogs", 6)])
        let whole = makeTemporaryDirectory(self, "whole"), stopped = makeTemporaryDirectory(self, "stopped")
        try TrainingRun(configuration: configuration(data), directory: whole, resume: false).run { _ in }

        // Stop abruptly in the middle of step 3 (after checkpoint 2, before any later one).
        XCTAssertThrowsError(try TrainingRun(configuration: configuration(data), directory: stopped, resume: false).run { event in
            if case .step(_, _, _, let result, _) = event, result.step == 3 { throw Stop() }
        })
        var resumedAt: Int?
        try TrainingRun(configuration: configuration(data), directory: stopped, resume: true).run { event in
            if case .started(_, _, _, _, let step) = event { resumedAt = step }
        }
        XCTAssertEqual(resumedAt, 2)
        let a = try SafeTensors.read(whole + "/model.safetensors"), b = try SafeTensors.read(stopped + "/model.safetensors")
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        for name in a.keys { XCTAssertEqual(a[name], b[name], name) }
        // The metrics log has each epoch once, as if never interrupted.
        XCTAssertEqual(try MetricsLog(runDirectory: stopped).read().records.map(\.epoch), [1, 2])
    }

    func testResumeWithoutACheckpointSaysSo() throws {
        let data = makeImageFolder(makeTemporaryDirectory(self), [("a", 2), ("b", 2)])
        XCTAssertThrowsError(try TrainingRun(configuration: configuration(data), directory: makeTemporaryDirectory(self, "empty"), resume: true)) {
            XCTAssertTrue("\($0)".contains("no checkpoint"), "\($0)")
        }
    }

    /// The finished model says how to use it: class names, input size, pooling.
    func testTheTrainedModelCarriesItsLabelsAndInputSize() throws {
        let data = makeImageFolder(makeTemporaryDirectory(self), [("cats", 3), ("dogs", 3)])
        let run = makeTemporaryDirectory(self, "run")
        var c = configuration(data)
        c.epochs = 1
        try TrainingRun(configuration: c, directory: run, resume: false).run { _ in }
        let metadata = try XCTUnwrap(ModelMetadata(WeightFile.open(run + "/model.safetensors")))
        XCTAssertEqual(metadata, ModelMetadata(classNames: ["cats", "dogs"], imageHeight: 32, imageWidth: 32, globalPool: true))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/curves.png"))
    }
}
