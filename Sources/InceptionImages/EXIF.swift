/// Just enough of EXIF to find the orientation: the TIFF header and IFD0 of an APP1 "Exif" segment.
public enum EXIF {
    /// The orientation tag (0x0112) in IFD0 of an EXIF TIFF structure, or nil when absent or invalid.
    ///
    /// `bytes` is the payload of the APP1 segment, with or without its leading `"Exif\0\0"`.
    /// Both byte orders ("II" little-endian, "MM" big-endian) are read; every offset is
    /// bounds-checked, so arbitrary input is safe.
    public static func orientation(fromTIFF bytes: UnsafeRawBufferPointer) -> EXIFOrientation? {
        var b = bytes
        let exifHeader: [UInt8] = [0x45, 0x78, 0x69, 0x66, 0, 0] // "Exif\0\0"
        if b.count >= 6 && b.prefix(6).elementsEqual(exifHeader) {
            b = UnsafeRawBufferPointer(rebasing: b[6...])
        }
        guard b.count >= 8 else { return nil }
        let littleEndian: Bool
        switch (b[0], b[1]) {
        case (0x49, 0x49): littleEndian = true
        case (0x4D, 0x4D): littleEndian = false
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at <= b.count - 2 else { return nil }
            let (x, y) = (Int(b[at]), Int(b[at + 1]))
            return littleEndian ? x | y << 8 : x << 8 | y
        }
        func u32(_ at: Int) -> Int? {
            guard at >= 0, at <= b.count - 4, let lo = u16(littleEndian ? at : at + 2),
                  let hi = u16(littleEndian ? at + 2 : at) else { return nil }
            return hi << 16 | lo
        }
        guard u16(2) == 42, let ifd = u32(4), ifd >= 8, let entries = u16(ifd) else { return nil }
        for i in 0..<entries {
            let entry = ifd + 2 + 12 * i
            guard entry <= b.count - 12 else { return nil }
            guard u16(entry) == 0x0112 else { continue }
            guard let type = u16(entry + 2), let count = u32(entry + 4), count >= 1 else { return nil }
            let value: Int?
            switch type {
            case 3: value = u16(entry + 8)          // SHORT, the type the standard prescribes
            case 4, 9: value = u32(entry + 8)       // LONG / SLONG, seen from some writers
            case 1, 6, 7: value = Int(b[entry + 8]) // BYTE-like
            default: value = nil
            }
            return value.flatMap(EXIFOrientation.init(rawValue:))
        }
        return nil
    }

    /// Convenience for byte arrays; see ``orientation(fromTIFF:)-(UnsafeRawBufferPointer)``.
    public static func orientation(fromTIFF bytes: [UInt8]) -> EXIFOrientation? {
        bytes.withUnsafeBytes { orientation(fromTIFF: $0) }
    }
}
