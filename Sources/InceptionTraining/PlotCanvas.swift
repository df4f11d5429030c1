import Foundation
import Inception

/// An RGB drawing surface for plots: rectangles, thick lines, dots and 5×7 text.
struct PlotCanvas {
    typealias Color = (r: UInt8, g: UInt8, b: UInt8)

    let width: Int
    let height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int, background: Color = (255, 255, 255)) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[i * 3] = background.r
            pixels[i * 3 + 1] = background.g
            pixels[i * 3 + 2] = background.b
        }
    }

    var image: RGBImage { RGBImage(width: width, height: height, pixels: pixels) }

    @inline(__always)
    mutating func set(_ x: Int, _ y: Int, _ c: Color) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.r
        pixels[i + 1] = c.g
        pixels[i + 2] = c.b
    }

    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ c: Color) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        for yy in y0..<y1 { for xx in x0..<x1 { set(xx, yy, c) } }
    }

    mutating func rectangleOutline(x: Int, y: Int, width w: Int, height h: Int, _ c: Color) {
        fill(x: x, y: y, width: w, height: 1, c)
        fill(x: x, y: y + h - 1, width: w, height: 1, c)
        fill(x: x, y: y, width: 1, height: h, c)
        fill(x: x + w - 1, y: y, width: 1, height: h, c)
    }

    /// A line `thickness` pixels wide (a square brush moved along Bresenham's path).
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: Color, thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var error = dx + dy
        let lo = -(thickness - 1) / 2, hi = thickness / 2
        var guardCount = 0
        while true {
            for oy in lo...hi { for ox in lo...hi { set(x + ox, y + oy, c) } }
            if x == x1 && y == y1 { break }
            guardCount += 1
            if guardCount > 4 * (width + height) + 16 { break }  // far outside: stop
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }

    /// A dashed horizontal or vertical line.
    mutating func dashed(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: Color, dash: Int = 4) {
        if y0 == y1 {
            for x in min(x0, x1)...max(x0, x1) where (x / dash) % 2 == 0 { set(x, y0, c) }
        } else {
            for y in min(y0, y1)...max(y0, y1) where (y / dash) % 2 == 0 { set(x0, y, c) }
        }
    }

    mutating func dot(_ cx: Int, _ cy: Int, radius: Int, _ c: Color) {
        for y in -radius...radius {
            for x in -radius...radius where x * x + y * y <= radius * radius + radius { set(cx + x, cy + y, c) }
        }
    }

    /// Text with its top-left corner at (x, y).
    mutating func text(_ string: String, x: Int, y: Int, _ c: Color, scale: Int = 1) {
        var cx = x
        for ch in string {
            let g = PlotFont.glyph(ch)
            for row in 0..<PlotFont.glyphHeight {
                let bits = g[row]
                for col in 0..<PlotFont.glyphWidth where bits & (0x10 >> UInt8(col)) != 0 {
                    fill(x: cx + col * scale, y: y + row * scale, width: scale, height: scale, c)
                }
            }
            cx += PlotFont.advance * scale
        }
    }

    /// Text rotated a quarter turn counter-clockwise (reading bottom to top), with the top-left of
    /// its bounding box at (x, y).
    mutating func verticalText(_ string: String, x: Int, y: Int, _ c: Color, scale: Int = 1) {
        let length = PlotFont.width(string, scale: scale)
        var offset = 0
        for ch in string {
            let g = PlotFont.glyph(ch)
            for row in 0..<PlotFont.glyphHeight {
                let bits = g[row]
                for col in 0..<PlotFont.glyphWidth where bits & (0x10 >> UInt8(col)) != 0 {
                    // Glyph pixel (col, row) → (row, −col) after the turn.
                    let px = x + row * scale
                    let py = y + length - 1 - (offset + col * scale) - (scale - 1)
                    fill(x: px, y: py, width: scale, height: scale, c)
                }
            }
            offset += PlotFont.advance * scale
        }
    }
}

/// Axis helpers.
enum PlotAxis {
    /// "Nice" tick positions (1, 2 or 5 × 10^k apart) covering [lo, hi] with about `target` steps.
    static func ticks(_ lo: Double, _ hi: Double, target: Int = 5) -> (values: [Double], step: Double) {
        var lo = lo, hi = hi
        if !(hi > lo) {
            let pad = lo == 0 ? 1 : abs(lo) * 0.5
            lo -= pad
            hi += pad
        }
        let raw = (hi - lo) / Double(max(1, target))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let normalized = raw / magnitude
        let step = (normalized < 1.5 ? 1 : normalized < 3 ? 2 : normalized < 7 ? 5 : 10) * magnitude
        let first = (lo / step).rounded(.up)
        var values: [Double] = []
        var k = first
        while k * step <= hi + step * 1e-9, values.count < 100 {
            values.append(k * step)
            k += 1
        }
        return (values, step)
    }

    /// A tick label with as many decimals as the step needs.
    static func label(_ value: Double, step: Double) -> String {
        let decimals = step >= 1 ? 0 : min(6, Int((-log10(step)).rounded(.up)))
        let text = String(format: "%.\(decimals)f", value)
        return text == "-0" ? "0" : text
    }
}
