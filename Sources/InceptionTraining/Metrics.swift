import Foundation
import Inception

/// One line of `RUN/metrics.jsonl`: the state of training at the end of an epoch (`kind` "epoch")
/// or every N steps (`kind` "step"). Absent values are left out of the line.
///
///     {"epoch":3,"images_per_second":21.4,"kind":"epoch","learning_rate":0.01,"seconds":88.2,"step":291,
///      "time":"2025-01-01T12:00:00Z","train_loss":0.81,"train_top1":0.74,"val_loss":0.92,"val_top1":0.7,"val_top5":0.98}
///
/// `epoch` counts completed epochs for "epoch" records (1 after the first) and is the epoch in
/// progress (0-based) for "step" records; `step` is the global step. Accuracies are fractions in
/// [0, 1]. Non-finite numbers are written as the strings "nan", "inf", "-inf".
public struct MetricsRecord: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case epoch, step
    }

    public var kind: Kind
    public var epoch: Int
    public var step: Int
    public var trainLoss: Double?
    public var trainTop1: Double?
    public var validationLoss: Double?
    public var validationTop1: Double?
    public var validationTop5: Double?
    public var learningRate: Double?
    public var imagesPerSecond: Double?
    /// Seconds the epoch (or the steps since the previous step record) took.
    public var seconds: Double?
    /// Wall-clock time of the record, ISO 8601.
    public var time: String?

    public init(kind: Kind = .epoch, epoch: Int, step: Int, trainLoss: Double? = nil, trainTop1: Double? = nil,
                validationLoss: Double? = nil, validationTop1: Double? = nil, validationTop5: Double? = nil,
                learningRate: Double? = nil, imagesPerSecond: Double? = nil, seconds: Double? = nil,
                time: String? = ISO8601DateFormatter().string(from: Date())) {
        self.kind = kind
        self.epoch = epoch
        self.step = step
        self.trainLoss = trainLoss
        self.trainTop1 = trainTop1
        self.validationLoss = validationLoss
        self.validationTop1 = validationTop1
        self.validationTop5 = validationTop5
        self.learningRate = learningRate
        self.imagesPerSecond = imagesPerSecond
        self.seconds = seconds
        self.time = time
    }

    enum CodingKeys: String, CodingKey {
        case kind, epoch, step, time, seconds
        case trainLoss = "train_loss"
        case trainTop1 = "train_top1"
        case validationLoss = "val_loss"
        case validationTop1 = "val_top1"
        case validationTop5 = "val_top5"
        case learningRate = "learning_rate"
        case imagesPerSecond = "images_per_second"
    }

    /// The record as one line of JSON (no newline).
    public func jsonLine() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Parses one line.
    public static func parse(_ line: String) throws -> MetricsRecord {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(MetricsRecord.self, from: Data(line.utf8))
    }
}

/// The metrics file of a run, `RUN/metrics.jsonl`: one JSON object per line, appended and synced
/// record by record, so a killed run loses at most the line being written. Reading tolerates a
/// truncated last line (and skips, counting, any other line that does not parse).
public struct MetricsLog: Sendable {
    public static let fileName = "metrics.jsonl"

    public let path: String

    public init(path: String) { self.path = path }

    /// The metrics file of a run folder.
    public init(runDirectory: String) { self.init(path: runDirectory + "/" + Self.fileName) }

    /// What reading found.
    public struct Contents: Sendable, Equatable {
        public var records: [MetricsRecord]
        /// The last line was cut short (no newline and not valid JSON), e.g. by a kill mid-write.
        public var truncatedLastLine: Bool
        /// Other lines that did not parse, 1-based.
        public var malformedLines: [Int]
    }

    /// Appends one record as a line and syncs the file. If the file ends without a newline (a line
    /// cut short by a kill), a newline is written first so the new record stays on its own line.
    public func append(_ record: MetricsRecord) throws {
        let line = try record.jsonLine() + "\n"
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT, 0o644)
        guard fd >= 0 else { throw MetricsError(path, "cannot open for appending: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes = Array(line.utf8)
        let size = lseek(fd, 0, SEEK_END)
        if size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, size - 1) == 1, last != UInt8(ascii: "\n") { bytes.insert(UInt8(ascii: "\n"), at: 0) }
        }
        try Self.writeAll(fd, bytes, path: path)
        guard fsync(fd) == 0 else { throw MetricsError(path, "fsync failed: \(String(cString: strerror(errno)))") }
    }

    /// Reads every record; a missing file reads as empty.
    public func read() throws -> Contents {
        guard FileManager.default.fileExists(atPath: path) else {
            return Contents(records: [], truncatedLastLine: false, malformedLines: [])
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw MetricsError(path, "cannot read: \(error.localizedDescription)")
        }
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let endsWithNewline = data.last == UInt8(ascii: "\n")
        if endsWithNewline { lines.removeLast() }  // the empty piece after the final newline
        var contents = Contents(records: [], truncatedLastLine: false, malformedLines: [])
        for (i, raw) in lines.enumerated() {
            let text = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if let record = try? MetricsRecord.parse(text) {
                contents.records.append(record)
            } else if i == lines.count - 1 && !endsWithNewline {
                contents.truncatedLastLine = true
            } else {
                contents.malformedLines.append(i + 1)
            }
        }
        return contents
    }

    /// Prepares the file for a resumed run: keeps only the records up to `step` (those written
    /// after the checkpoint will be written again) and drops a truncated last line. Rewritten
    /// atomically (temporary file, sync, rename). Returns the records kept.
    @discardableResult
    public func rewind(toStep step: Int) throws -> [MetricsRecord] {
        let contents = try read()
        let kept = contents.records.filter { $0.step <= step }
        guard kept.count != contents.records.count || contents.truncatedLastLine || !contents.malformedLines.isEmpty else {
            return kept
        }
        let text = try kept.map { try $0.jsonLine() + "\n" }.joined()
        try Self.writeAtomically(Array(text.utf8), to: path)
        return kept
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw MetricsError(path, "write failed: \(String(cString: strerror(errno)))")
            }
            written += n
        }
    }

    /// Temporary file in the same folder, fsync, rename, folder fsync.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw MetricsError(path, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var done = false
        defer { if !done { unlink(temporary) } }
        do {
            try writeAll(fd, bytes, path: path)
        } catch {
            close(fd)
            throw error
        }
        guard fsync(fd) == 0 else {
            close(fd)
            throw MetricsError(path, "fsync failed: \(String(cString: strerror(errno)))")
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            throw MetricsError(path, "cannot rename \(temporary) into place: \(String(cString: strerror(errno)))")
        }
        done = true
        RunCheckpoint.syncDirectory(directory.isEmpty ? "." : directory)
    }
}

/// A problem reading or writing the metrics file.
public struct MetricsError: Error, CustomStringConvertible, Sendable, Equatable {
    public let path: String
    public let message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
