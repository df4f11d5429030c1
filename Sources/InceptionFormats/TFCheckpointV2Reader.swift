import InceptionCore

/// Reads a TensorFlow V2 checkpoint ("tensor bundle"): `PREFIX.index`, a LevelDB-format table,
/// and the shards `PREFIX.data-00000-of-0000N` holding raw little-endian tensor bytes.
///
/// Index entries: the empty key holds a `BundleHeaderProto` (shard count, endianness); every
/// other key is a variable name whose value is a `BundleEntryProto` giving dtype, shape, shard,
/// offset, size and the masked CRC-32C of the bytes. A partitioned variable's entry lists its
/// slices instead of data; each slice is an entry of its own under a key that encodes the name
/// and the slice (see `encodeSliceKey`).
///
/// Opening reads and verifies the whole index and checks every entry's byte range against the
/// real size of its shard; reading a tensor verifies its checksum.
public final class TFCheckpointV2Reader: WeightReader {
    /// The checkpoint prefix.
    public let path: String
    public let variables: [TensorInfo]
    private let indexPath: String
    private let entries: [String: BundleEntry]
    private let sliceEntries: [[UInt8]: BundleEntry]
    private let shards: [FileBytes]

    /// The data file name for shard `index` of `count`: `PREFIX.data-00000-of-00001`.
    static func shardPath(prefix: String, index: Int, count: Int) -> String {
        func pad(_ n: Int) -> String {
            let digits = String(n)
            return String(repeating: "0", count: max(0, 5 - digits.count)) + digits
        }
        return "\(prefix).data-\(pad(index))-of-\(pad(count))"
    }

    /// Opens the checkpoint with prefix `prefix` (the path without `.index`).
    public init(prefix: String) throws {
        path = prefix
        indexPath = prefix + ".index"
        let table = try LevelDBTable(file: try FileBytes.load(indexPath))
        var header: BundleHeader? = nil
        var entries: [String: BundleEntry] = [:]
        var sliceEntries: [[UInt8]: BundleEntry] = [:]
        let indexPath = self.indexPath
        try table.forEachEntry { key, block, _, value in
            do {
                if key.isEmpty {
                    header = try BundleHeader(block.contents, value)
                } else if key[0] == 0 {
                    // Slice keys start with OrderedCode's encoding of 0; names never do.
                    sliceEntries[key] = try BundleEntry(block.contents, value)
                } else {
                    entries[String(decoding: key, as: UTF8.self)] = try BundleEntry(block.contents, value)
                }
            } catch let error as Malformed {
                throw FormatError(indexPath, "index entry \(describeKey(key)): \(error.message)")
            }
        }
        guard let header else {
            throw FormatError(indexPath, "no bundle header (the entry with the empty key); not a TensorFlow V2 checkpoint index")
        }
        guard !header.bigEndian else {
            throw FormatError(indexPath, "checkpoint was written big-endian; only little-endian bundles are supported")
        }
        guard header.numShards >= 1, header.numShards <= 100_000 else {
            throw FormatError(indexPath, "bundle header claims \(header.numShards) shards")
        }
        var shards: [FileBytes] = []
        for i in 0..<header.numShards {
            let shardPath = Self.shardPath(prefix: prefix, index: i, count: header.numShards)
            do {
                shards.append(try FileBytes.load(shardPath))
            } catch let error as FormatError {
                throw FormatError(shardPath, "missing or unreadable data shard \(i) of \(header.numShards) named by \(indexPath) (\(error.message))")
            }
        }
        // Check every stored byte range before anything is read.
        func validate(_ entry: BundleEntry, _ label: String) throws {
            guard let fullCount = elementCount(entry.shape) else {
                throw FormatError(indexPath, "\(label) has an invalid shape \(entry.shape)")
            }
            if !entry.slices.isEmpty { return }  // a partitioned variable: the data is in its slices
            guard entry.shardID >= 0, entry.shardID < shards.count else {
                throw FormatError(indexPath, "\(label) is in shard \(entry.shardID), but the header says there are \(shards.count) shards")
            }
            let shard = shards[entry.shardID]
            guard entry.offset >= 0, entry.size >= 0,
                  shard.contains(offset: UInt64(entry.offset), count: UInt64(entry.size)) else {
                throw FormatError(shard.path, "\(label): data at offset \(entry.offset) with \(entry.size) bytes runs past the end of the file (\(shard.count) bytes); truncated?")
            }
            if let itemSize = entry.dtype.fixedSize {
                guard let expected = byteCount(entry.shape, itemSize: itemSize), expected == Int(entry.size) else {
                    throw FormatError(indexPath, "\(label) has shape \(entry.shape) of \(entry.dtype.name) (\(fullCount) elements) but \(entry.size) bytes")
                }
            }
        }
        for (name, entry) in entries { try validate(entry, "variable \"\(name)\"") }
        for (key, entry) in sliceEntries { try validate(entry, "slice entry \(describeKey(key))") }

        self.entries = entries
        self.sliceEntries = sliceEntries
        self.shards = shards
        variables = entries.map { name, entry in
            let size = entry.slices.isEmpty ? Int(entry.size)
                : (byteCount(entry.shape, itemSize: entry.dtype.fixedSize ?? 0) ?? 0)
            return TensorInfo(name: name, dtype: entry.dtype.name, shape: entry.shape, byteCount: size)
        }.sorted { $0.name < $1.name }
    }

    public func tensor(named name: String) throws -> Tensor {
        guard let entry = entries[name] else {
            throw variableNotFound(name, in: path, names: variables.map(\.name))
        }
        guard let type = entry.dtype.elementType else {
            throw FormatError(path, "variable \"\(name)\" has dtype \(entry.dtype.name), which cannot be converted to float32")
        }
        let count = elementCount(entry.shape)!  // validated at open
        if entry.slices.isEmpty {
            return Tensor(shape: entry.shape, scalars: try read(entry, type, count: count, label: "variable \"\(name)\""))
        }
        var assembler = SliceAssembler(shape: entry.shape, count: count)
        for extents in entry.slices {
            let key: [UInt8]
            let box: (starts: [Int], lengths: [Int])
            do {
                key = try encodeSliceKey(name: name, extents)
                box = try resolveSlice(extents, fullShape: entry.shape)
            } catch let error as Malformed {
                throw FormatError(indexPath, "variable \"\(name)\": \(error.message)")
            }
            guard let sliceEntry = sliceEntries[key] else {
                throw FormatError(indexPath, "variable \"\(name)\": the entry for its slice \(describeSlice(extents)) is missing")
            }
            guard sliceEntry.dtype == entry.dtype, sliceEntry.shape == box.lengths else {
                throw FormatError(indexPath, "variable \"\(name)\": slice \(describeSlice(extents)) is stored as \(sliceEntry.dtype.name) \(sliceEntry.shape), expected \(entry.dtype.name) \(box.lengths)")
            }
            let values = try read(sliceEntry, type, count: elementCount(box.lengths)!, label: "variable \"\(name)\" slice \(describeSlice(extents))")
            do {
                try assembler.place(starts: box.starts, lengths: box.lengths, values)
            } catch let error as Malformed {
                throw FormatError(indexPath, "variable \"\(name)\": \(error.message)")
            }
        }
        guard assembler.isComplete else {
            throw FormatError(indexPath, "variable \"\(name)\": its slices do not cover the whole shape \(entry.shape)")
        }
        return Tensor(shape: entry.shape, scalars: assembler.values)
    }

    /// Reads, checksums and converts one entry's bytes.
    private func read(_ entry: BundleEntry, _ type: ElementType, count: Int, label: String) throws -> [Float] {
        let shard = shards[entry.shardID]
        return try shard.withBytes(at: Int(entry.offset), count: Int(entry.size), what: label) { raw in
            if let masked = entry.maskedCRC {
                let stored = CRC32C.unmask(masked)
                let computed = CRC32C.checksum(raw)
                guard stored == computed else {
                    throw FormatError(shard.path, "\(label) (offset \(entry.offset), \(entry.size) bytes) fails its CRC32C check (stored \(hex32(stored)), computed \(hex32(computed)))")
                }
            }
            return type.decode(raw, count: count)
        }
    }
}

/// A slice spec for messages, in TensorFlow's notation: "start,length" per axis, "-" for whole.
func describeSlice(_ extents: [SliceExtent]) -> String {
    extents.map { e in e.length.map { "\(e.start),\($0)" } ?? "-" }.joined(separator: ":")
}

// MARK: - Slice keys (OrderedCode)

/// The index key of one slice of a partitioned variable, as TensorFlow's
/// `EncodeTensorNameSlice` builds it with "OrderedCode" (an order-preserving encoding):
/// the number 0, the name, the number of axes, then per axis the start and the length
/// (−1 for a whole axis) as signed numbers.
func encodeSliceKey(name: String, _ extents: [SliceExtent]) throws -> [UInt8] {
    var key: [UInt8] = []
    appendOrderedNumber(0, to: &key)
    appendOrderedString(Array(name.utf8), to: &key)
    appendOrderedNumber(UInt64(extents.count), to: &key)
    for extent in extents {
        try appendOrderedSignedNumber(Int64(extent.start), to: &key)
        try appendOrderedSignedNumber(Int64(extent.length ?? -1), to: &key)
    }
    return key
}

/// An unsigned number: one byte giving the count of significant bytes, then those bytes, most
/// significant first (0 is the single byte 0).
func appendOrderedNumber(_ value: UInt64, to key: inout [UInt8]) {
    var bytes: [UInt8] = []
    var v = value
    while v > 0 {
        bytes.insert(UInt8(v & 0xff), at: 0)
        v >>= 8
    }
    key.append(UInt8(bytes.count))
    key.append(contentsOf: bytes)
}

/// A string: 0x00 is written 0x00 0xff, 0xff is written 0xff 0x00, and 0x00 0x01 terminates.
func appendOrderedString(_ bytes: [UInt8], to key: inout [UInt8]) {
    for b in bytes {
        switch b {
        case 0x00: key.append(contentsOf: [0x00, 0xff])
        case 0xff: key.append(contentsOf: [0xff, 0x00])
        default: key.append(b)
        }
    }
    key.append(contentsOf: [0x00, 0x01])
}

/// A signed number in n bytes: the n-byte two's complement of the value with its top n bits
/// inverted, where n is the smallest count with 7n − 1 bits enough for the magnitude (so the
/// leading bits spell the length in unary, and negatives sort first). Values needing more than
/// eight bytes (|v| ≥ 2^55) never occur in slice specs and are refused.
func appendOrderedSignedNumber(_ value: Int64, to key: inout [UInt8]) throws {
    let magnitude: UInt64 = value < 0 ? ~UInt64(bitPattern: value) : UInt64(value)
    let bits = 64 - magnitude.leadingZeroBitCount
    let length = bits / 7 + 1
    guard length <= 8 else { throw Malformed("slice bound \(value) is too large to encode") }
    let pattern = UInt64(bitPattern: value)
    var bytes: [UInt8] = (0..<length).map { i in UInt8(truncatingIfNeeded: pattern >> (8 * UInt64(length - 1 - i))) }
    bytes[0] ^= ~UInt8(0xff >> length)  // `length` leading one-bits
    key.append(contentsOf: bytes)
}
