/// A Snappy decompressor (raw block format, as LevelDB tables use when a block's compression
/// type is 1).
///
/// The stream starts with the uncompressed length as a varint, followed by elements whose tag
/// byte's low two bits give the kind:
/// - 0: a literal; length−1 is in the upper six bits, or, when those hold 60…63, in the next
///   1…4 bytes (little-endian); the literal bytes follow.
/// - 1: a copy of 4…11 bytes (3 bits) from an offset of up to 2047 (3 high bits + one byte).
/// - 2: a copy of 1…64 bytes (6 bits) from a two-byte little-endian offset.
/// - 3: a copy of 1…64 bytes from a four-byte little-endian offset.
/// Copies read from already-produced output and may overlap the bytes they produce.
enum Snappy {
    /// Decompresses `input`. Every length and offset is checked; the declared length is capped by
    /// what `input` could possibly expand to, so a lying header cannot cause a huge allocation.
    static func decompress(_ input: [UInt8]) throws -> [UInt8] {
        var cursor = ByteCursor(input)
        let declared = try cursor.readVarint64()
        // The densest element is a 3-byte copy producing 64 bytes.
        let limit = UInt64(input.count) * 22 + 64
        guard declared <= limit else {
            throw Malformed("Snappy header claims \(declared) uncompressed bytes, impossible for \(input.count) compressed bytes")
        }
        let total = Int(declared)
        var output = [UInt8]()
        output.reserveCapacity(total)
        while !cursor.isAtEnd {
            let tag = try cursor.readByte()
            switch tag & 3 {
            case 0:
                var length = Int(tag >> 2) + 1
                if length > 60 {
                    let extra = length - 60  // 1...4 bytes of length-1 follow
                    var value = 0
                    for k in 0..<extra { value |= Int(try cursor.readByte()) << (8 * k) }
                    length = value + 1
                }
                guard length <= total - output.count else {
                    throw Malformed("Snappy literal of \(length) bytes overruns the declared length \(total)")
                }
                let range = try cursor.take(length)
                output.append(contentsOf: input[range])
            default:
                let length: Int
                let offset: Int
                switch tag & 3 {
                case 1:
                    length = 4 + Int((tag >> 2) & 7)
                    offset = (Int(tag >> 5) << 8) | Int(try cursor.readByte())
                case 2:
                    length = 1 + Int(tag >> 2)
                    let lo = Int(try cursor.readByte())
                    offset = lo | (Int(try cursor.readByte()) << 8)
                default:
                    length = 1 + Int(tag >> 2)
                    offset = Int(try cursor.readUInt32LE())
                }
                guard offset > 0, offset <= output.count else {
                    throw Malformed("Snappy copy offset \(offset) is outside the \(output.count) bytes produced so far")
                }
                guard length <= total - output.count else {
                    throw Malformed("Snappy copy of \(length) bytes overruns the declared length \(total)")
                }
                let start = output.count - offset
                for k in 0..<length { output.append(output[start + k]) }
            }
        }
        guard output.count == total else {
            throw Malformed("Snappy data ends after \(output.count) of the declared \(total) bytes")
        }
        return output
    }
}
