/// A minimal protocol-buffer wire-format decoder.
///
/// A message is a sequence of fields, each a varint key `(field_number << 3) | wire_type` and a
/// payload: wire type 0 a varint, 1 eight little-endian bytes (fixed64/double), 2 a varint length
/// and that many bytes (strings, bytes, sub-messages, packed repeated scalars), 5 four
/// little-endian bytes (fixed32/float). Groups (3, 4) are obsolete and rejected. Unknown fields
/// are skipped. Repeated scalar fields may arrive packed (one length-delimited field) or unpacked
/// (one field per element), and decoders must accept both.
struct ProtoReader {
    enum WireType: UInt8 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    private(set) var cursor: ByteCursor

    /// A reader for the message stored in `bytes[range]`.
    init(_ bytes: [UInt8], range: Range<Int>? = nil) {
        cursor = ByteCursor(bytes, range: range)
    }

    var bytes: [UInt8] { cursor.bytes }

    /// The next field's number and wire type, or nil at the end of the message.
    mutating func nextField() throws -> (number: Int, wire: WireType)? {
        if cursor.isAtEnd { return nil }
        let key = try cursor.readVarint64()
        let number = key >> 3
        guard number >= 1, number <= 536_870_911 else { throw Malformed("invalid protobuf field number \(number)") }
        guard let wire = WireType(rawValue: UInt8(key & 7)) else {
            throw Malformed("unsupported protobuf wire type \(key & 7) for field \(number)")
        }
        return (Int(number), wire)
    }

    mutating func readVarint() throws -> UInt64 { try cursor.readVarint64() }
    mutating func readFixed32() throws -> UInt32 { try cursor.readUInt32LE() }
    mutating func readFixed64() throws -> UInt64 { try cursor.readUInt64LE() }

    /// The index range of a length-delimited payload in `bytes`.
    mutating func readLengthDelimited() throws -> Range<Int> {
        let length = try cursor.readVarint64()
        guard length <= UInt64(cursor.remaining) else {
            throw Malformed("protobuf field length \(length) exceeds the \(cursor.remaining) bytes left in the message")
        }
        return try cursor.take(Int(length))
    }

    mutating func readString() throws -> String {
        let r = try readLengthDelimited()
        return String(decoding: bytes[r], as: UTF8.self)
    }

    /// Skips a field's payload.
    mutating func skip(_ wire: WireType) throws {
        switch wire {
        case .varint: _ = try readVarint()
        case .fixed64: _ = try cursor.take(8)
        case .fixed32: _ = try cursor.take(4)
        case .lengthDelimited: _ = try readLengthDelimited()
        }
    }

    /// Checks that a known field arrived with the wire type its declaration implies.
    static func expect(_ wire: WireType, _ wanted: WireType, field: Int, in message: String) throws {
        guard wire == wanted else {
            throw Malformed("\(message) field \(field) has wire type \(wire.rawValue), expected \(wanted.rawValue)")
        }
    }

    /// Appends a repeated varint field's elements (packed or one unpacked element).
    mutating func readRepeatedVarints(_ wire: WireType, into values: inout [UInt64]) throws {
        switch wire {
        case .varint:
            values.append(try readVarint())
        case .lengthDelimited:
            var inner = ByteCursor(bytes, range: try readLengthDelimited())
            while !inner.isAtEnd { values.append(try inner.readVarint64()) }
        default:
            throw Malformed("repeated varint field has wire type \(wire.rawValue)")
        }
    }

    /// Appends the little-endian bytes of a repeated fixed-width field's elements (`width` 4 for
    /// fixed32/float, 8 for fixed64/double), packed or unpacked, to `raw`. Packed runs are copied
    /// whole, which keeps large V1 checkpoint tensors fast to decode.
    mutating func readRepeatedFixed(_ wire: WireType, width: Int, into raw: inout [UInt8]) throws {
        let single: WireType = width == 4 ? .fixed32 : .fixed64
        switch wire {
        case single:
            raw.append(contentsOf: bytes[try cursor.take(width)])
        case .lengthDelimited:
            let r = try readLengthDelimited()
            guard r.count % width == 0 else {
                throw Malformed("packed fixed\(8 * width) field of \(r.count) bytes is not a multiple of \(width)")
            }
            raw.append(contentsOf: bytes[r])
        default:
            throw Malformed("repeated fixed\(8 * width) field has wire type \(wire.rawValue)")
        }
    }
}
