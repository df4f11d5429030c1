import CInceptionImage
import Foundation

/// How ``ImageDecoder`` decodes.
public struct DecodeOptions: Sendable, Equatable {
    /// The JPEG inverse DCT.
    public enum JPEGDCT: Sendable, Equatable {
        /// libjpeg's JDCT_IFAST: what `tf.io.decode_jpeg` uses by default (dct_method '' or
        /// 'INTEGER_FAST'), and so what slim's pipelines saw.
        case fast
        /// libjpeg's JDCT_ISLOW (libjpeg's own default; TF's dct_method='INTEGER_ACCURATE').
        case accurate
    }

    /// What happens to transparency (PNG alpha channels and tRNS chunks).
    public enum Alpha: Sendable, Equatable {
        /// Composite onto a white background: `c·a + 255·(1 − a)`, rounded.
        case compositeOnWhite
        /// Drop the alpha channel and keep the stored colours, as `tf.io.decode_png(channels: 3)` does.
        case ignore
    }

    /// The default limit on `width × height`: 100 megapixels.
    public static let defaultMaxPixels = 100_000_000

    /// Images whose header announces more than this many pixels are refused before any pixel
    /// memory is allocated.
    public var maxPixels: Int
    /// Whether a JPEG's EXIF orientation is applied (the result is then as a viewer displays it).
    public var appliesEXIFOrientation: Bool
    public var jpegDCT: JPEGDCT
    public var alpha: Alpha
    /// Progressive JPEGs with more scans than this are refused (each scan costs a pass).
    public var maxProgressiveScans: Int

    public init(maxPixels: Int = DecodeOptions.defaultMaxPixels, appliesEXIFOrientation: Bool = true,
                jpegDCT: JPEGDCT = .fast, alpha: Alpha = .compositeOnWhite, maxProgressiveScans: Int = 1000) {
        self.maxPixels = maxPixels
        self.appliesEXIFOrientation = appliesEXIFOrientation
        self.jpegDCT = jpegDCT
        self.alpha = alpha
        self.maxProgressiveScans = maxProgressiveScans
    }
}

/// Decodes JPEG and PNG files to 8-bit RGB.
///
/// - JPEG (libjpeg-turbo): baseline, progressive, arithmetic-coded; grayscale is replicated to RGB;
///   CMYK and YCCK are converted to RGB (Adobe's inverted CMYK recognised by its APP14 marker);
///   the EXIF orientation is applied unless disabled. A file that ends early is an error, never an
///   image padded with grey. A missing end-of-image marker after complete image data is tolerated.
/// - PNG (libpng): every colour type and bit depth; palettes are expanded, gray is replicated,
///   16-bit samples are scaled to 8 bits with rounding, interlacing is handled, and transparency
///   is composited onto white by default (see ``DecodeOptions/Alpha``). Gamma and ICC profiles are
///   ignored (samples are used as stored, as TensorFlow does).
/// - Everything else is refused with an ``ImageError`` naming the file and, when recognised from its
///   first bytes, the format (GIF, WebP, BMP, TIFF, HEIC/HEIF, AVIF, JPEG 2000, JPEG XL, PSD, PDF, SVG).
public enum ImageDecoder {
    /// Reads and decodes the image file at `path`.
    public static func decode(contentsOf path: String, maxPixels: Int = DecodeOptions.defaultMaxPixels)
        throws(ImageError) -> RGBImage
    {
        try decode(contentsOf: path, options: DecodeOptions(maxPixels: maxPixels))
    }

    /// Reads and decodes the image file at `path`.
    public static func decode(contentsOf path: String, options: DecodeOptions) throws(ImageError) -> RGBImage {
        let data = try readFile(path)
        return try decode(data: data, name: path, options: options)
    }

    /// Decodes an image held in memory; `name` is used in error messages.
    public static func decode(data: Data, name: String, options: DecodeOptions = DecodeOptions())
        throws(ImageError) -> RGBImage
    {
        let result: Result<RGBImage, ImageError> = data.withUnsafeBytes { buffer in
            Result { () throws(ImageError) in try decode(buffer: buffer, name: name, options: options) }
        }
        return try result.get()
    }

    /// Decodes an image held in memory; `name` is used in error messages.
    public static func decode(bytes: [UInt8], name: String, options: DecodeOptions = DecodeOptions())
        throws(ImageError) -> RGBImage
    {
        let result: Result<RGBImage, ImageError> = bytes.withUnsafeBytes { buffer in
            Result { () throws(ImageError) in try decode(buffer: buffer, name: name, options: options) }
        }
        return try result.get()
    }

    /// Decodes an image held in memory; `name` is used in error messages.
    public static func decode(buffer: UnsafeRawBufferPointer, name: String, options: DecodeOptions = DecodeOptions())
        throws(ImageError) -> RGBImage
    {
        guard let base = buffer.baseAddress, buffer.count > 0 else { throw ImageError(file: name, kind: .empty) }
        guard let format = ImageFormat.detect(buffer) else {
            let head = buffer.prefix(8).map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            throw ImageError(file: name, kind: .notAnImage,
                             detail: "unrecognised content starting with bytes \(head)")
        }
        guard format.isDecodable else {
            throw ImageError(file: name, kind: .unsupportedFormat(format), format: format)
        }

        var cOptions = ii_options(
            max_pixels: Int64(clamping: options.maxPixels),
            dct_method: options.jpegDCT == .accurate ? Int32(II_DCT_ACCURATE) : Int32(II_DCT_FAST),
            alpha_mode: options.alpha == .ignore ? Int32(II_ALPHA_IGNORE) : Int32(II_ALPHA_COMPOSITE_WHITE),
            max_scans: Int32(clamping: max(1, options.maxProgressiveScans)))
        var out = ii_image()
        defer { ii_image_free(&out) }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let status = format == .jpeg
            ? ii_decode_jpeg(bytes, buffer.count, &cOptions, &out)
            : ii_decode_png(bytes, buffer.count, &cOptions, &out)
        let message = withUnsafeBytes(of: out.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }

        switch Int(status) {
        case Int(II_OK): break
        case Int(II_ERR_TRUNCATED):
            throw ImageError(file: name, kind: .truncated, format: format, detail: message)
        case Int(II_ERR_TOO_MANY_PIXELS):
            throw ImageError(file: name, kind: .tooManyPixels(width: Int(out.width), height: Int(out.height),
                                                              limit: options.maxPixels), format: format)
        case Int(II_ERR_OUT_OF_MEMORY):
            throw ImageError(file: name, kind: .outOfMemory, format: format, detail: message)
        default:
            throw ImageError(file: name, kind: .corrupt, format: format, detail: message)
        }

        let width = Int(out.width), height = Int(out.height)
        let pixels = [UInt8](UnsafeBufferPointer(start: out.pixels, count: width * height * 3))
        let image = RGBImage(width: width, height: height, pixels: pixels)
        if options.appliesEXIFOrientation, let exif = out.exif,
           let orientation = EXIF.orientation(fromTIFF: UnsafeRawBufferPointer(start: exif, count: out.exif_size)) {
            return image.oriented(orientation)
        }
        return image
    }

    /// The versions of the linked libraries, e.g. "libjpeg API 62, libpng 1.6.39".
    public static var libraryVersions: String {
        "libjpeg API \(ii_jpeg_lib_version()), libpng \(String(cString: ii_png_lib_version()))"
    }

    static func readFile(_ path: String) throws(ImageError) -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ImageError(file: path, kind: .unreadable, detail: "no such file")
        }
        if isDirectory.boolValue { throw ImageError(file: path, kind: .unreadable, detail: "it is a directory") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw ImageError(file: path, kind: .unreadable, detail: "\(error.localizedDescription)")
        }
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
