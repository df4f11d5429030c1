/// CRC-32C (Castagnoli): the checksum LevelDB tables and TensorFlow bundles store.
///
/// Reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF (so `checksum` of
/// "123456789" is 0xE3069283). Computed eight bytes at a time with eight 256-entry tables
/// ("slice-by-8"). Stored checksums are *masked* (see `mask`), because a CRC of data that itself
/// contains CRCs is weak.
public enum CRC32C {
    /// tables[k * 256 + b]: the CRC contribution of byte b followed by k zero bytes.
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let previous = t[(k - 1) * 256 + b]
                t[k * 256 + b] = (previous >> 8) ^ t[Int(previous & 0xff)]
            }
        }
        return t
    }()

    /// The CRC-32C of `buffer`.
    public static func checksum(_ buffer: UnsafeRawBufferPointer) -> UInt32 { extend(0, buffer) }

    /// The CRC-32C of `bytes`.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        extend(0, bytes)
    }

    /// The CRC-32C of the concatenation of the data `crc` was computed over and `bytes`.
    public static func extend<C: Collection>(_ crc: UInt32, _ bytes: C) -> UInt32 where C.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ extend(crc, UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return [UInt8](bytes).withUnsafeBytes { extend(crc, $0) }
    }

    /// The CRC-32C of the concatenation of the data `crc` was computed over and `buffer`.
    public static func extend(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        let n = buffer.count
        var i = 0
        tables.withUnsafeBufferPointer { t in
            while n - i >= 8 {
                // Two little-endian words; the running CRC is folded into the first.
                let lo = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
                let hi = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                c = t[7 * 256 + Int(lo & 0xff)] ^ t[6 * 256 + Int((lo >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xff)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xff)] ^ t[2 * 256 + Int((hi >> 8) & 0xff)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xff)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(buffer[i])) & 0xff)] ^ (c >> 8)
                i += 1
            }
        }
        return ~c
    }

    private static let maskDelta: UInt32 = 0xa282_ead8

    /// LevelDB's mask: rotate right by 15 bits and add a constant (mod 2^32).
    public static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ maskDelta
    }

    /// The inverse of `mask`.
    public static func unmask(_ masked: UInt32) -> UInt32 {
        let rotated = masked &- maskDelta
        return (rotated >> 17) | (rotated << 15)
    }
}
