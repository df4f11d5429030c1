import InceptionCore

/// safetensors: the project's native weight format.
///
/// Layout: an unsigned 64-bit little-endian header length N; N bytes of UTF-8 JSON (starting
/// with `{`, possibly padded with trailing spaces) mapping each tensor name to
/// `{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}`, plus an optional
/// `"__metadata__"` object of string values; then the data buffer. Offsets are relative to the
/// buffer, tensors are row-major little-endian, and the tensors must tile the buffer exactly:
/// no overlaps, no gaps, nothing left over.
public enum SafeTensors {
    /// The element types `write` can store.
    public enum StorageType: String, Sendable {
        case float32 = "F32"
        case float16 = "F16"
    }

    /// The largest header accepted (the reference implementation's limit).
    static let maxHeaderLength = 100 << 20

    /// safetensors dtype names and the element types they are read as.
    static let readableTypes: [String: ElementType] = [
        "F32": .float32, "F16": .float16, "BF16": .bfloat16, "F64": .float64,
        "I8": .int8, "U8": .uint8, "I16": .int16, "U16": .uint16,
        "I32": .int32, "U32": .uint32, "I64": .int64, "U64": .uint64, "BOOL": .bool,
    ]
    /// Types that are recognised (and size-checked) but not converted to Float.
    static let otherTypeSizes: [String: Int] = ["F8_E4M3": 1, "F8_E5M2": 1, "C64": 8]

    /// Writes `tensors` (and string `metadata` under `__metadata__`) to `path` atomically.
    /// Tensors are stored in name order. With `.float16`, values are rounded to nearest even;
    /// a finite value beyond the float16 range is an error rather than a silent infinity.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:],
                             to path: String, dtype: StorageType = .float32) throws {
        let names = tensors.keys.sorted()
        let itemSize = dtype == .float32 ? 4 : 2
        var header = "{"
        var members: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonQuoted($0)):\(jsonQuoted(metadata[$0]!))" }
            members.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for name in names {
            guard name != "__metadata__" else { throw FormatError(path, "a tensor cannot be named __metadata__") }
            let t = tensors[name]!
            let end = offset + t.count * itemSize
            let shape = t.shape.map(String.init).joined(separator: ",")
            members.append("\(jsonQuoted(name)):{\"dtype\":\"\(dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += members.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        // Pad with spaces so the data buffer starts 8-byte aligned.
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }

        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count + offset)
        var length = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        for name in names {
            let t = tensors[name]!
            switch dtype {
            case .float32:
                appendLittleEndian(t.scalars, to: &out)
            case .float16:
                for v in t.scalars {
                    let h = halfFromFloat(v)
                    if v.isFinite && (h & 0x7c00) == 0x7c00 {
                        throw FormatError(path, "tensor \"\(name)\" holds \(v), beyond the float16 range (±65504)")
                    }
                    out.append(UInt8(h & 0xff))
                    out.append(UInt8(h >> 8))
                }
            }
        }
        try writeFileAtomically(out, to: path)
    }

    /// Reads every convertible tensor of a safetensors file.
    public static func read(_ path: String) throws -> [String: Tensor] {
        try SafeTensorsReader(path: path).readAll()
    }
}

/// A safetensors file opened for reading; the header is fully validated on open.
public final class SafeTensorsReader: WeightReader {
    public let path: String
    public let variables: [TensorInfo]
    /// The `__metadata__` strings.
    public let metadata: [String: String]
    private let file: FileBytes
    private let entries: [String: Entry]

    private struct Entry: Sendable {
        let dtype: String
        let type: ElementType?
        let shape: [Int]
        let begin: Int  // absolute file offsets
        let end: Int
    }

    public init(path: String) throws {
        self.path = path
        let file = try FileBytes.load(path)
        self.file = file
        if file.count == 0 { throw FormatError(path, "file is empty (0 bytes)") }
        guard file.count >= 8 else {
            throw FormatError(path, "file is \(file.count) bytes, too short for the 8-byte header length")
        }
        var lengthCursor = ByteCursor(try file.bytes(at: 0, count: 8, what: "header length"))
        let headerLength = try lengthCursor.readUInt64LE()
        guard headerLength <= UInt64(file.count - 8) else {
            throw FormatError(path, "header length \(headerLength) runs past the end of the file (\(file.count) bytes)")
        }
        guard headerLength <= UInt64(SafeTensors.maxHeaderLength) else {
            throw FormatError(path, "header length \(headerLength) exceeds the 100 MiB limit")
        }
        let headerBytes = try file.bytes(at: 8, count: Int(headerLength), what: "header")
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw FormatError(path, "header does not start with '{'; not a safetensors file")
        }
        let root: JSONValue
        do {
            root = try JSONParser.parse(headerBytes)
        } catch let error as Malformed {
            throw FormatError(path, error.message)
        }
        guard case let .object(members) = root else { throw FormatError(path, "header is not a JSON object") }

        let dataStart = 8 + Int(headerLength)
        let dataSize = file.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        var order: [(name: String, entry: Entry)] = []
        for (name, value) in members {
            if name == "__metadata__" {
                guard case let .object(pairs) = value else { throw FormatError(path, "__metadata__ is \(value.kind), not an object") }
                for (key, v) in pairs {
                    guard case let .string(s) = v else { throw FormatError(path, "__metadata__ value \"\(key)\" is \(v.kind), not a string") }
                    metadata[key] = s
                }
                continue
            }
            let entry = try Self.parseEntry(name, value, path: path, dataStart: dataStart, dataSize: dataSize)
            entries[name] = entry
            order.append((name, entry))
        }
        // The tensors must tile the buffer: sorted by offset, each starts where the previous ended.
        order.sort { ($0.entry.begin, $0.entry.end) < ($1.entry.begin, $1.entry.end) }
        var expected = dataStart
        var previous: String? = nil
        for (name, entry) in order {
            if entry.begin < expected {
                throw FormatError(path, "tensor \"\(name)\" overlaps tensor \"\(previous ?? "")\" (data_offsets [\(entry.begin - dataStart), \(entry.end - dataStart)])")
            }
            if entry.begin > expected {
                throw FormatError(path, "data is not contiguous: \(entry.begin - expected) unused bytes before tensor \"\(name)\"")
            }
            expected = entry.end
            previous = name
        }
        if expected != file.count {
            throw FormatError(path, "\(file.count - expected) bytes at the end of the data are not part of any tensor")
        }
        self.metadata = metadata
        self.entries = entries
        variables = entries.map { name, e in
            TensorInfo(name: name, dtype: e.type?.name ?? e.dtype, shape: e.shape, byteCount: e.end - e.begin)
        }.sorted { $0.name < $1.name }
    }

    private static func parseEntry(_ name: String, _ value: JSONValue, path: String,
                                   dataStart: Int, dataSize: Int) throws -> Entry {
        func bad(_ message: String) -> FormatError { FormatError(path, "tensor \"\(name)\": \(message)") }
        guard case let .object(fields) = value else { throw bad("header entry is \(value.kind), not an object") }
        var dtype: String? = nil
        var shape: [Int]? = nil
        var offsets: [Int]? = nil
        for (key, v) in fields {
            switch key {
            case "dtype":
                guard case let .string(s) = v else { throw bad("dtype is \(v.kind)") }
                dtype = s
            case "shape":
                guard case let .array(items) = v else { throw bad("shape is \(v.kind)") }
                shape = try items.map { item in
                    guard let n = item.nonNegativeInt else { throw bad("shape holds something other than a non-negative integer") }
                    return n
                }
            case "data_offsets":
                guard case let .array(items) = v, items.count == 2 else { throw bad("data_offsets is not a two-element array") }
                offsets = try items.map { item in
                    guard let n = item.nonNegativeInt else { throw bad("data_offsets holds something other than a non-negative integer") }
                    return n
                }
            default:
                continue
            }
        }
        guard let dtype, let shape, let offsets else { throw bad("entry needs dtype, shape and data_offsets") }
        let type = SafeTensors.readableTypes[dtype]
        guard let itemSize = type?.size ?? SafeTensors.otherTypeSizes[dtype] else { throw bad("unknown dtype \"\(dtype)\"") }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw bad("data_offsets [\(begin), \(end)] end before they begin") }
        guard end <= dataSize else {
            throw bad("data_offsets [\(begin), \(end)] run past the end of the data (\(dataSize) bytes after the header)")
        }
        guard let needed = byteCount(shape, itemSize: itemSize) else { throw bad("shape \(shape) is too large") }
        guard needed == end - begin else {
            throw bad("shape \(shape) of \(dtype) needs \(needed) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
        }
        return Entry(dtype: dtype, type: type, shape: shape, begin: dataStart + begin, end: dataStart + end)
    }

    public func tensor(named name: String) throws -> Tensor {
        guard let entry = entries[name] else {
            throw variableNotFound(name, in: path, names: variables.map(\.name))
        }
        guard let type = entry.type else {
            throw FormatError(path, "tensor \"\(name)\" has dtype \(entry.dtype), which cannot be converted to float32")
        }
        let count = elementCount(entry.shape)!
        let values = try file.withBytes(at: entry.begin, count: entry.end - entry.begin, what: "tensor \"\(name)\"") {
            type.decode($0, count: count)
        }
        return Tensor(shape: entry.shape, scalars: values)
    }
}
