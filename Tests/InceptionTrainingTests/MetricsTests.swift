import Foundation
import Inception
import XCTest
@testable import InceptionTraining

final class MetricsTests: XCTestCase {
    func record(_ epoch: Int, step: Int, kind: MetricsRecord.Kind = .epoch) -> MetricsRecord {
        MetricsRecord(kind: kind, epoch: epoch, step: step, trainLoss: 2.0 / Double(epoch + 1), trainTop1: 0.1 * Double(epoch),
                      validationLoss: 2.2 / Double(epoch + 1), validationTop1: 0.08 * Double(epoch), validationTop5: 0.5,
                      learningRate: 0.01, imagesPerSecond: 12.5, seconds: 30, time: "2025-01-01T00:00:00Z")
    }

    func testAppendedRecordsReadBackInOrder() throws {
        let log = MetricsLog(runDirectory: makeTemporaryDirectory(self, "run"))
        let records = (1...3).map { record($0, step: $0 * 10) }
        for r in records { try log.append(r) }
        let contents = try log.read()
        XCTAssertEqual(contents.records, records)
        XCTAssertFalse(contents.truncatedLastLine)
        let text = try String(contentsOfFile: log.path, encoding: .utf8)
        XCTAssertEqual(text.split(separator: "\n").count, 3)
        XCTAssertTrue(text.hasPrefix("{\"epoch\":1,"), text)
        XCTAssertTrue(text.contains("\"val_top5\":0.5"), text)
    }

    func testATruncatedLastLineIsToleratedAndTheNextRecordStartsOnItsOwnLine() throws {
        let log = MetricsLog(runDirectory: makeTemporaryDirectory(self, "run"))
        try log.append(record(1, step: 10))
        try log.append(record(2, step: 20))
        // A kill in the middle of writing the third line.
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: log.path))
        handle.seekToEndOfFile()
        handle.write(Data("{\"epoch\":3,\"kind\":\"ep".utf8))
        handle.closeFile()
        var contents = try log.read()
        XCTAssertEqual(contents.records.map(\.epoch), [1, 2])
        XCTAssertTrue(contents.truncatedLastLine)
        XCTAssertEqual(contents.malformedLines, [])
        // Appending after it does not glue the new record onto the broken line.
        try log.append(record(3, step: 30))
        contents = try log.read()
        XCTAssertEqual(contents.records.map(\.epoch), [1, 2, 3])
        XCTAssertEqual(contents.malformedLines, [3])
        XCTAssertFalse(contents.truncatedLastLine)
    }

    func testRewindKeepsRecordsUpToTheCheckpointStep() throws {
        let log = MetricsLog(runDirectory: makeTemporaryDirectory(self, "run"))
        for (i, step) in [5, 10, 15, 20].enumerated() { try log.append(record(i, step: step, kind: .step)) }
        try Data("{\"broken".utf8).append(to: log.path)
        let kept = try log.rewind(toStep: 12)
        XCTAssertEqual(kept.map(\.step), [5, 10])
        let contents = try log.read()
        XCTAssertEqual(contents.records.map(\.step), [5, 10])
        XCTAssertFalse(contents.truncatedLastLine)
    }

    func testNonFiniteNumbersRoundTrip() throws {
        let log = MetricsLog(runDirectory: makeTemporaryDirectory(self, "run"))
        var r = record(1, step: 1)
        r.trainLoss = .nan
        r.validationLoss = .infinity
        try log.append(r)
        let back = try XCTUnwrap(log.read().records.first)
        XCTAssertTrue(back.trainLoss!.isNaN)
        XCTAssertEqual(back.validationLoss, .infinity)
    }

    func testAMissingFileReadsAsEmpty() throws {
        XCTAssertEqual(try MetricsLog(path: "/nonexistent/metrics.jsonl").read().records, [])
    }

    // MARK: - EvaluationReport

    func testEvaluationReportCountsTop1Top5PerClassAndConfusion() {
        // 6 classes so top-5 is a real cut; 4 images.
        let names = ["a", "b", "c", "d", "e", "f"]
        let logits = Tensor(shape: [4, 6], scalars: [
            9, 1, 0, 0, 0, 0,  // label 0 → predicted 0 ✓
            0, 1, 9, 0, 0, 0,  // label 1 → predicted 2 ✗, label second → top-5 ✓
            6, 5, 4, 3, 2, 1,  // label 5 → predicted 0 ✗, label last → top-5 ✗
            0, 0, 0, 0, 0, 7,  // label 5 → predicted 5 ✓
        ])
        let report = EvaluationReport(logits: logits, labels: [0, 1, 5, 5], classNames: names)
        XCTAssertEqual(report.count, 4)
        XCTAssertEqual(report.top1, 0.5)
        XCTAssertEqual(report.top5, 0.75)
        XCTAssertEqual(report.confusion[0][0], 1)
        XCTAssertEqual(report.confusion[1][2], 1)
        XCTAssertEqual(report.confusion[5], [1, 0, 0, 0, 0, 1])
        XCTAssertEqual(report.perClass.map(\.count), [1, 1, 0, 0, 0, 2])
        XCTAssertEqual(report.perClass.map(\.accuracy), [1, 0, nil, nil, nil, 0.5])
        XCTAssertEqual(report.meanClassAccuracy, 0.5)
        XCTAssertTrue(report.summary.contains("top-1  50.0%"), report.summary)
        let json = try! report.json()
        XCTAssertTrue(json.contains("\"top1\":0.5") && json.contains("\"confusion\":[[1,0,0,0,0,0]"), json)
    }

    func testEvaluationLossIsTheMeanSoftmaxCrossEntropy() {
        let logits = Tensor(shape: [2, 3], scalars: [1, 2, 3, 0, 0, 0])
        let report = EvaluationReport(logits: logits, labels: [2, 1], classNames: ["x", "y", "z"])
        let first = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3
        let second = log(3.0)
        XCTAssertEqual(report.loss, (first + second) / 2, accuracy: 1e-9)
    }

    func testTiesAtTheTopKBoundaryCountAsInTopK() {
        // All equal: in_top_k counts the label as within the top 5 even with 7 classes.
        let report = EvaluationReport(logits: Tensor(repeating: 1, shape: [1, 7]), labels: [6],
                                      classNames: (0..<7).map { "c\($0)" })
        XCTAssertEqual(report.top5, 1)
        XCTAssertEqual(report.top1, 0)  // arg-max picks the first
    }

    func testBatchesAddUpToTheWholeAndNaNRowsCountAsWrong() {
        let names = ["a", "b"]
        var report = EvaluationReport(classNames: names)
        report.add(logits: Tensor(shape: [1, 2], scalars: [1, 0]), labels: [0])
        report.add(logits: Tensor(shape: [1, 2], scalars: [.nan, 0]), labels: [1])
        XCTAssertEqual(report.count, 2)
        XCTAssertEqual(report.top1, 0.5)
        XCTAssertEqual(report.invalidCount, 1)
        XCTAssertTrue(report.loss.isNaN)
        XCTAssertEqual(report.perClass.map(\.count), [1, 1])
        var other = EvaluationReport(classNames: names)
        other.add(logits: Tensor(shape: [1, 2], scalars: [0, 3]), labels: [1])
        report.merge(other)
        XCTAssertEqual(report.count, 3)
        XCTAssertEqual(report.confusion, [[1, 0], [0, 1]])
    }
}

extension Data {
    fileprivate func append(to path: String) throws {
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(self)
        handle.closeFile()
    }
}
