import Foundation
import Inception

/// Pictures of a run: training curves (`RUN/curves.png`) and confusion matrices (`inception eval`).
/// Drawn in plain Swift into an ``RGBImage``; write one with `PNGEncoder.write(_:to:)`.
public enum Plot {
    typealias Color = PlotCanvas.Color

    static let background: Color = (255, 255, 255)
    static let ink: Color = (30, 30, 30)
    static let grid: Color = (226, 226, 226)
    static let trainColor: Color = (31, 119, 180)  // blue
    static let trainStepColor: Color = (160, 195, 228)  // light blue
    static let validationColor: Color = (230, 110, 10)  // orange
    static let top5Color: Color = (44, 160, 44)  // green

    // MARK: - Training curves

    /// Two panels side by side: loss (train, validation) and accuracy in % (train top-1,
    /// validation top-1 and top-5) against epochs, with ticks, grid, legend and titles. Epoch
    /// records draw the main lines with dots; step records, when present, a thin light line of the
    /// training values (placed at fractional epochs). Without epoch records the x axis is steps.
    public static func curves(_ records: [MetricsRecord], width: Int = 1000, height: Int = 420) -> RGBImage {
        precondition(width >= 200 && height >= 120, "the plot needs at least 200x120 pixels")
        var canvas = PlotCanvas(width: width, height: height, background: background)
        let epochs = records.filter { $0.kind == .epoch }.sorted { ($0.step, $0.epoch) < ($1.step, $1.epoch) }
        let steps = records.filter { $0.kind == .step }.sorted { $0.step < $1.step }

        // x: epochs (steps converted with the steps per epoch the epoch records imply), or steps.
        let stepsPerEpoch: Double? = epochs.first(where: { $0.epoch > 0 && $0.step > 0 }).map { Double($0.step) / Double($0.epoch) }
        let useEpochs = !epochs.isEmpty
        let xLabel = useEpochs ? "epoch" : "step"
        func x(_ r: MetricsRecord) -> Double? {
            if r.kind == .epoch { return Double(r.epoch) }
            if useEpochs { return stepsPerEpoch.map { Double(r.step) / $0 } }
            return Double(r.step)
        }

        func series(_ rs: [MetricsRecord], _ value: (MetricsRecord) -> Double?, scale: Double = 1) -> [(Double, Double)] {
            rs.compactMap { r in
                guard let xv = x(r), let v = value(r), v.isFinite else { return nil }
                return (xv, v * scale)
            }
        }

        let lossSeries: [Series] = [
            Series(name: nil, color: trainStepColor, points: series(steps, \.trainLoss), thick: false, dots: false),
            Series(name: "train", color: trainColor, points: series(epochs, \.trainLoss), thick: true, dots: true),
            Series(name: "validation", color: validationColor, points: series(epochs, \.validationLoss), thick: true, dots: true),
        ]
        let accuracySeries: [Series] = [
            Series(name: nil, color: trainStepColor, points: series(steps, \.trainTop1, scale: 100), thick: false, dots: false),
            Series(name: "train top-1", color: trainColor, points: series(epochs, \.trainTop1, scale: 100), thick: true, dots: true),
            Series(name: "val top-1", color: validationColor, points: series(epochs, \.validationTop1, scale: 100), thick: true, dots: true),
            Series(name: "val top-5", color: top5Color, points: series(epochs, \.validationTop5, scale: 100), thick: true, dots: true),
        ]

        let allX = (lossSeries + accuracySeries).flatMap { $0.points.map(\.0) }
        let xMax = max(allX.max() ?? 1, useEpochs ? 1 : 10)
        let xMin = useEpochs ? 0 : min(0, allX.min() ?? 0)
        let lossMax = lossSeries.flatMap { $0.points.map(\.1) }.max() ?? 1
        let lossMin = min(0, lossSeries.flatMap { $0.points.map(\.1) }.min() ?? 0)

        let gap = 12
        let panelWidth = (width - gap) / 2
        drawPanel(&canvas, frame: (0, 0, panelWidth, height), title: "loss", xLabel: xLabel,
                  xRange: (xMin, xMax), yRange: (lossMin, lossMax > lossMin ? lossMax : lossMin + 1), yIsPercent: false,
                  series: lossSeries, integerX: useEpochs)
        drawPanel(&canvas, frame: (panelWidth + gap, 0, width - panelWidth - gap, height), title: "accuracy (%)",
                  xLabel: xLabel, xRange: (xMin, xMax), yRange: (0, 100), yIsPercent: true,
                  series: accuracySeries, integerX: useEpochs)
        return canvas.image
    }

    struct Series {
        let name: String?
        let color: Color
        let points: [(Double, Double)]
        let thick: Bool
        let dots: Bool
    }

    static func drawPanel(_ canvas: inout PlotCanvas, frame: (x: Int, y: Int, w: Int, h: Int), title: String,
                          xLabel: String, xRange: (Double, Double), yRange: (Double, Double), yIsPercent: Bool,
                          series: [Series], integerX: Bool) {
        let yTicks = yIsPercent ? (values: stride(from: 0.0, through: 100, by: 20).map { $0 }, step: 20.0)
            : PlotAxis.ticks(yRange.0, yRange.1, target: 5)
        // Extend the y range to whole ticks.
        var yLo = yRange.0, yHi = yRange.1
        if !yIsPercent, let last = yTicks.values.last, let first = yTicks.values.first {
            yHi = max(yHi, last)
            if yHi > last { yHi = last + yTicks.step }
            yLo = min(yLo, first)
        }
        var xTicks = PlotAxis.ticks(xRange.0, xRange.1, target: 8)
        if integerX && xTicks.step < 1 {
            xTicks = (Array(stride(from: xRange.0.rounded(.up), through: xRange.1, by: 1)), 1)
        }
        let labelWidth = yTicks.values.map { PlotFont.width(PlotAxis.label($0, step: yTicks.step)) }.max() ?? 0
        let left = frame.x + 22 + labelWidth + 8, right = frame.x + frame.w - 14
        let top = frame.y + 30, bottom = frame.y + frame.h - 40
        guard right - left > 20, bottom - top > 20 else { return }

        func px(_ v: Double) -> Int { left + Int(((v - xRange.0) / (xRange.1 - xRange.0) * Double(right - left)).rounded()) }
        func py(_ v: Double) -> Int { bottom - Int(((v - yLo) / (yHi - yLo) * Double(bottom - top)).rounded()) }

        // Title, grid, ticks, labels.
        canvas.text(title, x: (left + right - PlotFont.width(title, scale: 2)) / 2, y: frame.y + 8, ink, scale: 2)
        for v in yTicks.values where v >= yLo - 1e-9 && v <= yHi + 1e-9 {
            let y = py(v)
            canvas.fill(x: left + 1, y: y, width: right - left - 1, height: 1, grid)
            canvas.fill(x: left - 5, y: y, width: 5, height: 1, ink)
            let text = PlotAxis.label(v, step: yTicks.step)
            canvas.text(text, x: left - 8 - PlotFont.width(text), y: y - 3, ink)
        }
        for v in xTicks.values where v >= xRange.0 - 1e-9 && v <= xRange.1 + 1e-9 {
            let x = px(v)
            canvas.fill(x: x, y: top, width: 1, height: bottom - top, grid)
            canvas.fill(x: x, y: bottom + 1, width: 1, height: 5, ink)
            let text = PlotAxis.label(v, step: xTicks.step)
            canvas.text(text, x: x - PlotFont.width(text) / 2, y: bottom + 9, ink)
        }
        canvas.text(xLabel, x: (left + right - PlotFont.width(xLabel)) / 2, y: bottom + 24, ink)
        let yLabel = yIsPercent ? "%" : "loss"
        canvas.verticalText(yLabel, x: frame.x + 6, y: (top + bottom - PlotFont.width(yLabel)) / 2, ink)
        // Axes.
        canvas.fill(x: left, y: top, width: 1, height: bottom - top + 1, ink)
        canvas.fill(x: left, y: bottom, width: right - left + 1, height: 1, ink)

        // Data.
        var any = false
        for s in series where !s.points.isEmpty {
            any = true
            let points = s.points.map { (px($0.0), py(min(max($0.1, yLo), yHi))) }
            for (a, b) in zip(points, points.dropFirst()) {
                canvas.line(a.0, a.1, b.0, b.1, s.color, thickness: s.thick ? 2 : 1)
            }
            if s.dots { for p in points { canvas.dot(p.0, p.1, radius: 3, s.color) } }
        }
        if !any {
            let text = "no data yet"
            canvas.text(text, x: (left + right - PlotFont.width(text)) / 2, y: (top + bottom) / 2 - 3, (150, 150, 150))
        }

        // Legend, for named series with data: in the inside corner that hides the fewest points
        // (the lines sampled every few pixels), top right on ties.
        let named = series.filter { $0.name != nil && !$0.points.isEmpty }
        if !named.isEmpty {
            let textWidth = named.map { PlotFont.width($0.name!) }.max()!
            let boxWidth = 8 + 18 + 6 + textWidth + 8, boxHeight = 8 + named.count * 12
            var samples: [(Int, Int)] = []
            for s in series where !s.points.isEmpty {
                let points = s.points.map { (px($0.0), py(min(max($0.1, yLo), yHi))) }
                samples += points
                for (a, b) in zip(points, points.dropFirst()) {
                    let n = max(1, max(abs(b.0 - a.0), abs(b.1 - a.1)) / 4)
                    for k in 1..<n { samples.append((a.0 + (b.0 - a.0) * k / n, a.1 + (b.1 - a.1) * k / n)) }
                }
            }
            let corners = [(right - boxWidth - 6, top + 6), (right - boxWidth - 6, bottom - boxHeight - 6),
                           (left + 8, top + 6), (left + 8, bottom - boxHeight - 6)]
            func hidden(_ c: (Int, Int)) -> Int {
                samples.filter { $0.0 >= c.0 - 4 && $0.0 < c.0 + boxWidth + 4 && $0.1 >= c.1 - 4 && $0.1 < c.1 + boxHeight + 4 }.count
            }
            let (bx, by) = corners.min { hidden($0) < hidden($1) }!
            canvas.fill(x: bx, y: by, width: boxWidth, height: boxHeight, background)
            canvas.rectangleOutline(x: bx, y: by, width: boxWidth, height: boxHeight, (190, 190, 190))
            for (i, s) in named.enumerated() {
                let ly = by + 6 + i * 12
                canvas.fill(x: bx + 8, y: ly + 2, width: 18, height: 2, s.color)
                canvas.dot(bx + 17, ly + 3, radius: 2, s.color)
                canvas.text(s.name!, x: bx + 8 + 18 + 6, y: ly, ink)
            }
        }
    }

    // MARK: - Confusion matrix

    /// A heat map of `counts[true][predicted]`: each cell coloured by its share of its row (white
    /// 0 % → dark blue 100 %, so the diagonal reads as per-class recall), with the count written in
    /// cells large enough, class names on both axes (truncated) when cells are large enough, a
    /// title with the image count and top-1 accuracy, and a colour scale. Cells are sized so the
    /// matrix spans about `matrixSize` pixels (at least 2 and at most 48 pixels each).
    public static func confusionMatrix(_ counts: [[Int]], classNames: [String], matrixSize: Int = 720) -> RGBImage {
        let n = counts.count
        precondition(n > 0 && counts.allSatisfy { $0.count == n }, "the confusion matrix must be square and non-empty")
        precondition(classNames.count == n, "\(classNames.count) class names for a \(n)x\(n) matrix")
        let cell = min(48, max(2, matrixSize / n))
        let showNames = cell >= 9
        let maxChars = 18
        func shortName(_ s: String) -> String { s.count > maxChars ? String(s.prefix(maxChars - 1)) + "…" : s }
        let nameWidth = showNames ? (classNames.map { PlotFont.width(shortName($0)) }.max() ?? 0) : 0
        let left = 24 + nameWidth + 8
        let top = 44
        let matrix = n * cell
        let bottomMargin = 16 + nameWidth + 20
        let scaleWidth = 80
        let width = max(left + matrix + 20 + scaleWidth, 360)
        let height = top + matrix + bottomMargin
        var canvas = PlotCanvas(width: width, height: height, background: background)

        let total = counts.joined().reduce(0, +)
        let correct = (0..<n).reduce(0) { $0 + counts[$1][$1] }
        let accuracy = total > 0 ? String(format: "%.1f%%", Double(correct) / Double(total) * 100) : "-"
        canvas.text("confusion matrix", x: 8, y: 6, ink, scale: 2)
        canvas.text("\(total) images, top-1 \(accuracy); rows: true class, columns: predicted", x: 8, y: 26, ink)

        for t in 0..<n {
            let rowTotal = counts[t].reduce(0, +)
            for p in 0..<n {
                let share = rowTotal > 0 ? Double(counts[t][p]) / Double(rowTotal) : 0
                let color = heat(share)
                let x = left + p * cell, y = top + t * cell
                canvas.fill(x: x, y: y, width: cell, height: cell, color)
                if cell >= 9 {
                    let text = String(counts[t][p])
                    if counts[t][p] > 0, PlotFont.width(text) + 2 <= cell {
                        let textColor: Color = share > 0.5 ? (255, 255, 255) : ink
                        canvas.text(text, x: x + (cell - PlotFont.width(text)) / 2, y: y + (cell - 7) / 2, textColor)
                    }
                }
            }
        }
        // Grid lines between cells when they are large enough, and a frame.
        if cell >= 6 {
            for k in 1..<max(1, n) {
                canvas.fill(x: left + k * cell, y: top, width: 1, height: matrix, (235, 235, 235))
                canvas.fill(x: left, y: top + k * cell, width: matrix, height: 1, (235, 235, 235))
            }
        }
        canvas.rectangleOutline(x: left - 1, y: top - 1, width: matrix + 2, height: matrix + 2, ink)

        if showNames {
            for (i, name) in classNames.enumerated() {
                let s = shortName(name)
                canvas.text(s, x: left - 6 - PlotFont.width(s), y: top + i * cell + (cell - 7) / 2, ink)
                canvas.verticalText(s, x: left + i * cell + (cell - 7) / 2, y: top + matrix + 6, ink)
            }
        }
        canvas.verticalText("true class", x: 6, y: top + (matrix - PlotFont.width("true class")) / 2, ink)
        let predicted = "predicted class"
        canvas.text(predicted, x: left + (matrix - PlotFont.width(predicted)) / 2, y: height - 14, ink)

        // Colour scale: 0 % at the bottom, 100 % at the top.
        let sx = left + matrix + 20, sh = min(matrix, 200), sy = top
        for k in 0..<sh {
            canvas.fill(x: sx, y: sy + k, width: 14, height: 1, heat(1 - Double(k) / Double(max(1, sh - 1))))
        }
        canvas.rectangleOutline(x: sx - 1, y: sy - 1, width: 16, height: sh + 2, ink)
        canvas.text("100%", x: sx + 20, y: sy, ink)
        canvas.text("0%", x: sx + 20, y: sy + sh - 7, ink)
        canvas.text("of row", x: sx + 20, y: sy + sh / 2 - 3, ink)
        return canvas.image
    }

    /// White → light blue → dark blue.
    static func heat(_ t: Double) -> Color {
        let v = min(max(t.isFinite ? t : 0, 0), 1)
        let stops: [(Double, Double, Double)] = [(255, 255, 255), (158, 202, 225), (33, 113, 181), (8, 48, 107)]
        let x = v * Double(stops.count - 1)
        let i = min(Int(x), stops.count - 2)
        let f = x - Double(i)
        let a = stops[i], b = stops[i + 1]
        return (UInt8((a.0 + (b.0 - a.0) * f).rounded()), UInt8((a.1 + (b.1 - a.1) * f).rounded()),
                UInt8((a.2 + (b.2 - a.2) * f).rounded()))
    }
}
