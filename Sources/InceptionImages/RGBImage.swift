/// An 8-bit RGB image: `pixels` holds `height` rows of `width` pixels, each pixel three bytes
/// (red, green, blue), with no padding between rows.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// Row-major, interleaved RGB; `pixels.count == width * height * 3`.
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "image dimensions must be positive, got \(width)x\(height)")
        precondition(pixels.count == width * height * 3,
                     "\(width)x\(height) RGB needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The pixel at column `x`, row `y` (slow; for tests and tools).
    public subscript(x x: Int, y y: Int) -> (r: UInt8, g: UInt8, b: UInt8) {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) outside \(width)x\(height)")
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// The image as it should be displayed when stored with the given EXIF orientation.
    /// Orientations 5–8 swap width and height.
    public func oriented(_ orientation: EXIFOrientation) -> RGBImage {
        if orientation == .up { return self }
        let w = width, h = height
        let (outW, outH) = orientation.swapsDimensions ? (h, w) : (w, h)
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                var o = 0
                for yo in 0..<outH {
                    for xo in 0..<outW {
                        // Source pixel shown at (xo, yo) of the displayed image.
                        let xs: Int, ys: Int
                        switch orientation {
                        case .up: (xs, ys) = (xo, yo)
                        case .mirrored: (xs, ys) = (w - 1 - xo, yo)
                        case .rotated180: (xs, ys) = (w - 1 - xo, h - 1 - yo)
                        case .flippedVertically: (xs, ys) = (xo, h - 1 - yo)
                        case .transposed: (xs, ys) = (yo, xo)
                        case .rotated90CW: (xs, ys) = (yo, h - 1 - xo)
                        case .transverse: (xs, ys) = (w - 1 - yo, h - 1 - xo)
                        case .rotated90CCW: (xs, ys) = (w - 1 - yo, xo)
                        }
                        let s = (ys * w + xs) * 3
                        dst[o] = src[s]
                        dst[o + 1] = src[s + 1]
                        dst[o + 2] = src[s + 2]
                        o += 3
                    }
                }
            }
        }
        return RGBImage(width: outW, height: outH, pixels: out)
    }
}

/// The EXIF orientation tag (0x0112): how the stored pixels must be transformed for display.
/// Raw values are the tag's values 1–8.
public enum EXIFOrientation: Int, Sendable, CaseIterable {
    /// 1: stored as displayed.
    case up = 1
    /// 2: mirrored left–right.
    case mirrored = 2
    /// 3: rotated by 180°.
    case rotated180 = 3
    /// 4: mirrored top–bottom.
    case flippedVertically = 4
    /// 5: mirrored across the main diagonal (transpose).
    case transposed = 5
    /// 6: must be rotated 90° clockwise for display (typical of a phone held upright).
    case rotated90CW = 6
    /// 7: mirrored across the anti-diagonal (transverse).
    case transverse = 7
    /// 8: must be rotated 90° counter-clockwise for display.
    case rotated90CCW = 8

    /// Whether the displayed image has width and height exchanged.
    public var swapsDimensions: Bool { rawValue >= 5 }
}
