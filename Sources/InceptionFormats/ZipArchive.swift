/// The directory of a zip archive, for reading members that are *stored* (not compressed), as
/// torch.save writes them.
///
/// Layout (PKWARE APPNOTE 6.3): each member is a local file header (signature `PK\x03\x04`, 30
/// bytes, then the name and an extra field) followed by its data; then the central directory, one
/// 46-byte header (`PK\x01\x02`) per member with its sizes, CRC-32 and local-header offset; then
/// the end-of-central-directory record (`PK\x05\x06`, 22 bytes plus a comment of up to 64 KiB).
/// Archives with more than 65,535 members or offsets and sizes past 4 GiB use zip64: a zip64
/// end-of-central-directory record and its locator (`PK\x06\x06`, `PK\x06\x07`) come before the
/// classic record, and a value of 0xFFFFFFFF in a header means "see the zip64 extra field (id
/// 0x0001)". torch.save sets general-purpose flag bit 3, so its local headers carry zero sizes and
/// CRCs (the real values follow the data and are in the central directory): sizes and CRCs are
/// therefore always taken from the central directory.
///
/// Everything read from the file is bounds-checked; malformed input is a `FormatError` naming the
/// file and the member.
struct ZipArchive: Sendable {
    struct Entry: Sendable {
        /// The member's name ("archive/data.pkl").
        let name: String
        let nameBytes: [UInt8]
        /// Compression method: 0 stored, 8 deflate, ….
        let method: UInt16
        let flags: UInt16
        let crc32: UInt32
        let compressedSize: UInt64
        let size: UInt64
        let localHeaderOffset: UInt64

        var isEncrypted: Bool { flags & 1 != 0 }
    }

    let file: FileBytes
    /// The members in central-directory order.
    let entries: [Entry]
    /// Where the central directory starts: member data must end before it.
    let centralDirectoryOffset: Int
    /// True when the archive has a zip64 end-of-central-directory record.
    let isZip64: Bool
    private let index: [String: Int]

    static let localHeaderSignature: UInt32 = 0x0403_4b50
    static let centralHeaderSignature: UInt32 = 0x0201_4b50
    static let endSignature: UInt32 = 0x0605_4b50
    static let zip64EndSignature: UInt32 = 0x0606_4b50
    static let zip64LocatorSignature: UInt32 = 0x0706_4b50
    /// More members than this is refused (a state dict has one per tensor storage).
    static let maxEntries = 4_000_000

    /// The four bytes every zip archive with at least one member starts with.
    static let magic: [UInt8] = [0x50, 0x4b, 0x03, 0x04]

    var path: String { file.path }

    init(_ file: FileBytes) throws {
        self.file = file
        let path = file.path
        func fail(_ message: String) -> FormatError { FormatError(path, "zip archive: " + message) }
        let size = file.count
        guard size >= 22 else {
            throw fail("the file is \(size) bytes, too short for a zip archive (its end-of-central-directory record alone is 22 bytes)")
        }

        // The end-of-central-directory record: the last signature whose comment ends the file.
        let searchStart = max(0, size - 22 - 0xFFFF)
        let tail = try file.bytes(at: searchStart, count: size - searchStart, what: "end of the zip archive")
        var endAt: Int? = nil
        var p = tail.count - 22
        while p >= 0 {
            if tail[p] == 0x50, tail[p + 1] == 0x4b, tail[p + 2] == 0x05, tail[p + 3] == 0x06 {
                let commentLength = Int(tail[p + 20]) | Int(tail[p + 21]) << 8
                if p + 22 + commentLength == tail.count {
                    endAt = p
                    break
                }
            }
            p -= 1
        }
        guard let endInTail = endAt else {
            throw fail("no end-of-central-directory record in the last \(tail.count) bytes: not a zip archive, or a truncated one")
        }
        let endOffset = searchStart + endInTail
        var end = ByteCursor(tail, range: endInTail..<(endInTail + 22))
        _ = try end.readUInt32LE()
        let disk = try Self.readUInt16(&end)
        let directoryDisk = try Self.readUInt16(&end)
        let entriesOnDisk = try Self.readUInt16(&end)
        var entryCount = UInt64(try Self.readUInt16(&end))
        var directorySize = UInt64(try end.readUInt32LE())
        var directoryOffset = UInt64(try end.readUInt32LE())
        guard disk == 0, directoryDisk == 0, UInt64(entriesOnDisk) == entryCount else {
            throw fail("spans several disks (disk \(disk), central directory on disk \(directoryDisk)); only single-file archives are supported")
        }

        // zip64: a locator just before the classic record points at the zip64 record.
        var directoryLimit = endOffset
        var zip64 = false
        if endOffset >= 20 {
            var locator = ByteCursor(try file.bytes(at: endOffset - 20, count: 20, what: "zip64 locator"))
            if try locator.readUInt32LE() == Self.zip64LocatorSignature {
                zip64 = true
                let recordDisk = try locator.readUInt32LE()
                let recordOffset = try locator.readUInt64LE()
                let totalDisks = try locator.readUInt32LE()
                guard recordDisk == 0, totalDisks <= 1 else {
                    throw fail("zip64 locator names disk \(recordDisk) of \(totalDisks); only single-file archives are supported")
                }
                guard recordOffset <= UInt64(endOffset - 20), UInt64(endOffset - 20) - recordOffset >= 56 else {
                    throw fail("zip64 end-of-central-directory offset \(recordOffset) is not inside the archive before its locator")
                }
                let start = Int(recordOffset)
                var record = ByteCursor(try file.bytes(at: start, count: 56, what: "zip64 end-of-central-directory record"))
                guard try record.readUInt32LE() == Self.zip64EndSignature else {
                    throw fail("no zip64 end-of-central-directory record at offset \(recordOffset), where the locator points")
                }
                _ = try record.readUInt64LE()  // size of the rest of the record
                _ = try record.readUInt32LE()  // versions made by / needed
                let disk64 = try record.readUInt32LE()
                let directoryDisk64 = try record.readUInt32LE()
                let onDisk64 = try record.readUInt64LE()
                entryCount = try record.readUInt64LE()
                directorySize = try record.readUInt64LE()
                directoryOffset = try record.readUInt64LE()
                guard disk64 == 0, directoryDisk64 == 0, onDisk64 == entryCount else {
                    throw fail("zip64 record spans several disks; only single-file archives are supported")
                }
                directoryLimit = start
            }
        }
        isZip64 = zip64
        guard entryCount <= UInt64(Self.maxEntries) else {
            throw fail("claims \(entryCount) members, more than the \(Self.maxEntries) this reader accepts")
        }
        guard directoryOffset <= UInt64(directoryLimit), directorySize <= UInt64(directoryLimit) - directoryOffset else {
            throw fail("central directory (offset \(directoryOffset), \(directorySize) bytes) is not inside the archive before its end record (offset \(directoryLimit)); the file may be truncated")
        }
        guard entryCount * 46 <= directorySize else {
            throw fail("central directory of \(directorySize) bytes is too small for its \(entryCount) members")
        }
        centralDirectoryOffset = Int(directoryOffset)
        let directory = try file.bytes(at: Int(directoryOffset), count: Int(directorySize), what: "zip central directory")
        var cursor = ByteCursor(directory)
        var entries: [Entry] = []
        entries.reserveCapacity(Int(entryCount))
        var index: [String: Int] = [:]
        for number in 0..<Int(entryCount) {
            do {
                let entry = try Self.readCentralHeader(&cursor)
                if index[entry.name] != nil { throw Malformed("the name \"\(entry.name)\" appears twice") }
                index[entry.name] = entries.count
                entries.append(entry)
            } catch let error as Malformed {
                throw fail("central directory entry \(number) (at offset \(Int(directoryOffset) + cursor.position)): \(error.message)")
            }
        }
        self.entries = entries
        self.index = index
    }

    private static func readUInt16(_ cursor: inout ByteCursor) throws -> UInt16 {
        let r = try cursor.take(2)
        return UInt16(cursor.bytes[r.lowerBound]) | UInt16(cursor.bytes[r.lowerBound + 1]) << 8
    }

    private static func readCentralHeader(_ cursor: inout ByteCursor) throws -> Entry {
        guard try cursor.readUInt32LE() == centralHeaderSignature else {
            throw Malformed("no central directory header signature (PK\\x01\\x02)")
        }
        _ = try readUInt16(&cursor)  // version made by
        _ = try readUInt16(&cursor)  // version needed
        let flags = try readUInt16(&cursor)
        let method = try readUInt16(&cursor)
        _ = try cursor.readUInt32LE()  // time and date
        let crc = try cursor.readUInt32LE()
        var compressed = UInt64(try cursor.readUInt32LE())
        var size = UInt64(try cursor.readUInt32LE())
        let nameLength = Int(try readUInt16(&cursor))
        let extraLength = Int(try readUInt16(&cursor))
        let commentLength = Int(try readUInt16(&cursor))
        let diskStart = try readUInt16(&cursor)
        _ = try readUInt16(&cursor)  // internal attributes
        _ = try cursor.readUInt32LE()  // external attributes
        var offset = UInt64(try cursor.readUInt32LE())
        let nameBytes = Array(cursor.bytes[try cursor.take(nameLength)])
        let extra = try cursor.take(extraLength)
        _ = try cursor.take(commentLength)
        guard let name = String(validating: nameBytes, as: UTF8.self) else {
            throw Malformed("member name is not valid UTF-8")
        }

        // The zip64 extra field holds, in this order, exactly the values whose 32-bit fields are
        // 0xFFFFFFFF (and the disk number when its field is 0xFFFF).
        var needSize = size == 0xFFFF_FFFF
        var needCompressed = compressed == 0xFFFF_FFFF
        var needOffset = offset == 0xFFFF_FFFF
        var needDisk = diskStart == 0xFFFF
        var fields = ByteCursor(cursor.bytes, range: extra)
        while fields.remaining >= 4 {
            let id = try readUInt16(&fields)
            let length = Int(try readUInt16(&fields))
            let body = try fields.take(length)
            guard id == 0x0001 else { continue }
            var z = ByteCursor(cursor.bytes, range: body)
            if needSize { size = try z.readUInt64LE(); needSize = false }
            if needCompressed { compressed = try z.readUInt64LE(); needCompressed = false }
            if needOffset { offset = try z.readUInt64LE(); needOffset = false }
            if needDisk { _ = try z.readUInt32LE(); needDisk = false }
        }
        if needSize || needCompressed || needOffset {
            throw Malformed("\"\(name)\" needs a zip64 extra field for its sizes or offset but has none")
        }
        if diskStart != 0 && diskStart != 0xFFFF {
            throw Malformed("\"\(name)\" starts on disk \(diskStart); only single-file archives are supported")
        }
        return Entry(name: name, nameBytes: nameBytes, method: method, flags: flags, crc32: crc,
                     compressedSize: compressed, size: size, localHeaderOffset: offset)
    }

    /// The member called `name`, if any.
    func entry(named name: String) -> Entry? { index[name].map { entries[$0] } }

    /// A readable name for a compression method.
    static func methodName(_ method: UInt16) -> String {
        switch method {
        case 0: return "stored"
        case 8: return "deflate"
        case 9: return "deflate64"
        case 12: return "bzip2"
        case 14: return "LZMA"
        case 93: return "Zstandard"
        case 95: return "xz"
        default: return "method \(method)"
        }
    }

    /// The absolute byte range of `entry`'s data in the file, after checking that it is stored
    /// uncompressed and unencrypted, that its local header agrees with the central directory, and
    /// that the data lies inside the file before the central directory.
    func dataRange(of entry: Entry) throws -> Range<Int> {
        func fail(_ message: String) -> FormatError { FormatError(path, "zip member \"\(entry.name)\": " + message) }
        if entry.isEncrypted { throw fail("is encrypted, which this reader does not support") }
        guard entry.method == 0 else {
            throw fail("is compressed (\(Self.methodName(entry.method))); only stored (uncompressed) members are read, as torch.save writes them")
        }
        guard entry.compressedSize == entry.size else {
            throw fail("is stored but its compressed size \(entry.compressedSize) differs from its size \(entry.size)")
        }
        guard entry.localHeaderOffset <= UInt64(centralDirectoryOffset),
              UInt64(centralDirectoryOffset) - entry.localHeaderOffset >= 30 else {
            throw fail("local header offset \(entry.localHeaderOffset) is not inside the archive before the central directory (offset \(centralDirectoryOffset))")
        }
        let start = Int(entry.localHeaderOffset)
        var header = ByteCursor(try file.bytes(at: start, count: 30, what: "local header of \"\(entry.name)\""))
        guard try header.readUInt32LE() == Self.localHeaderSignature else {
            throw fail("no local header signature (PK\\x03\\x04) at offset \(start)")
        }
        _ = try Self.readUInt16(&header)  // version needed
        let localFlags = try Self.readUInt16(&header)
        let localMethod = try Self.readUInt16(&header)
        _ = try header.readUInt32LE()  // time and date
        _ = try header.readUInt32LE()  // CRC (zero when flag bit 3 is set)
        _ = try header.readUInt32LE()  // compressed size
        _ = try header.readUInt32LE()  // size
        let nameLength = Int(try Self.readUInt16(&header))
        let extraLength = Int(try Self.readUInt16(&header))
        guard localMethod == entry.method, localFlags & 1 == 0 else {
            throw fail("local header (method \(localMethod), flags \(localFlags)) disagrees with the central directory (method \(entry.method), flags \(entry.flags))")
        }
        let name = try file.bytes(at: start + 30, count: nameLength, what: "local name of \"\(entry.name)\"")
        guard name == entry.nameBytes else {
            throw fail("local header at offset \(start) names \"\(String(decoding: name, as: UTF8.self))\"")
        }
        let dataStart = start + 30 + nameLength + extraLength
        guard dataStart <= centralDirectoryOffset,
              entry.size <= UInt64(centralDirectoryOffset - dataStart) else {
            throw fail("data (\(entry.size) bytes at offset \(dataStart)) runs past the start of the central directory (offset \(centralDirectoryOffset)); the file may be truncated or corrupt")
        }
        return dataStart..<(dataStart + Int(entry.size))
    }

    /// Throws unless the bytes in `range` (from `dataRange(of: entry)`) match the entry's CRC-32.
    func verifyChecksum(of entry: Entry, range: Range<Int>) throws {
        let computed = try file.withBytes(at: range.lowerBound, count: range.count, what: "zip member \"\(entry.name)\"") {
            ZipCRC32.checksum($0)
        }
        guard computed == entry.crc32 else {
            throw FormatError(path, "zip member \"\(entry.name)\" fails its CRC-32 check (stored \(hex32(entry.crc32)), computed \(hex32(computed))): the file is corrupt")
        }
    }

    /// The bytes of a (small) stored member, CRC-checked.
    func read(_ entry: Entry, limit: Int) throws -> [UInt8] {
        guard entry.size <= UInt64(limit) else {
            throw FormatError(path, "zip member \"\(entry.name)\" is \(entry.size) bytes, more than the \(limit) bytes accepted for it")
        }
        let range = try dataRange(of: entry)
        try verifyChecksum(of: entry, range: range)
        return try file.bytes(at: range.lowerBound, count: range.count, what: "zip member \"\(entry.name)\"")
    }
}
