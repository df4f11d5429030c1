import Foundation
import Inception
import XCTest

/// The pretrained weights store against a local HTTP server (the real URL is never contacted):
/// a small tarball with a fake `inception_v1.ckpt`, built by the system tar in each test.
final class PretrainedWeightsTests: XCTestCase {
    private var scratch = ""
    private var cache = ""
    private var checkpoint = Data()
    private var archive = Data()

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("PretrainedWeightsTests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        cache = scratch + "/cache"  // created by the store when needed
        var generator = SystemRandomNumberGenerator()
        checkpoint = Data((0..<6000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        archive = try makeTarball(["inception_v1.ckpt": checkpoint])
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    // MARK: - Downloading

    func testFirstEnsureDownloadsVerifiesUnpacksAndReportsProgress() throws {
        let server = try serve(["/w.tar.gz": .body(archive)])
        let weights = try describe(archive, at: server.url("/w.tar.gz"))
        var reports: [(done: Int64, total: Int64?)] = []

        let path = try store().ensure(weights) { reports.append(($0, $1)) }

        XCTAssertEqual(path, cache + "/test_weights_2024/inception_v1.ckpt")
        XCTAssertEqual(FileManager.default.contents(atPath: path), checkpoint)
        XCTAssertEqual(server.requestedPaths, ["/w.tar.gz"])
        XCTAssertFalse(reports.isEmpty)
        XCTAssertEqual(reports.map(\.done), reports.map(\.done).sorted(), "progress goes only forward")
        XCTAssertEqual(reports.last?.done, Int64(archive.count))
        XCTAssertEqual(reports.last?.total, Int64(archive.count))
        XCTAssertEqual(cacheContents(), ["test_weights_2024", "test_weights_2024/.inception_v1.ckpt.verified",
                                         "test_weights_2024/inception_v1.ckpt"],
                       "the archive and the staging directory are gone")
    }

    func testSecondEnsureUsesTheCacheWithoutNetwork() throws {
        let server = try serve(["/w.tar.gz": .body(archive)])
        let weights = try describe(archive, at: server.url("/w.tar.gz"))
        let first = try store().ensure(weights)
        server.stop()
        var reports = 0

        let second = try store().ensure(weights) { _, _ in reports += 1 }

        XCTAssertEqual(second, first)
        XCTAssertEqual(store().cachedPath(for: weights), first)
        XCTAssertEqual(FileManager.default.contents(atPath: second), checkpoint)
        XCTAssertEqual(server.requestedPaths.count, 1)
        XCTAssertEqual(reports, 0)
    }

    func testRedirectIsFollowed() throws {
        let server = try serve(["/old": .redirect("/w.tar.gz"), "/w.tar.gz": .body(archive)])
        let weights = try describe(archive, at: server.url("/old"))

        let path = try store().ensure(weights)

        XCTAssertEqual(FileManager.default.contents(atPath: path), checkpoint)
        XCTAssertEqual(server.requestedPaths, ["/old", "/w.tar.gz"])
    }

    func testCorruptDownloadIsRejectedWithTheHashesAndLeavesNothingBehind() throws {
        var corrupt = archive
        for i in stride(from: corrupt.count / 3, to: corrupt.count / 3 + 8, by: 1) { corrupt[i] ^= 0xff }
        let server = try serve(["/w.tar.gz": .body(corrupt)])
        let weights = try describe(archive, at: server.url("/w.tar.gz"))
        let corruptHash = try sha256(corrupt)

        let error = try ensureError(weights)

        XCTAssertEqual(error.kind, .checksumMismatch)
        XCTAssertEqual(error.description, """
            the file downloaded from \(weights.url.absoluteString) has SHA-256 \(corruptHash), \
            expected \(weights.sha256): the download is corrupt or not the official file; deleted it.
            """)
        XCTAssertEqual(cacheContents(), [])
    }

    func testTruncatedTransferFailsCleanly() throws {
        let server = try serve(["/w.tar.gz": .truncated(archive, after: archive.count / 2)])
        let weights = try describe(archive, at: server.url("/w.tar.gz"))

        let error = try ensureError(weights)

        XCTAssertEqual(error.kind, .unreachable)
        XCTAssertTrue(error.description.hasPrefix("could not download \(weights.url.absoluteString) ("), error.description)
        XCTAssertEqual(cacheContents(), [])
    }

    func testServerSendingAnotherSizeIsRejected() throws {
        let server = try serve(["/w.tar.gz": .body(archive + Data(count: 100))])
        let weights = try describe(archive, at: server.url("/w.tar.gz"))

        let error = try ensureError(weights)

        XCTAssertEqual(error.kind, .sizeMismatch)
        XCTAssertTrue(error.description.contains("the server offers \(archive.count + 100) bytes, expected \(archive.count)"),
                      error.description)
        XCTAssertEqual(cacheContents(), [])
    }

    func testHTTP404NamesTheURLAndTheStatus() throws {
        let server = try serve([:])
        let weights = try describe(archive, at: server.url("/missing.tar.gz"))

        let error = try ensureError(weights)

        XCTAssertEqual(error.kind, .httpStatus(404))
        XCTAssertTrue(error.description.hasPrefix(
            "could not download \(weights.url.absoluteString): the server answered HTTP 404"), error.description)
        XCTAssertEqual(cacheContents(), [])
    }

    func testUnreachableServerGivesTheOfflineMessageWithTheExactPaths() throws {
        var weights = PretrainedWeights.inceptionV1ImageNet
        weights.url = URL(string: "http://127.0.0.1:\(try LocalHTTPServer.closedPort())/inception_v1_2016_08_28.tar.gz")!

        let error = try ensureError(weights)

        XCTAssertEqual(error.kind, .unreachable)
        XCTAssertTrue(error.description.hasPrefix("could not download \(weights.url.absoluteString) ("), error.description)
        XCTAssertTrue(error.description.hasSuffix("""
            ). Offline? Download it elsewhere and put it at \(cache)/inception_v1_2016_08_28.tar.gz \
            (it is checked and unpacked on the next run), or put the unpacked inception_v1.ckpt at \
            \(cache)/inception_v1_2016_08_28/inception_v1.ckpt, or pass --weights PATH.
            """), error.description)
        XCTAssertEqual(cacheContents(), [])
    }

    func testStalledServerTimesOut() throws {
        let server = try serve(["/w.tar.gz": .stall(seconds: 3)])
        let weights = try describe(archive, at: server.url("/w.tar.gz"))
        let started = Date()

        let error = try ensureError(weights, timeout: 1)

        XCTAssertEqual(error.kind, .unreachable)
        XCTAssertTrue(error.description.contains("(no data for 1 seconds)"), error.description)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2.9)
        XCTAssertEqual(cacheContents(), [])
    }

    func testConcurrentEnsuresDownloadOnce() throws {
        let server = try serve(["/w.tar.gz": .body(archive)])
        let weights = try describe(archive, at: server.url("/w.tar.gz"))
        let store = store()
        let results = NSLock()
        nonisolated(unsafe) var paths: [String] = []

        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let path = (try? store.ensure(weights)) ?? "failed"
            results.withLock { paths.append(path) }
        }

        XCTAssertEqual(paths, Array(repeating: store.localPath(for: weights), count: 4))
        XCTAssertEqual(server.requestedPaths, ["/w.tar.gz"], "the others waited for the first and found its result")
        XCTAssertEqual(FileManager.default.contents(atPath: store.localPath(for: weights)), checkpoint)
    }

    // MARK: - Files placed by hand

    func testManuallyPlacedArchiveIsVerifiedAndUnpackedWithoutNetwork() throws {
        let weights = try describe(archive, at: closedURL())
        try place(archive, at: store().archivePath(for: weights))
        var reports = 0

        let path = try store().ensure(weights) { _, _ in reports += 1 }

        XCTAssertEqual(FileManager.default.contents(atPath: path), checkpoint)
        XCTAssertEqual(reports, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: store().archivePath(for: weights)), "unpacked, then removed")
    }

    func testManuallyPlacedCorruptArchiveIsDeletedWithTheHashes() throws {
        let weights = try describe(archive, at: closedURL())
        var corrupt = archive
        corrupt[corrupt.count / 2] ^= 0x01
        let placed = store().archivePath(for: weights)
        try place(corrupt, at: placed)

        let error = try ensureError(weights)

        XCTAssertEqual(error.kind, .checksumMismatch)
        XCTAssertEqual(error.description, """
            \(placed) has SHA-256 \(try sha256(corrupt)), expected \(weights.sha256): \
            the download is corrupt or not the official file; deleted it.
            """)
        XCTAssertEqual(cacheContents(), [])
    }

    func testManuallyPlacedCheckpointIsUsedAsItIs() throws {
        let weights = try describe(archive, at: closedURL())
        let own = Data("a checkpoint the user unpacked".utf8)
        try place(own, at: store().localPath(for: weights))

        let path = try store().ensure(weights)

        XCTAssertEqual(path, store().localPath(for: weights))
        XCTAssertEqual(FileManager.default.contents(atPath: path), own)
    }

    func testTruncatedCachedCheckpointIsFetchedAgain() throws {
        let server = try serve(["/w.tar.gz": .body(archive)])
        let weights = try describe(archive, at: server.url("/w.tar.gz"))
        let path = try store().ensure(weights)
        try checkpoint.prefix(100).write(to: URL(fileURLWithPath: path))

        XCTAssertNil(store().cachedPath(for: weights))
        XCTAssertEqual(try store().ensure(weights), path)

        XCTAssertEqual(FileManager.default.contents(atPath: path), checkpoint)
        XCTAssertEqual(server.requestedPaths.count, 2)
    }

    // MARK: - Unpacking

    func testMemberStoredUnderDotSlashIsFound() throws {
        let dotted = try makeTarball(["inception_v1.ckpt": checkpoint], dotSlash: true)
        let weights = try describe(dotted, at: closedURL())
        try place(dotted, at: store().archivePath(for: weights))

        let path = try store().ensure(weights)

        XCTAssertEqual(FileManager.default.contents(atPath: path), checkpoint)
    }

    func testArchiveWithoutTheMemberIsRejectedAsCorrupt() throws {
        let other = try makeTarball(["model.ckpt": checkpoint])
        let server = try serve(["/w.tar.gz": .body(other)])
        let weights = try describe(other, at: server.url("/w.tar.gz"))

        let error = try ensureError(weights)

        XCTAssertEqual(error.kind, .corruptArchive)
        XCTAssertTrue(error.description.hasPrefix("""
            the archive downloaded from \(weights.url.absoluteString) is corrupt or does not contain inception_v1.ckpt
            """), error.description)
        XCTAssertEqual(cacheContents(), [])
    }

    // MARK: - Configuration

    func testReleasedArchiveIsDescribedExactly() {
        let weights = PretrainedWeights.inceptionV1ImageNet
        XCTAssertEqual(weights.name, "inception_v1_2016_08_28")
        XCTAssertEqual(weights.url.absoluteString, "http://download.tensorflow.org/models/inception_v1_2016_08_28.tar.gz")
        XCTAssertEqual(weights.byteCount, 24_642_554)
        XCTAssertEqual(weights.sha256, "7a620c430fcaba8f8f716241f5148c4c47c035cce4e49ef02cfbe6cd1adf96a6")
        XCTAssertEqual(weights.member, "inception_v1.ckpt")
        XCTAssertEqual(WeightStore(directory: "/c").localPath(for: weights), "/c/inception_v1_2016_08_28/inception_v1.ckpt")
        XCTAssertEqual(WeightStore(directory: "/c").archivePath(for: weights), "/c/inception_v1_2016_08_28.tar.gz")
    }

    func testINCEPTION_HOMEIsHonoured() {
        XCTAssertEqual(WeightStore.defaultDirectory(environment: ["INCEPTION_HOME": "/data/weights", "HOME": "/home/u"]),
                       "/data/weights")
        XCTAssertEqual(WeightStore(environment: ["INCEPTION_HOME": "/data/weights"]).directory, "/data/weights")
    }

    func testWithoutINCEPTION_HOMETheCacheIsUnderHome() {
        XCTAssertEqual(WeightStore.defaultDirectory(environment: ["HOME": "/home/u"]), "/home/u/.cache/inception")
        XCTAssertEqual(WeightStore.defaultDirectory(environment: ["INCEPTION_HOME": "", "HOME": "/home/u"]),
                       "/home/u/.cache/inception", "an empty INCEPTION_HOME counts as unset")
    }

    func testTildeInINCEPTION_HOMEIsExpanded() {
        XCTAssertEqual(WeightStore.defaultDirectory(environment: ["INCEPTION_HOME": "~/w", "HOME": "/home/u"]), "/home/u/w")
    }

    // MARK: - Helpers

    private func store(timeout: TimeInterval = 10) -> WeightStore {
        WeightStore(directory: cache, timeout: timeout)
    }

    private func serve(_ routes: [String: LocalHTTPServer.Route]) throws -> LocalHTTPServer {
        let server = try LocalHTTPServer(routes: routes)
        addTeardownBlock { server.stop() }
        return server
    }

    private func closedURL() throws -> URL {
        URL(string: "http://127.0.0.1:\(try LocalHTTPServer.closedPort())/w.tar.gz")!
    }

    /// Test weights whose size and hash are those of `archive`.
    private func describe(_ archive: Data, at url: URL) throws -> PretrainedWeights {
        PretrainedWeights(name: "test_weights_2024", url: url, byteCount: Int64(archive.count),
                          sha256: try sha256(archive), member: "inception_v1.ckpt")
    }

    private func ensureError(_ weights: PretrainedWeights, timeout: TimeInterval = 10,
                             file: StaticString = #filePath, line: UInt = #line) throws -> WeightStoreError {
        do {
            let path = try store(timeout: timeout).ensure(weights)
            XCTFail("ensure succeeded with \(path)", file: file, line: line)
            throw UnexpectedSuccess()
        } catch let error as WeightStoreError {
            return error
        }
    }

    private struct UnexpectedSuccess: Error {}

    private func sha256(_ data: Data) throws -> String {
        let file = scratch + "/hash-\(UUID().uuidString)"
        try data.write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        return try WeightStore.sha256Hex(ofFile: file)
    }

    private func place(_ data: Data, at path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Everything under the cache directory, relative and sorted ([] if it does not exist).
    private func cacheContents() -> [String] {
        ((try? FileManager.default.subpathsOfDirectory(atPath: cache)) ?? []).sorted()
    }

    /// A .tar.gz of `files`, made by the system tar (`./NAME` entries with `dotSlash`).
    private func makeTarball(_ files: [String: Data], dotSlash: Bool = false) throws -> Data {
        let source = scratch + "/tar-source-\(UUID().uuidString)"
        let output = scratch + "/tar-\(UUID().uuidString).tar.gz"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: source)
            try? FileManager.default.removeItem(atPath: output)
        }
        for (name, data) in files { try data.write(to: URL(fileURLWithPath: source + "/" + name)) }
        let tar = try XCTUnwrap(["/usr/bin/tar", "/bin/tar"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tar)
        process.arguments = ["-czf", output, "-C", source] + (dotSlash ? ["."] : files.keys.sorted())
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "tar -czf")
        return try Data(contentsOf: URL(fileURLWithPath: output))
    }
}
