import CInceptionImage
import Foundation

/// Writing PNG files (feature-map grids, training curves) through libpng.
public enum PNGEncoder {
    /// PNG bytes of an image with 1 (gray), 3 (RGB) or 4 (RGBA) interleaved 8-bit channels.
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int) throws -> Data {
        precondition(pixels.count == width * height * channels, "pixel buffer does not match \(width)x\(height)x\(channels)")
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 200)
        let status = pixels.withUnsafeBufferPointer { p in
            ii_encode_png(p.baseAddress, Int32(width), Int32(height), Int32(channels), &out, &size, &message, message.count)
        }
        guard status == 0, let out else {
            throw ImageError(file: "<png>", kind: .corrupt, format: .png,
                             detail: "PNG encoding failed: " + String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { free(out) }
        return Data(bytes: out, count: size)
    }

    /// Encodes an RGB image and writes it atomically (temporary file, then rename).
    public static func write(_ image: RGBImage, to path: String) throws {
        let data = try encode(pixels: image.pixels, width: image.width, height: image.height, channels: 3)
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
