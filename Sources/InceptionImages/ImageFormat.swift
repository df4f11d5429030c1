/// Image formats recognised by their leading bytes. Only ``jpeg`` and ``png`` can be decoded; the
/// others are recognised so that an error can name what the file actually is.
public enum ImageFormat: String, Sendable, CaseIterable {
    case jpeg = "JPEG"
    case png = "PNG"
    case gif = "GIF"
    case webp = "WebP"
    case bmp = "BMP"
    case tiff = "TIFF"
    case heic = "HEIC"
    case heif = "HEIF"
    case avif = "AVIF"
    case jpeg2000 = "JPEG 2000"
    case jpegXL = "JPEG XL"
    case psd = "Photoshop (PSD)"
    case pdf = "PDF"
    case svg = "SVG"

    /// Whether ``ImageDecoder`` can decode the format.
    public var isDecodable: Bool { self == .jpeg || self == .png }

    /// The format name with its indefinite article ("a WebP", "an AVIF").
    var withArticle: String {
        switch self {
        case .avif, .svg: return "an \(rawValue)"
        default: return "a \(rawValue)"
        }
    }

    /// The format announced by the first bytes of `bytes`, or nil when none is recognised.
    public static func detect(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        func has(_ signature: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + signature.count
                && bytes[offset..<offset + signature.count].elementsEqual(signature)
        }
        func ascii(_ s: String, at offset: Int = 0) -> Bool { has(Array(s.utf8), at: offset) }

        if has([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if has([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if ascii("GIF87a") || ascii("GIF89a") { return .gif }
        if ascii("RIFF") && ascii("WEBP", at: 8) { return .webp }
        if has([0x49, 0x49, 0x2A, 0x00]) || has([0x4D, 0x4D, 0x00, 0x2A])
            || has([0x49, 0x49, 0x2B, 0x00]) || has([0x4D, 0x4D, 0x00, 0x2B]) { return .tiff }
        if ascii("ftyp", at: 4), bytes.count >= 12 {
            // ISO base media file: the major brand, then compatible brands up to the box's end.
            let boxSize = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
            var brands: [String] = []
            var at = 8
            while at + 4 <= min(bytes.count, max(boxSize, 12)) {
                if at != 12 { brands.append(String(decoding: bytes[at..<at + 4], as: UTF8.self)) }
                at += 4
            }
            let major = brands.first ?? ""
            if ["avif", "avis"].contains(major) { return .avif }
            if ["heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs"].contains(major) { return .heic }
            if ["mif1", "msf1"].contains(major) {
                if brands.contains("avif") || brands.contains("avis") { return .avif }
                if brands.contains(where: { $0.hasPrefix("he") }) { return .heic }
                return .heif
            }
            if major == "jp2 " || major == "jpx " || major == "jpm " { return .jpeg2000 }
            if major == "jxl " { return .jpegXL }
        }
        if has([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) || has([0xFF, 0x4F, 0xFF, 0x51]) { return .jpeg2000 }
        if has([0xFF, 0x0A]) || has([0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) { return .jpegXL }
        if ascii("BM"), bytes.count >= 18 {
            let dibSize = Int(bytes[14]) | Int(bytes[15]) << 8 | Int(bytes[16]) << 16 | Int(bytes[17]) << 24
            if [12, 16, 40, 52, 56, 64, 108, 124].contains(dibSize) { return .bmp }
        }
        if ascii("8BPS") { return .psd }
        if ascii("%PDF-") { return .pdf }
        // SVG is text: skip a byte-order mark and whitespace, then look for an <svg element early on.
        var start = has([0xEF, 0xBB, 0xBF]) ? 3 : 0
        while start < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start]) { start += 1 }
        if ascii("<svg", at: start) || ascii("<?xml", at: start) || ascii("<!DOCTYPE svg", at: start) {
            let head = String(decoding: bytes[start..<min(bytes.count, start + 4096)], as: UTF8.self)
            if head.contains("<svg") { return .svg }
        }
        return nil
    }

    /// Convenience for byte arrays; see ``detect(_:)-(UnsafeRawBufferPointer)``.
    public static func detect(_ bytes: [UInt8]) -> ImageFormat? {
        bytes.withUnsafeBytes { detect($0) }
    }
}
