// The pretrained weights store: where `inception classify` finds the released checkpoint when no
// `--weights` is given. The archive is fetched once, checked (size and SHA-256: the official URL
// is plain http, so the hash is the only guarantee of what arrived), unpacked, and kept:
//
//   CACHE/inception_v1_2016_08_28/inception_v1.ckpt            the unpacked checkpoint
//   CACHE/inception_v1_2016_08_28/.inception_v1.ckpt.verified  which archive it came from, its size
//   CACHE/inception_v1_2016_08_28.tar.gz                       only if a user put it there by hand
//
// CACHE is $INCEPTION_HOME, else ~/.cache/inception. Work in progress lives in a hidden staging
// directory inside CACHE (so the final rename is atomic) and is removed on every way out.
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A downloadable weight archive: where it is, what it must hash to, and the file to take out of it.
public struct PretrainedWeights: Sendable, Hashable {
    /// Names the cache entry: the archive is kept as `NAME.tar.gz`, the checkpoint under `NAME/`.
    public var name: String
    /// Where the `.tar.gz` archive is published.
    public var url: URL
    /// The archive's exact size in bytes.
    public var byteCount: Int64
    /// The archive's SHA-256, lowercase hex.
    public var sha256: String
    /// The archive member to unpack (the checkpoint file).
    public var member: String

    public init(name: String, url: URL, byteCount: Int64, sha256: String, member: String) {
        self.name = name
        self.url = url
        self.byteCount = byteCount
        self.sha256 = sha256.lowercased()
        self.member = member
    }

    /// TF-slim's released Inception V1 trained on ImageNet (1001 classes, 69.8% top-1). Size and
    /// hash as recorded by OpenVINO's open_model_zoo (`models/public/googlenet-v1-tf/model.yml`).
    public static let inceptionV1ImageNet = PretrainedWeights(
        name: "inception_v1_2016_08_28",
        url: URL(string: "http://download.tensorflow.org/models/inception_v1_2016_08_28.tar.gz")!,
        byteCount: 24_642_554,
        sha256: "7a620c430fcaba8f8f716241f5148c4c47c035cce4e49ef02cfbe6cd1adf96a6",
        member: "inception_v1.ckpt"
    )

    /// The archive's file name in the cache directory.
    public var archiveFileName: String { name + ".tar.gz" }
    /// The unpacked checkpoint's file name (the member's last path component).
    public var memberFileName: String { (member as NSString).lastPathComponent }
}

/// Why the store could not provide the weights. `description` says what happened and what to do.
public struct WeightStoreError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// No connection, DNS failure, timeout, connection refused, dropped mid-transfer.
        case unreachable
        /// The server answered with a status other than 200.
        case httpStatus(Int)
        /// The archive (downloaded or placed by hand) has the wrong size.
        case sizeMismatch
        /// The archive (downloaded or placed by hand) has the wrong SHA-256.
        case checksumMismatch
        /// `tar` failed, or the archive does not contain the member.
        case corruptArchive
        /// No `tar` on this system.
        case tarMissing
        /// The cache directory or a file in it could not be created, written or renamed.
        case fileSystem
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// The local cache of pretrained weights.
public struct WeightStore: Sendable {
    /// The cache directory (created when first needed).
    public var directory: String
    /// Seconds without any data from the server before a download is abandoned.
    public var timeout: TimeInterval

    /// A store in `directory` (tests, or a caller with its own place for weights).
    public init(directory: String, timeout: TimeInterval = 60) {
        self.directory = directory
        self.timeout = timeout
    }

    /// The store in the default directory: `$INCEPTION_HOME`, else `~/.cache/inception`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.init(directory: WeightStore.defaultDirectory(environment: environment))
    }

    /// `$INCEPTION_HOME` if set and not empty, else `$HOME/.cache/inception` (the user's home
    /// directory from the system when `HOME` is unset). A leading `~` is expanded.
    public static func defaultDirectory(environment: [String: String]) -> String {
        if let home = environment["INCEPTION_HOME"], !home.isEmpty {
            return expandingTilde(home, environment: environment)
        }
        let userHome: String
        if let home = environment["HOME"], !home.isEmpty {
            userHome = home
        } else {
            userHome = FileManager.default.homeDirectoryForCurrentUser.path
        }
        return (userHome as NSString).appendingPathComponent(".cache/inception")
    }

    /// Where the unpacked checkpoint lives: `CACHE/NAME/MEMBER`.
    public func localPath(for weights: PretrainedWeights) -> String {
        path(weights.name, weights.memberFileName)
    }

    /// Where an archive placed by hand is picked up: `CACHE/NAME.tar.gz`.
    public func archivePath(for weights: PretrainedWeights) -> String {
        path(weights.archiveFileName)
    }

    /// The checkpoint's path if it is already in the cache (no network, no changes on disk).
    public func cachedPath(for weights: PretrainedWeights) -> String? {
        if case .valid = checkpointState(weights) { return localPath(for: weights) }
        return nil
    }

    /// Returns the local checkpoint path, fetching it first if needed: an unpacked checkpoint in the
    /// cache is used as it is; else an archive placed in the cache by hand is checked and unpacked;
    /// else the archive is downloaded (streamed to disk), checked and unpacked. The archive is
    /// removed once unpacked. On failure nothing new is left in the cache.
    ///
    /// `progress(done, total)` reports downloaded bytes on the calling thread, a few times a
    /// second and once at the end; it is not called when no download happens.
    public func ensure(
        _ weights: PretrainedWeights,
        progress: ((_ done: Int64, _ total: Int64?) -> Void)? = nil
    ) throws -> String {
        let target = localPath(for: weights)
        if case .valid = checkpointState(weights) { return target }

        try createDirectory(directory)
        // One fetch at a time per cache directory: a second process waits, then finds the result.
        let lock = try DirectoryLock(path: directory)
        defer { lock.unlock() }

        switch checkpointState(weights) {
        case .valid: return target
        case .stale: removeCheckpoint(weights)
        case .absent: break
        }
        removeLeftoverStaging(weights)

        let staging = path(".\(weights.name).partial-\(UUID().uuidString)")
        try createDirectory(staging)
        defer { try? FileManager.default.removeItem(atPath: staging) }

        let manualArchive = archivePath(for: weights)
        let archive: String
        let archiveDescription: String
        if FileManager.default.fileExists(atPath: manualArchive) {
            try verifyPlacedArchive(weights, at: manualArchive)
            archive = manualArchive
            archiveDescription = manualArchive
        } else {
            archive = (staging as NSString).appendingPathComponent(weights.archiveFileName)
            archiveDescription = "the archive downloaded from \(weights.url.absoluteString)"
            try download(weights, to: archive, progress: progress)
        }

        let unpacked = (staging as NSString).appendingPathComponent("unpacked")
        try createDirectory(unpacked)
        let extracted: String
        do {
            extracted = try Tar.extract(member: weights.member, from: archive, into: unpacked)
        } catch let failure as Tar.Failure {
            switch failure {
            case .notFound:
                // Keep the verified download where the user can unpack it by hand.
                if archive != manualArchive { _ = rename(archive, manualArchive) }
                throw WeightStoreError(.tarMissing, """
                    cannot unpack \(manualArchive): no `tar` found (looked in /usr/bin, /bin and PATH). \
                    Unpack it yourself and put \(weights.memberFileName) at \(target), \
                    or pass --weights PATH.
                    """)
            case .failed(let detail):
                throw WeightStoreError(.corruptArchive, """
                    \(archiveDescription) is corrupt or does not contain \(weights.member)\
                    \(detail.isEmpty ? "" : " (\(detail))")
                    """)
            }
        }
        try install(extracted, as: weights)
        if archive == manualArchive { try? FileManager.default.removeItem(atPath: manualArchive) }
        return target
    }

    /// The SHA-256 of a file, lowercase hex, read in 1 MiB pieces.
    public static func sha256Hex(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw WeightStoreError(.fileSystem, "cannot read \(path)")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hexString(hasher.finalize())
    }

    // MARK: - The cached checkpoint

    enum CheckpointState { case valid, stale, absent }

    private func markerPath(_ weights: PretrainedWeights) -> String {
        path(weights.name, ".\(weights.memberFileName).verified")
    }

    /// `valid`: present and, if the store unpacked it, still the size it had and from the archive
    /// `weights` names (a checkpoint put there by hand has no marker and is taken as it is).
    /// `stale`: the store unpacked it, but it was truncated since, or came from another archive.
    func checkpointState(_ weights: PretrainedWeights) -> CheckpointState {
        let target = localPath(for: weights)
        guard let size = regularFileSize(target) else { return .absent }
        guard let text = try? String(contentsOfFile: markerPath(weights), encoding: .utf8) else {
            return size > 0 ? .valid : .absent
        }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        guard fields["archive-sha256"] == weights.sha256, fields["size"] == String(size) else { return .stale }
        return .valid
    }

    private func removeCheckpoint(_ weights: PretrainedWeights) {
        try? FileManager.default.removeItem(atPath: markerPath(weights))
        try? FileManager.default.removeItem(atPath: localPath(for: weights))
    }

    /// Staging directories of a process that was killed mid-fetch (we hold the lock: none is in use).
    private func removeLeftoverStaging(_ weights: PretrainedWeights) {
        let prefix = ".\(weights.name).partial-"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where entry.hasPrefix(prefix) {
            try? FileManager.default.removeItem(atPath: path(entry))
        }
    }

    /// Moves the unpacked member into place: marker first (a marker without a checkpoint only
    /// means "fetch again"), then the checkpoint, flushed to disk, by an atomic rename.
    private func install(_ extracted: String, as weights: PretrainedWeights) throws {
        guard let size = regularFileSize(extracted), size > 0 else {
            throw WeightStoreError(.corruptArchive, "the archive is corrupt or does not contain \(weights.member) (unpacked no regular file)")
        }
        let target = localPath(for: weights)
        try createDirectory((target as NSString).deletingLastPathComponent)
        let marker = """
            archive: \(weights.archiveFileName)
            archive-sha256: \(weights.sha256)
            member: \(weights.member)
            size: \(size)

            """
        do {
            try Data(marker.utf8).write(to: URL(fileURLWithPath: markerPath(weights)), options: .atomic)
        } catch {
            throw WeightStoreError(.fileSystem, "cannot write \(markerPath(weights)): \(error.localizedDescription)")
        }
        _ = chmod(extracted, 0o644)
        let fd = open(extracted, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); _ = close(fd) }
        guard rename(extracted, target) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: markerPath(weights))
            throw WeightStoreError(.fileSystem, "cannot move the unpacked checkpoint to \(target): \(reason)")
        }
    }

    // MARK: - Archives

    /// Checks an archive put in the cache by hand; deletes it if it is not the official file.
    private func verifyPlacedArchive(_ weights: PretrainedWeights, at archive: String) throws {
        let size = regularFileSize(archive) ?? -1
        if size != weights.byteCount {
            try? FileManager.default.removeItem(atPath: archive)
            throw WeightStoreError(.sizeMismatch, """
                \(archive) has \(size) bytes, expected \(weights.byteCount): \
                the download is corrupt or not the official file; deleted it.
                """)
        }
        let hash = try WeightStore.sha256Hex(ofFile: archive)
        if hash != weights.sha256 {
            try? FileManager.default.removeItem(atPath: archive)
            throw WeightStoreError(.checksumMismatch, """
                \(archive) has SHA-256 \(hash), expected \(weights.sha256): \
                the download is corrupt or not the official file; deleted it.
                """)
        }
    }

    /// Downloads to `file` (inside the staging directory, which the caller removes on failure),
    /// checking size and hash as the bytes arrive.
    private func download(_ weights: PretrainedWeights, to file: String,
                          progress: ((Int64, Int64?) -> Void)?) throws {
        let url = weights.url.absoluteString
        let offline = """
            Download it elsewhere and put it at \(archivePath(for: weights)) \
            (it is checked and unpacked on the next run), or put the unpacked \(weights.memberFileName) \
            at \(localPath(for: weights)), or pass --weights PATH.
            """
        let result: HTTPDownload.Result
        do {
            result = try HTTPDownload.fetch(weights.url, to: file, expectedSize: weights.byteCount,
                                            timeout: timeout, progress: progress)
        } catch let failure as HTTPDownload.Failure {
            switch failure {
            case .transport(let reason, let received):
                let what = received > 0
                    ? "the transfer broke off after \(received) of \(weights.byteCount) bytes: \(reason)" : reason
                throw WeightStoreError(.unreachable, "could not download \(url) (\(what)). Offline? \(offline)")
            case .httpStatus(let status, let finalURL):
                let redirected = finalURL.map { $0 == url ? "" : " (redirected to \($0))" } ?? ""
                let phrase = HTTPDownload.reasonPhrase(status)
                throw WeightStoreError(.httpStatus(status), """
                    could not download \(url)\(redirected): the server answered HTTP \(status) (\(phrase)). \(offline)
                    """)
            case .announcedSize(let announced):
                throw WeightStoreError(.sizeMismatch, """
                    could not download \(url): the server offers \(announced) bytes, expected \(weights.byteCount): \
                    not the official file; nothing was kept. \(offline)
                    """)
            case .tooLong:
                throw WeightStoreError(.sizeMismatch, """
                    the file downloaded from \(url) is longer than \(weights.byteCount) bytes: \
                    the download is corrupt or not the official file; deleted it.
                    """)
            case .file(let path, let reason):
                throw WeightStoreError(.fileSystem, "cannot write \(path): \(reason)")
            }
        }
        if result.byteCount < weights.byteCount {
            throw WeightStoreError(.unreachable, """
                could not download \(url) (the transfer ended after \(result.byteCount) of \(weights.byteCount) bytes). \
                Offline? \(offline)
                """)
        }
        if result.sha256 != weights.sha256 {
            throw WeightStoreError(.checksumMismatch, """
                the file downloaded from \(url) has SHA-256 \(result.sha256), expected \(weights.sha256): \
                the download is corrupt or not the official file; deleted it.
                """)
        }
    }

    // MARK: - Files

    private func path(_ components: String...) -> String {
        components.reduce(directory) { ($0 as NSString).appendingPathComponent($1) }
    }

    private func createDirectory(_ dir: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw WeightStoreError(.fileSystem, """
                cannot create \(dir): \(error.localizedDescription). \
                Set INCEPTION_HOME to a writable directory, or pass --weights PATH.
                """)
        }
    }

    private static func expandingTilde(_ path: String, environment: [String: String]) -> String {
        guard path == "~" || path.hasPrefix("~/") else { return path }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.homeDirectoryForCurrentUser.path
        return home + path.dropFirst()
    }
}

/// The size of a regular file (symbolic links followed), or nil if there is none.
func regularFileSize(_ path: String) -> Int64? {
    var info = stat()
    guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
    return Int64(info.st_size)
}

func hexString<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// An exclusive `flock` on the cache directory itself (no lock file to leave behind).
struct DirectoryLock {
    private let fd: Int32

    init(path: String) throws {
        fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw WeightStoreError(.fileSystem, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            // File systems without flock (some network mounts): go on unlocked.
            break
        }
    }

    func unlock() {
        _ = flock(fd, LOCK_UN)
        _ = close(fd)
    }
}
