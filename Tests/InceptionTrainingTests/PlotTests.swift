import Foundation
import Inception
import XCTest
@testable import InceptionTraining

final class PlotTests: XCTestCase {
    func count(_ image: RGBImage, _ color: (UInt8, UInt8, UInt8)) -> Int {
        var n = 0
        for i in stride(from: 0, to: image.pixels.count, by: 3)
        where image.pixels[i] == color.0 && image.pixels[i + 1] == color.1 && image.pixels[i + 2] == color.2 { n += 1 }
        return n
    }

    func sampleRecords() -> [MetricsRecord] {
        var records: [MetricsRecord] = []
        for epoch in 1...12 {
            let e = Double(epoch)
            for k in 1...4 {
                let step = (epoch - 1) * 40 + k * 10
                records.append(MetricsRecord(kind: .step, epoch: epoch - 1, step: step,
                                             trainLoss: 2.3 * exp(-Double(step) / 150) + 0.2 + 0.1 * sin(Double(step)),
                                             trainTop1: min(0.98, 0.2 + Double(step) / 520)))
            }
            records.append(MetricsRecord(epoch: epoch, step: epoch * 40, trainLoss: 2.3 * exp(-e / 3.5) + 0.2,
                                         trainTop1: min(0.98, 0.25 + e * 0.065), validationLoss: 2.2 * exp(-e / 4) + 0.35,
                                         validationTop1: min(0.9, 0.22 + e * 0.055), validationTop5: min(1, 0.6 + e * 0.04),
                                         learningRate: 0.01, imagesPerSecond: 20, seconds: 60))
        }
        return records
    }

    func testCurvesHaveTheRequestedSizeAndDrawEverySeries() throws {
        let image = Plot.curves(sampleRecords(), width: 1000, height: 420)
        XCTAssertEqual(image.width, 1000)
        XCTAssertEqual(image.height, 420)
        XCTAssertGreaterThan(count(image, Plot.trainColor), 200)
        XCTAssertGreaterThan(count(image, Plot.validationColor), 200)
        XCTAssertGreaterThan(count(image, Plot.top5Color), 100)
        XCTAssertGreaterThan(count(image, Plot.trainStepColor), 50)
        XCTAssertGreaterThan(count(image, Plot.ink), 500)  // axes, ticks, labels
        let path = NSTemporaryDirectory() + "inception-curves.png"
        try PNGEncoder.write(image, to: path)
        XCTAssertEqual(try ImageDecoder.decode(contentsOf: path), image)
    }

    func testCurvesWithoutRecordsStillDrawAxes() {
        let image = Plot.curves([], width: 600, height: 300)
        XCTAssertEqual(image.width, 600)
        XCTAssertEqual(image.height, 300)
        XCTAssertGreaterThan(count(image, Plot.ink), 300)
        XCTAssertEqual(count(image, Plot.trainColor), 0)
    }

    func testASingleEpochIsDrawnAsDots() {
        let image = Plot.curves([MetricsRecord(epoch: 1, step: 10, trainLoss: 1, trainTop1: 0.5, validationLoss: 1.2, validationTop1: 0.4)])
        XCTAssertGreaterThan(count(image, Plot.trainColor), 20)
        XCTAssertGreaterThan(count(image, Plot.validationColor), 20)
    }

    func testConfusionMatrixHasTheExpectedSizeAndADarkDiagonal() throws {
        let names = ["cat", "dog", "horse", "a rather long class name"]
        let counts = [[50, 3, 1, 0], [4, 40, 6, 0], [0, 2, 45, 3], [1, 0, 9, 30]]
        let image = Plot.confusionMatrix(counts, classNames: names)
        let cell = 48  // 720 / 4 capped at 48
        XCTAssertEqual(image.height, 44 + 4 * cell + 16 + PlotFont.width("a rather long cla…") + 20)
        XCTAssertGreaterThan(image.width, 4 * cell)
        // Cells are coloured by their share of the row: the diagonal is darker than the rest.
        func brightness(row: Int, column: Int) -> Int {
            let left = 24 + PlotFont.width("a rather long cla…") + 8
            let p = image[x: left + column * cell + 3, y: 44 + row * cell + 3]
            return Int(p.r) + Int(p.g) + Int(p.b)
        }
        for t in 0..<4 {
            for p in 0..<4 where p != t { XCTAssertLessThan(brightness(row: t, column: t), brightness(row: t, column: p)) }
        }
        XCTAssertGreaterThan(count(image, Plot.ink), 300)
        try PNGEncoder.write(image, to: NSTemporaryDirectory() + "inception-confusion.png")
    }

    func testLargeConfusionMatricesShrinkTheirCells() {
        let n = 300
        let counts = (0..<n).map { t in (0..<n).map { p in t == p ? 5 : (p == (t + 1) % n ? 1 : 0) } }
        let image = Plot.confusionMatrix(counts, classNames: (0..<n).map { "class \($0)" })
        XCTAssertLessThan(image.width, 1000)
        XCTAssertGreaterThan(image.width, 600)
    }

    func testTheFontCoversDigitsLettersAndPunctuation() {
        let box = PlotFont.glyph("\u{1F600}")
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.,:%-+()/_=" {
            XCTAssertNotEqual(PlotFont.glyph(c), box, "no glyph for \(c)")
            XCTAssertEqual(PlotFont.glyph(c).count, 7)
        }
        XCTAssertEqual(PlotFont.glyph(" "), [0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(PlotFont.width("abc"), 17)
    }

    func testNiceTicksCoverTheRange() {
        let t = PlotAxis.ticks(0, 2.37, target: 5)
        XCTAssertEqual(t.step, 0.5)
        XCTAssertEqual(t.values, [0, 0.5, 1, 1.5, 2])
        XCTAssertEqual(PlotAxis.label(1.5, step: 0.5), "1.5")
        XCTAssertEqual(PlotAxis.label(20, step: 5), "20")
    }
}
