import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes of one file with bounds-checked access.
///
/// The file is memory-mapped where Foundation can do so, so opening a large checkpoint costs
/// no copy; every read names an offset and a count and is checked against the file size first,
/// so a malformed offset becomes a `FormatError`, never an out-of-bounds access.
struct FileBytes: Sendable {
    let path: String
    let data: Data

    /// The file size in bytes.
    var count: Int { data.count }

    init(path: String, data: Data) {
        self.path = path
        self.data = data
    }

    /// Maps (or reads) the whole file. Missing files, directories and unreadable files are errors.
    static func load(_ path: String) throws -> FileBytes {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FormatError(path, "no such file")
        }
        if isDirectory.boolValue { throw FormatError(path, "is a directory, not a file") }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
            return FileBytes(path: path, data: data)
        } catch {
            throw FormatError(path, "cannot read file (\(error.localizedDescription))")
        }
    }

    /// True when `count` bytes starting at `offset` lie inside the file (overflow-safe).
    func contains(offset: Int, count: Int) -> Bool {
        offset >= 0 && count >= 0 && offset <= data.count && count <= data.count - offset
    }

    /// Same check for untrusted 64-bit values from the file.
    func contains(offset: UInt64, count: UInt64) -> Bool {
        let size = UInt64(data.count)
        return offset <= size && count <= size - offset
    }

    /// Calls `body` with the bytes at `offset..<offset+count`, or throws `FormatError` naming
    /// `what` when that range is not inside the file.
    func withBytes<R>(at offset: Int, count: Int, what: @autoclosure () -> String,
                      _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard contains(offset: offset, count: count) else {
            throw FormatError(path, "\(what()) at offset \(offset) with \(count) bytes runs past the end of the file (\(data.count) bytes)")
        }
        return try data.withUnsafeBytes { (all: UnsafeRawBufferPointer) in
            try body(UnsafeRawBufferPointer(rebasing: all[offset..<(offset + count)]))
        }
    }

    /// A copy of the bytes at `offset..<offset+count` (checked as in `withBytes`).
    func bytes(at offset: Int, count: Int, what: @autoclosure () -> String) throws -> [UInt8] {
        try withBytes(at: offset, count: count, what: what()) { [UInt8]($0) }
    }
}

/// Sequential, bounds-checked reads from a byte array; every read past `end` throws `Malformed`.
struct ByteCursor {
    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int

    init(_ bytes: [UInt8], range: Range<Int>? = nil) {
        self.bytes = bytes
        let r = range ?? 0..<bytes.count
        precondition(r.lowerBound >= 0 && r.upperBound <= bytes.count, "cursor range outside its array")
        position = r.lowerBound
        end = r.upperBound
    }

    var remaining: Int { end - position }
    var isAtEnd: Bool { position >= end }

    mutating func readByte() throws -> UInt8 {
        guard position < end else { throw Malformed("unexpected end of data") }
        defer { position += 1 }
        return bytes[position]
    }

    /// Takes the next `count` bytes and returns their index range in `bytes`.
    mutating func take(_ count: Int) throws -> Range<Int> {
        guard count >= 0, count <= remaining else {
            throw Malformed("needs \(count) bytes but only \(remaining) remain")
        }
        defer { position += count }
        return position..<(position + count)
    }

    mutating func readUInt32LE() throws -> UInt32 {
        let r = try take(4)
        var v: UInt32 = 0
        for i in r.reversed() { v = (v << 8) | UInt32(bytes[i]) }
        return v
    }

    mutating func readUInt64LE() throws -> UInt64 {
        let r = try take(8)
        var v: UInt64 = 0
        for i in r.reversed() { v = (v << 8) | UInt64(bytes[i]) }
        return v
    }

    /// A base-128 varint (protobuf / LevelDB): 7 bits per byte, low groups first, high bit set on
    /// every byte but the last. At most 10 bytes; bits beyond 64 are an error.
    mutating func readVarint64() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw Malformed("varint runs past the end of the data") }
            let byte = bytes[position]
            position += 1
            if shift == 63 && byte > 1 { throw Malformed("varint is longer than 64 bits") }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw Malformed("varint is longer than 10 bytes") }
        }
    }

    /// A varint that must fit in 32 bits (LevelDB uses these for lengths).
    mutating func readVarint32() throws -> UInt32 {
        let v = try readVarint64()
        guard v <= UInt64(UInt32.max) else { throw Malformed("varint32 value \(v) exceeds 32 bits") }
        return UInt32(v)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// flushed with fsync, and renamed over `path`, so readers see either the old file or the
/// complete new one. The directory is fsync'd afterwards (best effort).
func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let directory = url.deletingLastPathComponent().path
    let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else {
        throw FormatError(path, "cannot create temporary file \(temporary): \(String(cString: strerror(errno)))")
    }
    var ok = false
    defer {
        if !ok { unlink(temporary) }
    }
    var written = 0
    let failure: String? = bytes.withUnsafeBytes { buffer -> String? in
        while written < buffer.count {
            let n = write(fd, buffer.baseAddress! + written, buffer.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                return "write failed: \(String(cString: strerror(errno)))"
            }
            written += n
        }
        return nil
    }
    if let failure {
        close(fd)
        throw FormatError(path, failure)
    }
    if fsync(fd) != 0 {
        let message = String(cString: strerror(errno))
        close(fd)
        throw FormatError(path, "fsync failed: \(message)")
    }
    if close(fd) != 0 {
        throw FormatError(path, "close failed: \(String(cString: strerror(errno)))")
    }
    if rename(temporary, path) != 0 {
        throw FormatError(path, "cannot rename \(temporary) into place: \(String(cString: strerror(errno)))")
    }
    ok = true
    let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY)
    if dirfd >= 0 {
        _ = fsync(dirfd)
        close(dirfd)
    }
}
