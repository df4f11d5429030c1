import InceptionCore

/// Renders the channels of one activation map as a grid of tiles, so a person can see what an
/// endpoint responds to: each channel scaled to its own min…max and coloured with a viridis-like
/// map (dark blue = low, yellow = high), tiles separated by a 1-pixel dark gap.
public enum FeatureMapGrid {
    /// `activation`: [H, W, C] or [1, H, W, C]. `maxChannels` limits the tiles (the first ones);
    /// small maps are enlarged by an integer factor so each tile is at least `minTile` pixels.
    public static func render(_ activation: Tensor, maxChannels: Int = 256, minTile: Int = 32) -> RGBImage {
        let shape = activation.rank == 4 ? Array(activation.shape.dropFirst()) : activation.shape
        precondition(shape.count == 3, "feature maps must be [H, W, C], got \(activation.shape)")
        let (h, w, c) = (shape[0], shape[1], shape[2])
        let tiles = min(c, maxChannels)
        let columns = Int(Double(tiles).squareRoot().rounded(.up))
        let rows = (tiles + columns - 1) / columns
        let scale = max(1, (minTile + max(h, w) - 1) / max(h, w))
        let tileH = h * scale, tileW = w * scale, gap = 1
        let width = columns * (tileW + gap) + gap, height = rows * (tileH + gap) + gap
        var pixels = [UInt8](repeating: 20, count: width * height * 3)
        let values = activation.scalars
        for channel in 0..<tiles {
            var low = Float.infinity, high = -Float.infinity
            for p in 0..<(h * w) { let v = values[p * c + channel]; low = min(low, v); high = max(high, v) }
            let range = high > low ? high - low : 1
            let x0 = gap + (channel % columns) * (tileW + gap), y0 = gap + (channel / columns) * (tileH + gap)
            for y in 0..<tileH {
                for x in 0..<tileW {
                    let v = (values[((y / scale) * w + x / scale) * c + channel] - low) / range
                    let (r, g, b) = color(v)
                    let o = ((y0 + y) * width + x0 + x) * 3
                    pixels[o] = r; pixels[o + 1] = g; pixels[o + 2] = b
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Viridis, approximated by linear interpolation between five of its stops.
    static func color(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let stops: [(Float, Float, Float)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let x = min(max(t, 0), 1) * Float(stops.count - 1)
        let i = min(Int(x), stops.count - 2)
        let f = x - Float(i)
        let a = stops[i], b = stops[i + 1]
        return (UInt8(a.0 + (b.0 - a.0) * f), UInt8(a.1 + (b.1 - a.1) * f), UInt8(a.2 + (b.2 - a.2) * f))
    }
}
