import Foundation
import Inception
import XCTest
@testable import InceptionTraining

final class DataBatchLoaderTests: XCTestCase {
    /// 3 classes, 23 images.
    func makeData() throws -> ImageFolderDataset {
        let root = makeImageFolder(makeTemporaryDirectory(self), [("a", 9), ("b", 7), ("c", 7)], size: (20, 16))
        return try ImageFolderDataset(root: root)
    }

    let training = BatchLoader.Mode.training(TrainingAugmentation(height: 16, width: 16))

    func drain(_ loader: BatchLoader) throws -> [BatchLoader.Batch] {
        var batches: [BatchLoader.Batch] = []
        while let b = try loader.next() { batches.append(b) }
        return batches
    }

    func testTheEpochOrderIsReproducibleAndChangesFromEpochToEpoch() {
        let a = BatchLoader.order(sampleCount: 50, epoch: 3, seed: 9)
        XCTAssertEqual(a, BatchLoader.order(sampleCount: 50, epoch: 3, seed: 9))
        XCTAssertEqual(a.sorted(), Array(0..<50))
        XCTAssertNotEqual(a, BatchLoader.order(sampleCount: 50, epoch: 4, seed: 9))
        XCTAssertNotEqual(a, BatchLoader.order(sampleCount: 50, epoch: 3, seed: 10))
        XCTAssertEqual(BatchLoader.order(sampleCount: 5, epoch: 3, seed: 9, shuffle: false), [0, 1, 2, 3, 4])
    }

    func testAnEpochYieldsEveryImageOnceInTheSeededOrder() throws {
        let data = try makeData()
        let options = BatchLoader.Options(batchSize: 5, seed: 11)
        let loader = BatchLoader(samples: data.training, mode: training, options: options, epoch: 2)
        let batches = try drain(loader)
        XCTAssertEqual(batches.map(\.count), [5, 5, 5, 5, 3])
        XCTAssertEqual(batches.map(\.index), [0, 1, 2, 3, 4])
        XCTAssertEqual(batches.flatMap(\.sampleIndices), BatchLoader.order(sampleCount: 23, epoch: 2, seed: 11))
        XCTAssertEqual(loader.batchesPerEpoch, 5)
        XCTAssertEqual(loader.imagesDelivered, 23)
        for b in batches {
            XCTAssertEqual(b.images.shape, [b.count, 16, 16, 3])
            XCTAssertEqual(b.labels, b.sampleIndices.map { data.training[$0].label })
            XCTAssertEqual(b.paths, b.sampleIndices.map { data.training[$0].path })
            XCTAssertTrue(b.images.scalars.allSatisfy { $0 >= -1 && $0 <= 1 })
        }
    }

    func testThePartialLastBatchCanBeDropped() throws {
        let data = try makeData()
        let loader = BatchLoader(samples: data.training, mode: training,
                                 options: .init(batchSize: 5, keepPartialBatch: false, seed: 11), epoch: 0)
        XCTAssertEqual(loader.batchesPerEpoch, 4)
        XCTAssertEqual(loader.imagesPerEpoch, 20)
        XCTAssertEqual(try drain(loader).map(\.count), [5, 5, 5, 5])
    }

    func testTheSameEpochTwiceGivesIdenticalBatches() throws {
        let data = try makeData()
        let options = BatchLoader.Options(batchSize: 6, seed: 3)
        let first = try drain(BatchLoader(samples: data.training, mode: training, options: options, epoch: 1))
        let second = try drain(BatchLoader(samples: data.training, mode: training, options: options, epoch: 1))
        XCTAssertEqual(first.map(\.images), second.map(\.images))
        XCTAssertEqual(first.map(\.labels), second.map(\.labels))
        let other = try drain(BatchLoader(samples: data.training, mode: training, options: options, epoch: 2))
        XCTAssertNotEqual(first.map(\.sampleIndices), other.map(\.sampleIndices))
    }

    func testResumingMidEpochYieldsTheSameRemainingBatches() throws {
        let data = try makeData()
        let options = BatchLoader.Options(batchSize: 4, seed: 21)
        let full = try drain(BatchLoader(samples: data.training, mode: training, options: options, epoch: 5))
        let resumed = BatchLoader(samples: data.training, mode: training, options: options, epoch: 5, startingAtBatch: 3)
        XCTAssertEqual(resumed.nextBatchIndex, 3)
        XCTAssertEqual(resumed.batchCount, full.count - 3)
        let rest = try drain(resumed)
        XCTAssertEqual(rest.map(\.index), Array(3..<full.count))
        XCTAssertEqual(rest.map(\.images), full.dropFirst(3).map(\.images))
        XCTAssertEqual(rest.map(\.paths), full.dropFirst(3).map(\.paths))
        // Resuming past the end yields nothing.
        XCTAssertNil(try BatchLoader(samples: data.training, mode: training, options: options, epoch: 5, startingAtBatch: 99).next())
    }

    func testStoppingEarlyLeavesNoWorkerThreads() throws {
        let data = try makeData()
        let loader = BatchLoader(samples: data.training, mode: training,
                                 options: .init(batchSize: 2, prefetchBatches: 2, workerThreads: 3, seed: 1), epoch: 0)
        XCTAssertNotNil(try loader.next())
        XCTAssertGreaterThan(threadCount(named: BatchLoader.workerThreadName) ?? 1, 0)
        let started = Date()
        loader.stop()
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        XCTAssertEqual(loader.liveWorkerCount, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { (threadCount(named: BatchLoader.workerThreadName) ?? 0) == 0 },
                      "worker threads still running")
        XCTAssertNil(try loader.next())
    }

    func testDroppingALoaderMidEpochStopsItsWorkers() throws {
        let data = try makeData()
        var loader: BatchLoader? = BatchLoader(samples: data.training, mode: training,
                                               options: .init(batchSize: 2, workerThreads: 2, seed: 1), epoch: 0)
        XCTAssertNotNil(try loader!.next())
        loader = nil
        XCTAssertTrue(waitUntil(timeout: 5) { (threadCount(named: BatchLoader.workerThreadName) ?? 0) == 0 },
                      "worker threads outlived their loader")
    }

    func testPrefetchIsBoundedAheadOfASlowConsumer() throws {
        let data = try makeData()
        let loader = BatchLoader(samples: data.training, mode: training,
                                 options: .init(batchSize: 1, prefetchBatches: 2, workerThreads: 4, seed: 1), epoch: 0)
        defer { loader.stop() }
        XCTAssertNotNil(try loader.next())
        usleep(300_000)  // the consumer "trains" while workers run ahead
        XCTAssertLessThanOrEqual(loader.batchesStartedAhead, 2)
        XCTAssertEqual(loader.batchesStartedAhead, 2)
    }

    func testAnUnreadableImageFoundWhileLoadingIsAnErrorNamingIt() throws {
        let data = try makeData()
        let bad = data.training[4].path
        writeCorruptImage(to: bad)  // damaged after the data set was checked
        let loader = BatchLoader(samples: data.training, mode: training, options: .init(batchSize: 4, shuffle: false), epoch: 0)
        XCTAssertNotNil(try loader.next())
        let error = thrownError { _ = try loader.next() }
        guard case let .badImages(errors)? = error as? DatasetError else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(errors.first?.file, bad)
        XCTAssertTrue(waitUntil(timeout: 5) { loader.liveWorkerCount == 0 })
    }

    func testUnreadableImagesAreSkippedAndCountedWhenAsked() throws {
        let data = try makeData()
        writeCorruptImage(to: data.training[4].path)
        writeCorruptImage(to: data.training[7].path, truncatedPNG: false)
        let loader = BatchLoader(samples: data.training, mode: training,
                                 options: .init(batchSize: 4, shuffle: false, skipBadImages: true), epoch: 0)
        let batches = try drain(loader)
        XCTAssertEqual(batches.map(\.count).reduce(0, +), 21)
        XCTAssertEqual(batches[1].count, 2)
        XCTAssertEqual(batches[1].images.shape, [2, 16, 16, 3])
        XCTAssertEqual(loader.skippedImages.map(\.path), [data.training[4].path, data.training[7].path])
    }

    func testEvaluationModeIsThePlainEvalPreprocessing() throws {
        let data = try makeData()
        let eval = Preprocessing(height: 16, width: 16, centralFraction: 0.875, resizeCenters: .legacyTF1)
        let loader = BatchLoader(samples: data.training, mode: .evaluation(eval),
                                 options: .init(batchSize: 8, shuffle: false), epoch: 0)
        let batches = try drain(loader)
        XCTAssertEqual(batches.flatMap(\.sampleIndices), Array(0..<23))
        let expected = try eval.batch(contentsOf: Array(data.training.prefix(8)).map(\.path))
        XCTAssertEqual(batches[0].images, expected)
        // The shared evaluation path itself is slim's: 87.5 % central crop, TF1 bilinear, [-1, 1].
        XCTAssertEqual(Preprocessing.inceptionEval.centralFraction, 0.875)
        XCTAssertEqual(Preprocessing.inceptionEval.resizeCenters, .legacyTF1)
        XCTAssertEqual(Preprocessing.inceptionEval.normalization, .inception)
    }
}
