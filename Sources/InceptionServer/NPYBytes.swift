import Inception

/// A tensor as the bytes of a `.npy` file (C order, little-endian float32, format 1.0 or 2.0),
/// laid out exactly as `NPY.write` writes files.
enum NPYBytes {
    static func encode(_ tensor: Tensor) -> [UInt8] {
        let shape: String
        switch tensor.shape.count {
        case 0: shape = "()"
        case 1: shape = "(\(tensor.shape[0]),)"
        default: shape = "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var header = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }".utf8)
        // Version 1.0 has a 16-bit header length; the data starts at a multiple of 64 bytes.
        let prefix = header.count + 1 + 10 <= 65535 ? 10 : 12
        while (prefix + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0a)
        var out: [UInt8] = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]
        out.reserveCapacity(prefix + header.count + tensor.count * 4)
        if prefix == 10 {
            out += [1, 0, UInt8(header.count & 0xff), UInt8(header.count >> 8)]
        } else {
            out += [2, 0] + (0..<4).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) }
        }
        out += header
        #if _endian(little)
        tensor.scalars.withUnsafeBytes { out.append(contentsOf: $0) }
        #else
        for value in tensor.scalars {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        }
        #endif
        return out
    }
}
