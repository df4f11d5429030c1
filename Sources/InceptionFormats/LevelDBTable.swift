/// A reader for LevelDB-format tables ("SSTables"), the container of TensorFlow checkpoint
/// indexes (V2 `PREFIX.index`) and of whole V1 checkpoints.
///
/// Layout, from the start of the file:
///   data blocks…, meta-index block, index block, footer (48 bytes).
/// Every block is followed by a 5-byte trailer: the compression type (0 none, 1 Snappy) and the
/// masked CRC-32C of the block contents followed by the type byte (little-endian u32).
/// The footer holds two BlockHandles (varint64 offset, varint64 size) — meta-index, then index —
/// zero-padded to 40 bytes, then the magic number 0xdb4775248b80fb57 as a little-endian u64.
/// The index block maps, for each data block, a key ≥ the block's last key to the block's handle.
/// A block is a run of entries (varint32 shared key prefix length, varint32 unshared length,
/// varint32 value length, the unshared key bytes, the value), then an array of u32 restart
/// offsets (entries stored with shared = 0) and the u32 count of restarts.
struct LevelDBTable {
    static let footerSize = 48
    static let magic: UInt64 = 0xdb47_7524_8b80_fb57
    static let trailerSize = 5

    /// Where a block lies in the file (its trailer follows it).
    struct BlockHandle: Sendable {
        let offset: Int
        let size: Int
    }

    /// A decoded block: the (possibly decompressed) contents and where each entry's key and value lie.
    struct Block {
        let handle: BlockHandle
        let contents: [UInt8]
        let entries: [(key: [UInt8], value: Range<Int>)]
    }

    let file: FileBytes
    /// Handles of the data blocks, in key order.
    let dataBlocks: [BlockHandle]

    var path: String { file.path }

    /// Opens a table: checks the footer and magic, reads and verifies the index block.
    init(file: FileBytes) throws {
        self.file = file
        let path = file.path
        if file.count == 0 { throw FormatError(path, "file is empty (0 bytes)") }
        guard file.count >= Self.footerSize else {
            throw FormatError(path, "file is \(file.count) bytes, too short for a table footer (48 bytes); truncated?")
        }
        let footerStart = file.count - Self.footerSize
        let footer = try file.bytes(at: footerStart, count: Self.footerSize, what: "table footer")
        var cursor = ByteCursor(footer)
        let magic: UInt64
        do {
            var magicCursor = ByteCursor(footer, range: 40..<48)
            magic = try magicCursor.readUInt64LE()
        }
        guard magic == Self.magic else {
            throw FormatError(path, "bad table magic 0x\(String(magic, radix: 16)) in the last 8 bytes (expected 0xdb4775248b80fb57): not a TensorFlow checkpoint table, or truncated")
        }
        let metaIndex: BlockHandle
        let index: BlockHandle
        do {
            metaIndex = try Self.readHandle(&cursor, limit: footerStart)
            index = try Self.readHandle(&cursor, limit: footerStart)
            guard cursor.position <= 40 else { throw Malformed("block handles overrun the 40-byte handle area") }
        } catch let error as Malformed {
            throw FormatError(path, "table footer: \(error.message)")
        }
        // TensorFlow writes an empty meta-index (no filter blocks); it is read only so that its
        // checksum is verified too.
        _ = try Self.readBlock(file, metaIndex, what: "meta-index block")
        let indexBlock = try Self.readBlock(file, index, what: "index block")
        var handles: [BlockHandle] = []
        handles.reserveCapacity(indexBlock.entries.count)
        for (i, entry) in indexBlock.entries.enumerated() {
            var valueCursor = ByteCursor(indexBlock.contents, range: entry.value)
            do {
                handles.append(try Self.readHandle(&valueCursor, limit: footerStart))
            } catch let error as Malformed {
                throw FormatError(path, "index block entry \(i): \(error.message)")
            }
        }
        dataBlocks = handles
    }

    /// Decodes a BlockHandle and checks that the block and its trailer end before `limit`.
    private static func readHandle(_ cursor: inout ByteCursor, limit: Int) throws -> BlockHandle {
        let offset = try cursor.readVarint64()
        let size = try cursor.readVarint64()
        let end = offset.addingReportingOverflow(size)
        guard !end.overflow, end.partialValue <= UInt64(limit),
              UInt64(limit) - end.partialValue >= UInt64(trailerSize) else {
            throw Malformed("block at offset \(offset) with size \(size) (plus its 5-byte trailer) runs past the end of the table data (\(limit) bytes); truncated or corrupt")
        }
        return BlockHandle(offset: Int(offset), size: Int(size))
    }

    /// Reads a block: verifies the trailer checksum, decompresses, and splits it into entries.
    static func readBlock(_ file: FileBytes, _ handle: BlockHandle, what: String) throws -> Block {
        let path = file.path
        var raw = try file.bytes(at: handle.offset, count: handle.size + trailerSize, what: what)
        let type = raw[handle.size]
        var trailer = ByteCursor(raw, range: (handle.size + 1)..<(handle.size + 5))
        let stored = CRC32C.unmask(try trailer.readUInt32LE())
        let computed = CRC32C.checksum(raw[0...handle.size])  // contents plus the type byte
        guard stored == computed else {
            throw FormatError(path, "\(what) at offset \(handle.offset) (\(handle.size) bytes) fails its CRC32C check (stored \(hex32(stored)), computed \(hex32(computed)))")
        }
        raw.removeLast(trailerSize)
        let contents: [UInt8]
        switch type {
        case 0:
            contents = raw
        case 1:
            do {
                contents = try Snappy.decompress(raw)
            } catch let error as Malformed {
                throw FormatError(path, "\(what) at offset \(handle.offset): \(error.message)")
            }
        default:
            throw FormatError(path, "\(what) at offset \(handle.offset) has unknown compression type \(type) (0 = none and 1 = Snappy are supported)")
        }
        do {
            return Block(handle: handle, contents: contents, entries: try parseEntries(contents))
        } catch let error as Malformed {
            throw FormatError(path, "\(what) at offset \(handle.offset): \(error.message)")
        }
    }

    /// Splits block contents into prefix-compressed entries (see the type comment).
    static func parseEntries(_ block: [UInt8]) throws -> [(key: [UInt8], value: Range<Int>)] {
        guard block.count >= 4 else { throw Malformed("block of \(block.count) bytes is too short for its restart count") }
        var tail = ByteCursor(block, range: (block.count - 4)..<block.count)
        let restarts = Int(try tail.readUInt32LE())
        guard restarts <= (block.count - 4) / 4 else {
            throw Malformed("block claims \(restarts) restart points, more than fit in \(block.count) bytes")
        }
        let entriesEnd = block.count - 4 - 4 * restarts
        var cursor = ByteCursor(block, range: 0..<entriesEnd)
        var entries: [(key: [UInt8], value: Range<Int>)] = []
        var key: [UInt8] = []
        while !cursor.isAtEnd {
            let shared = Int(try cursor.readVarint32())
            let unshared = Int(try cursor.readVarint32())
            let valueLength = Int(try cursor.readVarint32())
            guard shared <= key.count else {
                throw Malformed("entry \(entries.count) shares \(shared) key bytes but the previous key has \(key.count)")
            }
            let keyRange = try cursor.take(unshared)
            let valueRange = try cursor.take(valueLength)
            key.removeSubrange(shared...)
            key.append(contentsOf: block[keyRange])
            entries.append((key: key, value: valueRange))
        }
        return entries
    }

    /// Calls `body` for every entry of every data block, in key order, with the decoded block
    /// and the entry's value range in it. Keys must be strictly ascending across the table.
    func forEachEntry(_ body: (_ key: [UInt8], _ block: Block, _ blockIndex: Int, _ value: Range<Int>) throws -> Void) throws {
        var previous: [UInt8]? = nil
        for (blockIndex, handle) in dataBlocks.enumerated() {
            let block = try Self.readBlock(file, handle, what: "data block \(blockIndex)")
            for entry in block.entries {
                if let previous, !previous.lexicographicallyPrecedes(entry.key) {
                    throw FormatError(path, "keys out of order in data block \(blockIndex) at offset \(handle.offset) (\(describeKey(entry.key)) after \(describeKey(previous)))")
                }
                try body(entry.key, block, blockIndex, entry.value)
                previous = entry.key
            }
        }
    }

    /// Re-reads a data block (checksum verified again) and returns one value from it.
    func value(blockIndex: Int, range: Range<Int>) throws -> [UInt8] {
        guard dataBlocks.indices.contains(blockIndex) else {
            throw FormatError(path, "no data block \(blockIndex)")
        }
        let block = try Self.readBlock(file, dataBlocks[blockIndex], what: "data block \(blockIndex)")
        guard range.lowerBound >= 0, range.upperBound <= block.contents.count else {
            throw FormatError(path, "data block \(blockIndex) changed while reading")
        }
        return [UInt8](block.contents[range])
    }
}

/// A table key for messages: printable ASCII as a quoted string, anything else as hex.
func describeKey(_ key: [UInt8]) -> String {
    if key.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) {
        return "\"" + String(decoding: key, as: UTF8.self) + "\""
    }
    return "0x" + key.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}
