import Foundation
import Inception

/// A problem with a run checkpoint file.
public struct RunCheckpointError: Error, CustomStringConvertible, Sendable, Equatable {
    public let path: String
    public let message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Everything needed to continue a training run: the model variables and optimizer slots (as the
/// trainer names them), where the run stands (global step, epoch, next batch within the epoch),
/// the random state, and the run's options as JSON.
///
/// Stored as one safetensors file (float32 tensors; the rest in `__metadata__`), written the way
/// ``SafeTensors/write(_:metadata:to:dtype:)`` always writes: to a temporary file in the same
/// folder, synced, renamed over the old file, and the folder synced. A `kill -9` at any moment
/// leaves either the previous checkpoint or the new one in place, never a partial file (an
/// interrupted write leaves only a hidden temporary file, which is ignored and later removed).
/// The metadata also holds a CRC-32C of all tensor data, so a file damaged after it was written
/// (a truncated copy, a bad disk) is recognised and ``latest(in:warning:)`` falls back to an older
/// checkpoint.
///
/// Files in the run folder: `checkpoint-latest.safetensors` (always the newest) and, when
/// `keepLast` > 0, `checkpoint-<step, 8 digits>.safetensors` for the newest `keepLast` saves
/// (hard links to the same data when the file system allows, so they cost no extra space).
public struct RunCheckpoint: Sendable {
    /// The version of the metadata layout written by this code.
    public static let formatVersion = 1
    /// The `format` metadata value that marks a run checkpoint.
    public static let formatName = "inception-run-checkpoint"
    public static let latestFileName = "checkpoint-latest.safetensors"

    /// Model variables and optimizer slots, by name.
    public var tensors: [String: Tensor]
    /// Training steps (batches) completed.
    public var step: Int
    /// The epoch to continue in (0-based).
    public var epoch: Int
    /// The next batch to run within `epoch` (0 = the epoch has not started).
    public var batchInEpoch: Int
    /// Named random states (e.g. a dropout generator's `SeededGenerator.state`, the run seed).
    public var randomState: [String: UInt64]
    /// The run's options as JSON (whatever the trainer records; see ``options(as:)``).
    public var optionsJSON: String
    /// Further strings the caller wants kept (stored under `extra.` in the file's metadata).
    public var extra: [String: String]

    public init(tensors: [String: Tensor], step: Int, epoch: Int, batchInEpoch: Int,
                randomState: [String: UInt64] = [:], optionsJSON: String = "{}", extra: [String: String] = [:]) {
        self.tensors = tensors
        self.step = step
        self.epoch = epoch
        self.batchInEpoch = batchInEpoch
        self.randomState = randomState
        self.optionsJSON = optionsJSON
        self.extra = extra
    }

    /// The same, with `options` encoded as JSON (sorted keys).
    public init<Options: Encodable>(tensors: [String: Tensor], step: Int, epoch: Int, batchInEpoch: Int,
                                    randomState: [String: UInt64] = [:], options: Options,
                                    extra: [String: String] = [:]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(options), as: UTF8.self)
        self.init(tensors: tensors, step: step, epoch: epoch, batchInEpoch: batchInEpoch, randomState: randomState,
                  optionsJSON: json, extra: extra)
    }

    /// The stored options decoded as `type`.
    public func options<Options: Decodable>(as type: Options.Type) throws -> Options {
        try JSONDecoder().decode(type, from: Data(optionsJSON.utf8))
    }

    /// The file name of the numbered checkpoint at `step`.
    public static func numberedFileName(step: Int) -> String {
        let digits = String(step)
        return "checkpoint-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".safetensors"
    }

    // MARK: - Saving

    /// Writes `RUN/checkpoint-latest.safetensors` atomically; with `keepLast` > 0 also keeps
    /// `RUN/checkpoint-<step>.safetensors` and deletes numbered checkpoints beyond the newest
    /// `keepLast`. Creates the run folder if needed. Returns the path of the latest file.
    @discardableResult
    public func save(in runDirectory: String, keepLast: Int = 0) throws -> String {
        let fm = FileManager.default
        try fm.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        Self.removeStaleTemporaries(in: runDirectory)
        let latest = runDirectory + "/" + Self.latestFileName
        try SafeTensors.write(tensors, metadata: metadata(), to: latest, dtype: .float32)
        guard keepLast > 0 else { return latest }

        let numbered = runDirectory + "/" + Self.numberedFileName(step: step)
        unlink(numbered)
        if link(latest, numbered) == 0 {
            Self.syncDirectory(runDirectory)
        } else {
            // No hard links here (some network or FAT file systems): write a second copy.
            try SafeTensors.write(tensors, metadata: metadata(), to: numbered, dtype: .float32)
        }
        let steps = Self.numberedFiles(in: runDirectory).map(\.step).sorted(by: >)
        for old in steps.dropFirst(keepLast) {
            unlink(runDirectory + "/" + Self.numberedFileName(step: old))
        }
        return latest
    }

    /// The `__metadata__` strings.
    func metadata() throws -> [String: String] {
        var m: [String: String] = [
            "format": Self.formatName,
            "format_version": String(Self.formatVersion),
            "step": String(step),
            "epoch": String(epoch),
            "batch_in_epoch": String(batchInEpoch),
            "options": optionsJSON,
            "tensor_count": String(tensors.count),
            "data_crc32c": Self.hex(Self.dataChecksum(tensors)),
            "saved_at": ISO8601DateFormatter().string(from: Date()),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Decimal strings: JSON numbers would lose 64-bit precision in most readers.
        m["random_state"] = String(decoding: try encoder.encode(randomState.mapValues { String($0) }), as: UTF8.self)
        for (key, value) in extra { m["extra." + key] = value }
        return m
    }

    /// CRC-32C of the tensors' float32 little-endian bytes in name order: exactly the data
    /// section of the safetensors file.
    static func dataChecksum(_ tensors: [String: Tensor]) -> UInt32 {
        var crc: UInt32 = 0
        for name in tensors.keys.sorted() {
            let scalars = tensors[name]!.scalars
            #if _endian(little)
            crc = scalars.withUnsafeBytes { CRC32C.extend(crc, $0) }
            #else
            let bytes = scalars.map { $0.bitPattern.littleEndian }
            crc = bytes.withUnsafeBytes { CRC32C.extend(crc, $0) }
            #endif
        }
        return crc
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    /// Removes hidden temporary files left by interrupted checkpoint writes of other processes
    /// (`.checkpoint-….safetensors.tmp-PID-…`).
    static func removeStaleTemporaries(in runDirectory: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: runDirectory) else { return }
        let own = ".tmp-\(getpid())-"
        for name in names where name.hasPrefix(".checkpoint-") && name.contains(".safetensors.tmp-") && !name.contains(own) {
            unlink(runDirectory + "/" + name)
        }
    }

    // MARK: - Loading

    /// Reads and checks a run checkpoint: format marker and version, every field, and the data
    /// checksum.
    public static func load(from path: String) throws -> RunCheckpoint {
        let reader = try SafeTensorsReader(path: path)
        let header = try Header(reader.metadata, path: path)
        let tensors = try reader.readAll()
        if tensors.count != header.tensorCount {
            throw RunCheckpointError(path, "holds \(tensors.count) tensors, the metadata says \(header.tensorCount)")
        }
        if let expected = header.checksum {
            let actual = dataChecksum(tensors)
            if actual != expected {
                throw RunCheckpointError(path, "data checksum mismatch (stored \(hex(expected)), computed \(hex(actual))): the file is damaged")
            }
        }
        return RunCheckpoint(tensors: tensors, step: header.step, epoch: header.epoch, batchInEpoch: header.batchInEpoch,
                             randomState: header.randomState, optionsJSON: header.options, extra: header.extra)
    }

    /// The metadata fields, parsed and checked.
    struct Header {
        let step: Int, epoch: Int, batchInEpoch: Int, tensorCount: Int
        let checksum: UInt32?
        let options: String
        let randomState: [String: UInt64]
        let extra: [String: String]

        init(_ m: [String: String], path: String) throws {
            guard m["format"] == RunCheckpoint.formatName else {
                throw RunCheckpointError(path, "not a run checkpoint (no \"format\": \"\(RunCheckpoint.formatName)\" in its metadata)")
            }
            guard let version = m["format_version"].flatMap({ Int($0) }) else {
                throw RunCheckpointError(path, "run checkpoint without a format version")
            }
            guard version <= RunCheckpoint.formatVersion else {
                throw RunCheckpointError(path, "run checkpoint format version \(version) is newer than this program supports (\(RunCheckpoint.formatVersion))")
            }
            func int(_ key: String) throws -> Int {
                guard let text = m[key], let v = Int(text), v >= 0 else {
                    throw RunCheckpointError(path, "run checkpoint metadata \"\(key)\" is missing or not a non-negative integer")
                }
                return v
            }
            step = try int("step")
            epoch = try int("epoch")
            batchInEpoch = try int("batch_in_epoch")
            tensorCount = try int("tensor_count")
            if let text = m["data_crc32c"] {
                guard let v = UInt32(text, radix: 16) else { throw RunCheckpointError(path, "malformed data_crc32c \"\(text)\"") }
                checksum = v
            } else {
                checksum = nil
            }
            options = m["options"] ?? "{}"
            var state: [String: UInt64] = [:]
            if let json = m["random_state"] {
                guard let strings = try? JSONDecoder().decode([String: String].self, from: Data(json.utf8)) else {
                    throw RunCheckpointError(path, "malformed random_state metadata")
                }
                for (key, value) in strings {
                    guard let v = UInt64(value) else { throw RunCheckpointError(path, "random state \"\(key)\" is not a 64-bit integer") }
                    state[key] = v
                }
            }
            randomState = state
            var extra: [String: String] = [:]
            for (key, value) in m where key.hasPrefix("extra.") { extra[String(key.dropFirst(6))] = value }
            self.extra = extra
        }
    }

    /// Numbered checkpoints in a run folder, by step.
    static func numberedFiles(in runDirectory: String) -> [(step: Int, path: String)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: runDirectory) else { return [] }
        return names.compactMap { name in
            guard name.hasPrefix("checkpoint-"), name.hasSuffix(".safetensors") else { return nil }
            let middle = name.dropFirst("checkpoint-".count).dropLast(".safetensors".count)
            guard !middle.isEmpty, middle.allSatisfy({ $0.isASCII && $0.isNumber }), let step = Int(middle) else { return nil }
            return (step, runDirectory + "/" + name)
        }
    }

    /// The newest checkpoint in `runDirectory` that loads and checks out, with its path; nil when
    /// the folder holds no checkpoint files at all. Candidates (the latest file and the numbered
    /// ones) are ordered by the step in their metadata, newest first; one that cannot be read
    /// (truncated, damaged, not a checkpoint) is reported through `warning` and the next one is
    /// tried. Throws when checkpoint files exist but none is usable, so that a run never silently
    /// restarts from scratch.
    public static func latest(in runDirectory: String,
                              warning: (String) -> Void = { FileHandle.standardError.write(Data(("warning: " + $0 + "\n").utf8)) })
        throws -> (checkpoint: RunCheckpoint, path: String)?
    {
        var paths = numberedFiles(in: runDirectory).sorted { $0.step > $1.step }.map(\.path)
        let latest = runDirectory + "/" + latestFileName
        if FileManager.default.fileExists(atPath: latest) { paths.insert(latest, at: 0) }
        guard !paths.isEmpty else { return nil }

        // Order by the step recorded inside (reading only headers), newest first.
        var candidates: [(step: Int, path: String)] = []
        var problems: [String] = []
        for path in paths {
            do {
                let reader = try SafeTensorsReader(path: path)
                let header = try Header(reader.metadata, path: path)
                candidates.append((header.step, path))
            } catch {
                let message = "skipping checkpoint \(error)"
                warning(message)
                problems.append(message)
            }
        }
        let ordered = candidates.enumerated().sorted {
            $0.element.step != $1.element.step ? $0.element.step > $1.element.step : $0.offset < $1.offset
        }.map(\.element)
        for candidate in ordered {
            do {
                return (try load(from: candidate.path), candidate.path)
            } catch {
                let message = "skipping checkpoint \(error)"
                warning(message)
                problems.append(message)
            }
        }
        throw RunCheckpointError(runDirectory, "no usable checkpoint among \(paths.count) file\(paths.count == 1 ? "" : "s"):\n"
            + problems.map { "  " + $0 }.joined(separator: "\n"))
    }
}
