/// The element types this module can turn into `Float`, with the names used in listings
/// (NumPy's spellings: "float32", "float16", "bfloat16", …).
enum ElementType: String, Sendable, CaseIterable {
    case float32, float16, bfloat16, float64
    case int8, uint8, int16, uint16, int32, uint32, int64, uint64
    case bool

    /// Bytes per element.
    var size: Int {
        switch self {
        case .int8, .uint8, .bool: return 1
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        }
    }

    /// The listing name ("float32", …).
    var name: String { rawValue }

    /// Decodes `count` little-endian elements from `raw` (which must hold `count * size` bytes)
    /// into Floats. float64 is rounded to nearest (as TensorFlow's cast does); integers wider
    /// than 24 bits may round; bool is 0 or 1.
    func decode(_ raw: UnsafeRawBufferPointer, count: Int) -> [Float] {
        precondition(raw.count >= count * size, "buffer too small for \(count) \(name) elements")
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            switch self {
            case .float32:
                for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case .float16:
                for i in 0..<count { out[i] = floatFromHalf(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .bfloat16:
                for i in 0..<count { out[i] = floatFromBFloat16(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .float64:
                for i in 0..<count { out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            case .int8:
                for i in 0..<count { out[i] = Float(Int8(bitPattern: raw[i])) }
            case .uint8:
                for i in 0..<count { out[i] = Float(raw[i]) }
            case .bool:
                for i in 0..<count { out[i] = raw[i] != 0 ? 1 : 0 }
            case .int16:
                for i in 0..<count { out[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
            case .uint16:
                for i in 0..<count { out[i] = Float(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .int32:
                for i in 0..<count { out[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
            case .uint32:
                for i in 0..<count { out[i] = Float(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case .int64:
                for i in 0..<count { out[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
            case .uint64:
                for i in 0..<count { out[i] = Float(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
            }
            initialized = count
        }
    }
}

/// Appends the little-endian bytes of `values` (a bulk copy on little-endian hosts).
func appendLittleEndian(_ values: [Float], to out: inout [UInt8]) {
    #if _endian(little)
    values.withUnsafeBytes { out.append(contentsOf: $0) }
    #else
    out.reserveCapacity(out.count + 4 * values.count)
    for v in values {
        let bits = v.bitPattern
        out += [UInt8(bits & 0xff), UInt8((bits >> 8) & 0xff), UInt8((bits >> 16) & 0xff), UInt8(bits >> 24)]
    }
    #endif
}

/// The element count of `shape`, or nil if an extent is negative or the product overflows `Int`.
func elementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for extent in shape {
        guard extent >= 0 else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: extent)
        if overflow { return nil }
        n = product
    }
    return n
}

/// `elementCount(shape) * itemSize`, or nil on a negative extent or overflow.
func byteCount(_ shape: [Int], itemSize: Int) -> Int? {
    guard let n = elementCount(shape) else { return nil }
    let (bytes, overflow) = n.multipliedReportingOverflow(by: itemSize)
    return overflow ? nil : bytes
}

// MARK: - Half precision

/// IEEE 754 binary16 bits → Float (exact: every half is a float).
func floatFromHalf(_ h: UInt16) -> Float {
    let sign: UInt32 = UInt32(h & 0x8000) << 16
    let exponent = Int((h >> 10) & 0x1f)
    let mantissa = UInt32(h & 0x3ff)
    switch exponent {
    case 0:
        // Zero or subnormal: mantissa × 2^-24.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    case 31:
        // Infinity or NaN (payload kept).
        return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
    default:
        // Rebias the exponent from 15 to 127.
        return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
    }
}

/// Float → IEEE 754 binary16 bits, rounding to nearest, ties to even. Finite values beyond the
/// half range become ±infinity (callers that must not lose range check for that).
func halfFromFloat(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xff)
    let mantissa = bits & 0x7f_ffff
    if exponent == 0xff {  // infinity or NaN (keep NaN a NaN)
        return sign | 0x7c00 | (mantissa != 0 ? 0x200 | UInt16(truncatingIfNeeded: mantissa >> 13) : 0)
    }
    let e = exponent - 127 + 15  // the half's biased exponent
    if e >= 31 { return sign | 0x7c00 }
    if e <= 0 {
        // A half subnormal (or zero): the value is m × 2^(exponent − 150) with the implicit bit,
        // and the half mantissa is that over 2^-24, i.e. m >> (14 − e).
        if e < -10 { return sign }
        let m = mantissa | 0x80_0000
        let shift = UInt32(14 - e)
        var h = m >> shift
        let remainder = m & ((1 << shift) - 1)
        let halfway: UInt32 = 1 << (shift - 1)
        if remainder > halfway || (remainder == halfway && (h & 1) == 1) { h += 1 }
        return sign | UInt16(h)
    }
    var h = UInt32(e) << 10 | (mantissa >> 13)
    let remainder = mantissa & 0x1fff
    if remainder > 0x1000 || (remainder == 0x1000 && (h & 1) == 1) { h += 1 }  // may carry into infinity
    return sign | UInt16(h)
}

/// bfloat16 bits (the top half of a float32) → Float.
func floatFromBFloat16(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }
