import Foundation
import InceptionCore

/// A PyTorch `state_dict` file (`.pth` / `.pt`, as `torch.save` writes it), read without
/// executing anything.
///
/// Since PyTorch 1.6 the file is an uncompressed zip archive whose members sit in one folder
/// (`ARCHIVE/`, named after the file torch.save wrote, or "archive"):
/// - `ARCHIVE/data.pkl`: a pickle (protocol 2) of the saved object — for a state dict, an
///   `OrderedDict` mapping parameter names to tensors, each written as a call
///   `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
///   backward_hooks)` whose storage is a persistent id `('storage', torch.FloatStorage, KEY,
///   location, numel)`;
/// - `ARCHIVE/data/KEY`: each storage's raw elements, little-endian (64-byte aligned in the file);
/// - `ARCHIVE/version`, `ARCHIVE/byteorder` ("little" or "big"), `ARCHIVE/.format_version`, ….
///
/// Older files (PyTorch 0.4–1.5, and `_use_new_zipfile_serialization=False` since; torchvision's
/// 2019 weights such as GoogLeNet's are of this kind) are the *legacy* format: five pickles in a
/// row — torch's magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict
/// (`little_endian`, type sizes), the object (persistent ids have a sixth field, None), and the
/// sorted list of storage keys — followed, for each key in that order, by the storage's element
/// count (int64, little-endian) and its raw little-endian elements. Both formats are read.
///
/// Every pickle is run by `PickleMachine`, which understands only the data opcodes and the few
/// globals a state dict uses, and refuses any other callable by name (so a malicious file that
/// would run `os.system` under `torch.load` is an error here, and nothing runs). Tensors may be
/// strided views of a shared storage (a transposed weight, two tensors in one storage); every
/// view is checked to lie inside its storage, and every storage inside the file, on open.
///
/// The top-level object must be a dict of tensors, or a dict with exactly one entry that is a dict
/// of tensors (a training checkpoint such as `{"epoch": 3, "state_dict": {...}}`); `stateDictKey`
/// says which. TorchScript archives (`torch.jit.save`) are refused with an explanation.
public final class PyTorchReader: WeightReader {
    public let path: String
    public let variables: [TensorInfo]
    /// nil when the pickle's top-level dict is the state dict; otherwise the key of the entry
    /// that holds it (e.g. "state_dict" or "model").
    public let stateDictKey: String?
    /// True for the legacy (pre-1.6, non-zip) format.
    public let isLegacyFormat: Bool
    /// The zip folder the records are in ("archive", or the stem of the saved file name); empty
    /// for the legacy format.
    public let archiveName: String
    /// The archive's `version` record (torch writes "3"), or "1001" (the protocol version) for
    /// the legacy format.
    public let formatVersion: String?
    /// True when the `byteorder` record says "big" (storages are then byte-swapped on read).
    public let isBigEndian: Bool
    /// Whether `tensor(named:)` checks each storage's CRC-32 before decoding it (data.pkl is
    /// always checked on open; the legacy format has no checksums).
    public let verifiesChecksums: Bool

    private let file: FileBytes
    private let archive: ZipArchive?
    private let entries: [String: Entry]

    private struct Entry: Sendable {
        let dtype: TorchDType
        let shape: [Int]
        let stride: [Int]
        let offset: Int
        /// The zip member holding the storage (nil in the legacy format).
        let record: ZipArchive.Entry?
        /// The storage's bytes in the file.
        let range: Range<Int>
    }

    /// Where a storage's bytes are (zip member or legacy file range).
    private typealias StorageLocation = (record: ZipArchive.Entry?, range: Range<Int>, name: String)

    /// The largest pickle accepted (a state dict's pickle is a few hundred bytes per tensor).
    static let maxPickleBytes = 256 << 20

    /// The first bytes of a legacy file: a protocol-2 pickle of torch's magic number
    /// 0x1950a86a20f9469cfc6c.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]

    /// Opens and validates `path`. With `verifyChecksums` (the default) each storage's CRC-32 is
    /// checked when a tensor is read from it.
    public convenience init(path: String, verifyChecksums: Bool = true) throws {
        try self.init(file: FileBytes.load(path), verifyChecksums: verifyChecksums)
    }

    /// Reads from bytes already loaded (tests use this to try many variants without files).
    init(file: FileBytes, verifyChecksums: Bool = true) throws {
        let path = file.path
        self.path = path
        self.file = file
        self.verifiesChecksums = verifyChecksums
        if file.count == 0 { throw FormatError(path, "file is empty (0 bytes)") }
        let head = try file.bytes(at: 0, count: min(16, file.count), what: "file start")

        var machine: PickleMachine
        let root: PickleValue
        let locate: (PickleStorage) throws -> StorageLocation
        if head.starts(with: Self.legacyMagic) {
            isLegacyFormat = true
            archive = nil
            archiveName = ""
            formatVersion = "1001"
            isBigEndian = false
            let legacy = try Self.readLegacy(file)
            machine = legacy.machine
            root = legacy.root
            let ranges = legacy.ranges
            locate = { storage in
                guard let range = ranges[storage.key] else {
                    throw FormatError(path, "storage \"\(storage.key)\" is not in the file's list of storages")
                }
                return (nil, range, "legacy storage \(storage.key)")
            }
        } else {
            guard head.starts(with: ZipArchive.magic) else {
                throw FormatError(path, "is not a PyTorch file: torch.save writes a zip archive starting with PK\\x03\\x04 (or, before PyTorch 1.6, a pickle starting with 80 02 8a 0a); this file starts with \(head.prefix(4).map { String($0, radix: 16) }.joined(separator: " "))")
            }
            isLegacyFormat = false
            let archive = try ZipArchive(file)
            self.archive = archive

            // The records' folder: the one holding data.pkl.
            let pickles = archive.entries.filter { Self.isPickleRecord($0.name) }
            guard let pickle = pickles.first else {
                if archive.entries.contains(where: { $0.name.hasSuffix("constants.pkl") || $0.name.contains("/code/") }) {
                    throw Self.torchScript(path)
                }
                throw FormatError(path, "zip archive has no data.pkl record (\(archive.entries.count) members): not a file written by torch.save")
            }
            guard pickles.count == 1 else {
                throw FormatError(path, "zip archive holds \(pickles.count) data.pkl records (\(pickles.prefix(3).map(\.name).joined(separator: ", "))); expected one")
            }
            let prefix = String(pickle.name.dropLast("data.pkl".count))
            archiveName = prefix.isEmpty ? "" : String(prefix.dropLast())
            if archive.entry(named: prefix + "constants.pkl") != nil
                || archive.entries.contains(where: { $0.name.hasPrefix(prefix + "code/") }) {
                throw Self.torchScript(path)
            }

            func smallRecord(_ name: String) throws -> String? {
                guard let entry = archive.entry(named: prefix + name) else { return nil }
                let bytes = try archive.read(entry, limit: 64)
                return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            formatVersion = try smallRecord("version")
            switch try smallRecord("byteorder") {
            case nil, "little": isBigEndian = false
            case "big": isBigEndian = true
            case let other?:
                throw FormatError(path, "byteorder record says \"\(other)\"; expected \"little\" or \"big\"")
            }

            let pickleBytes = try archive.read(pickle, limit: Self.maxPickleBytes)
            machine = PickleMachine(bytes: pickleBytes, name: pickle.name)
            do {
                root = try machine.run()
            } catch let error as PickleError {
                throw FormatError(path, error.message)
            }
            locate = { storage in
                let name = prefix + "data/" + storage.key
                guard let record = archive.entry(named: name) else {
                    throw FormatError(path, "storage \"\(storage.key)\" has no record \(name) in the archive")
                }
                return (record, try archive.dataRange(of: record), name)
            }
        }

        // Find the state dict.
        guard case .dict(let top) = root else {
            throw FormatError(path, "the pickle holds \(machine.describe(root)), not a state_dict (a dict of tensors)")
        }
        func isTensorDict(_ d: Int) -> Bool {
            machine.dicts[d].values.allSatisfy { if case .tensor = $0 { return true } else { return false } }
        }
        let chosen: Int
        if isTensorDict(top) {
            chosen = top
            stateDictKey = nil
        } else {
            let candidates = machine.dicts[top].keys.indices.compactMap { i -> (String, Int)? in
                guard case .string(let key) = machine.dicts[top].keys[i],
                      case .dict(let inner) = machine.dicts[top].values[i],
                      machine.dicts[inner].count > 0, isTensorDict(inner) else { return nil }
                return (key, inner)
            }
            guard candidates.count == 1 else {
                let keys = machine.dicts[top].keys.prefix(8).map { k -> String in
                    if case .string(let s) = k { return "\"\(s)\"" } else { return machine.describe(k) }
                }
                let more = machine.dicts[top].count > 8 ? ", …" : ""
                let why = candidates.isEmpty
                    ? "and no entry is a dict of tensors"
                    : "and \(candidates.count) entries (\(candidates.map { "\"\($0.0)\"" }.joined(separator: ", "))) are dicts of tensors, so which one is meant is ambiguous"
                throw FormatError(path, "the pickle holds a dict (keys \(keys.joined(separator: ", "))\(more)) that is not a state_dict: not all its values are tensors, \(why)")
            }
            stateDictKey = candidates[0].0
            chosen = candidates[0].1
        }

        // Check every tensor's storage.
        var locations: [Int: StorageLocation] = [:]
        var entries: [String: Entry] = [:]
        let dict = machine.dicts[chosen]
        for (keyValue, value) in zip(dict.keys, dict.values) {
            guard case .string(let name) = keyValue else {
                throw FormatError(path, "state_dict key is \(machine.describe(keyValue)), not a string")
            }
            guard case .tensor(let t) = value else { continue }
            let tensor = machine.tensors[t]
            let storage = machine.storages[tensor.storage]
            if locations[tensor.storage] == nil {
                let location = try locate(storage)
                let needed = storage.byteCount!
                guard location.range.count >= needed else {
                    throw FormatError(path, "tensor \"\(name)\": storage \(location.name) holds \(location.range.count) bytes, but the pickle declares \(storage.numel) \(storage.dtype?.name ?? "byte") elements (\(needed) bytes); the storage is too short")
                }
                locations[tensor.storage] = location
            }
            let location = locations[tensor.storage]!
            entries[name] = Entry(dtype: tensor.dtype, shape: tensor.shape, stride: tensor.stride,
                                  offset: tensor.offset, record: location.record, range: location.range)
        }
        self.entries = entries
        variables = entries.map { name, e in
            TensorInfo(name: name, dtype: e.dtype.name, shape: e.shape,
                       byteCount: (elementCount(e.shape) ?? 0) * e.dtype.size)
        }.sorted { $0.name < $1.name }
    }

    private static func torchScript(_ path: String) -> FormatError {
        FormatError(path, "is a TorchScript archive (torch.jit.save), not a torch.save state_dict: load it in PyTorch and torch.save(model.state_dict(), ...)")
    }

    /// Runs the legacy format's five pickles and locates its storages.
    private static func readLegacy(_ file: FileBytes) throws -> (machine: PickleMachine, root: PickleValue, ranges: [String: Range<Int>]) {
        // The pickles come first and are small; try a 4 MiB prefix before copying more.
        let full = min(file.count, maxPickleBytes)
        let first = min(full, 4 << 20)
        do {
            return try readLegacy(file, prefix: first)
        } catch where first < full {
            return try readLegacy(file, prefix: full)
        }
    }

    private static func readLegacy(_ file: FileBytes, prefix: Int) throws -> (machine: PickleMachine, root: PickleValue, ranges: [String: Range<Int>]) {
        let path = file.path
        let bytes = try file.bytes(at: 0, count: prefix, what: "legacy pickles")
        func run(_ what: String, from start: Int) throws -> (PickleMachine, PickleValue) {
            var machine = PickleMachine(bytes: bytes, name: "(legacy \(what))", start: start)
            do {
                let value = try machine.run()
                return (machine, value)
            } catch let error as PickleError {
                throw FormatError(path, error.message)
            }
        }
        // The magic number's pickle is fixed: PROTO 2, LONG1 of ten bytes, STOP. (Ten bytes is
        // more than the machine's 64-bit integers, so it is compared, not run.)
        guard bytes.starts(with: legacyMagic + [0x2e]) else {
            throw FormatError(path, "legacy magic number pickle is malformed")
        }
        let (versionMachine, version) = try run("protocol version", from: legacyMagic.count + 1)
        guard case .int(1001) = version else {
            throw FormatError(path, "legacy protocol version is \(versionMachine.describe(version)), expected 1001")
        }
        let (infoMachine, info) = try run("sys_info", from: versionMachine.endPosition)
        guard case .dict(let d) = info else {
            throw FormatError(path, "legacy sys_info is \(infoMachine.describe(info)), not a dict")
        }
        let infoDict = infoMachine.dicts[d]
        if let i = infoDict.index[.string("little_endian")], case .bool(false) = infoDict.values[i] {
            throw FormatError(path, "was saved on a big-endian machine (legacy format), which this reader does not support")
        }
        let (machine, root) = try run("object", from: infoMachine.endPosition)
        let (keysMachine, keysValue) = try run("storage keys", from: machine.endPosition)
        guard case .list(let l) = keysValue else {
            throw FormatError(path, "legacy storage key list is \(keysMachine.describe(keysValue)), not a list")
        }
        var keys: [String] = []
        for value in keysMachine.lists[l] {
            guard case .string(let key) = value else {
                throw FormatError(path, "legacy storage key list holds \(keysMachine.describe(value)), not a string")
            }
            keys.append(key)
        }

        // Each storage: its element count (int64) and its elements.
        let sizes = Dictionary(machine.storages.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var ranges: [String: Range<Int>] = [:]
        var offset = keysMachine.endPosition
        for key in keys {
            guard let storage = sizes[key] else {
                throw FormatError(path, "legacy storage \(key) is listed but no tensor uses it")
            }
            guard ranges[key] == nil else { throw FormatError(path, "legacy storage \(key) is listed twice") }
            var header = ByteCursor(try file.bytes(at: offset, count: 8, what: "size of legacy storage \(key)"))
            let count = try header.readUInt64LE()
            guard count == UInt64(storage.numel) else {
                throw FormatError(path, "legacy storage \(key) at offset \(offset) holds \(count) elements, but the pickle declares \(storage.numel)")
            }
            let byteCount = storage.byteCount!
            guard file.contains(offset: offset + 8, count: byteCount) else {
                throw FormatError(path, "legacy storage \(key) (\(byteCount) bytes at offset \(offset + 8)) runs past the end of the file (\(file.count) bytes); the file is truncated")
            }
            ranges[key] = (offset + 8)..<(offset + 8 + byteCount)
            offset += 8 + byteCount
        }
        return (machine, root, ranges)
    }

    /// "data.pkl", or "FOLDER/data.pkl" with a single folder level.
    static func isPickleRecord(_ name: String) -> Bool {
        guard name.hasSuffix("data.pkl") else { return false }
        let folder = name.dropLast("data.pkl".count)
        if folder.isEmpty { return true }
        return folder.hasSuffix("/") && folder.dropLast().firstIndex(of: "/") == nil && folder.count > 1
    }

    /// True when `file` looks like something this reader should open: a zip archive with a
    /// data.pkl record, or a legacy torch.save file (which is then refused with an explanation).
    static func recognises(_ file: FileBytes) -> Bool {
        guard let head = try? file.bytes(at: 0, count: min(16, file.count), what: "file start") else { return false }
        if head.starts(with: legacyMagic) { return true }
        guard head.starts(with: ZipArchive.magic), let archive = try? ZipArchive(file) else { return false }
        return archive.entries.contains { isPickleRecord($0.name) }
    }

    /// The ordered dict's tensor as float32 (float16, bfloat16, float64 and integer types are
    /// converted; strided views are gathered into row-major order).
    public func tensor(named name: String) throws -> Tensor {
        guard let e = entries[name] else {
            throw variableNotFound(name, in: path, names: variables.map(\.name))
        }
        guard let element = e.dtype.element else {
            throw FormatError(path, "tensor \"\(name)\" has dtype \(e.dtype.name), which cannot be converted to float32")
        }
        if verifiesChecksums, let archive, let record = e.record {
            try archive.verifyChecksum(of: record, range: e.range)
        }
        let count = elementCount(e.shape)!
        if count == 0 { return Tensor(shape: e.shape, scalars: []) }
        let size = e.dtype.size

        // The span of storage elements the view touches.
        var last = e.offset
        for (extent, step) in zip(e.shape, e.stride) { last += (extent - 1) * step }
        let span = last - e.offset + 1
        let start = e.range.lowerBound + e.offset * size
        let decoded: [Float] = try file.withBytes(at: start, count: span * size, what: "storage of tensor \"\(name)\"") { raw in
            if isBigEndian && size > 1 {
                var swapped = [UInt8](raw)
                var i = 0
                while i < swapped.count {
                    swapped[i..<(i + size)].reverse()
                    i += size
                }
                return swapped.withUnsafeBytes { element.decode($0, count: span) }
            }
            return element.decode(raw, count: span)
        }
        if span == count && Self.isRowMajor(shape: e.shape, stride: e.stride) {
            return Tensor(shape: e.shape, scalars: decoded)
        }
        return Tensor(shape: e.shape, scalars: Self.gather(decoded, shape: e.shape, stride: e.stride, count: count))
    }

    /// True when `stride` is the row-major stride of `shape` (extents of 1 may have any stride).
    static func isRowMajor(shape: [Int], stride: [Int]) -> Bool {
        var expected = 1
        for axis in shape.indices.reversed() {
            if shape[axis] != 1 && stride[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }

    /// The elements of a strided view (offsets relative to `source[0]`) in row-major order.
    static func gather(_ source: [Float], shape: [Int], stride: [Int], count: Int) -> [Float] {
        let rank = shape.count
        var index = [Int](repeating: 0, count: rank)
        var position = 0
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            for i in 0..<count {
                out[i] = source[position]
                // Advance the odometer, innermost axis first.
                var axis = rank - 1
                while axis >= 0 {
                    index[axis] += 1
                    position += stride[axis]
                    if index[axis] < shape[axis] { break }
                    position -= stride[axis] * shape[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
            initialized = count
        }
    }
}
