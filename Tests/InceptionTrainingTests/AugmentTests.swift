import Foundation
import Inception
import XCTest
@testable import InceptionTraining

final class AugmentTests: XCTestCase {
    let augmentation = TrainingAugmentation(height: 24, width: 20)

    func testCropBoxesStayInsideTheImageAndWithinTheAreaAndAspectRanges() {
        let a = TrainingAugmentation()
        var areas: [Double] = []
        for (w, h) in [(640, 480), (480, 640), (224, 224), (50, 31), (1000, 120)] {
            for seed in 0..<400 {
                var g = SeededGenerator(seed: UInt64(seed) &* 7919 &+ UInt64(w))
                let box = a.sampleCrop(width: w, height: h, using: &g)
                XCTAssertTrue(box.x >= 0 && box.y >= 0 && box.width > 0 && box.height > 0, "\(box)")
                XCTAssertTrue(box.x + box.width <= w && box.y + box.height <= h, "\(box) outside \(w)x\(h)")
                if box == CropBox(x: 0, y: 0, width: w, height: h) { continue }  // the fallback
                let fraction = Double(box.area) / Double(w * h)
                // min_object_covered 0.1 with the whole image as the object: area ≥ 0.1 (and ≤ 1).
                XCTAssertGreaterThanOrEqual(fraction, 0.1 - 1e-6, "\(box) in \(w)x\(h)")
                XCTAssertLessThanOrEqual(fraction, 1.0)
                // width = round(height · ratio), ratio in [0.75, 1.33]; one row of correction allowed.
                let ratio = Double(box.width) / Double(box.height)
                let slack = 1.0 / Double(box.height) + 1.33 / Double(box.height)
                XCTAssertGreaterThanOrEqual(ratio, 0.75 - slack, "\(box)")
                XCTAssertLessThanOrEqual(ratio, 1.33 + slack, "\(box)")
                // Uniform(n) is [0, n): the last row/column is reached only by full-extent crops.
                XCTAssertTrue(box.height == h || box.y + box.height < h)
                if w == 640 && h == 480 { areas.append(fraction) }
            }
        }
        // The sampled areas spread over the range.
        XCTAssertLessThan(areas.min()!, 0.2)
        XCTAssertGreaterThan(areas.max()!, 0.8)
    }

    func testCropFallsBackToTheWholeImageWhenNoAttemptFits() {
        // A 1-pixel-wide strip: no crop with aspect ratio ≥ 0.75 covers 10 % of it.
        var g = SeededGenerator(seed: 1)
        XCTAssertEqual(TrainingAugmentation().sampleCrop(width: 1, height: 100, using: &g), CropBox(x: 0, y: 0, width: 1, height: 100))
    }

    func testGenerateRandomCropFollowsTensorFlowsRounding() {
        // 100x100, area exactly [0.25, 0.25], ratio 1: height = lrint(sqrt(2500)) = 50 → 50x50.
        var g = SeededGenerator(seed: 3)
        let box = TrainingAugmentation.generateRandomCrop(width: 100, height: 100, minArea: 0.25, maxArea: 0.25,
                                                          aspectRatio: 1, using: &g)
        XCTAssertEqual(box?.width, 50)
        XCTAssertEqual(box?.height, 50)
        // Round half to even, as lrintf.
        XCTAssertEqual(TrainingAugmentation.lrint(2.5), 2)
        XCTAssertEqual(TrainingAugmentation.lrint(3.5), 4)
    }

    func testFlipMirrorsTheImageLeftToRight() {
        let image = patternImage(width: 33, height: 27, seed: 5)
        var p = AugmentationParameters(crop: CropBox(x: 3, y: 2, width: 25, height: 20))
        let plain = augmentation.tensor(for: image, parameters: p)
        p.flipped = true
        let flipped = augmentation.tensor(for: image, parameters: p)
        let (h, w) = (augmentation.height, augmentation.width)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    XCTAssertEqual(flipped[0, y, x, c], plain[0, y, w - 1 - x, c])
                }
            }
        }
        XCTAssertNotEqual(flipped, plain)
    }

    func testColorDistortionKeepsValuesInRangeAfterTheClip() {
        let image = patternImage(width: 40, height: 30, seed: 9)
        for (delta, factor, first) in [(Float(32.0 / 255.0), Float(1.5), true), (-32.0 / 255.0, 0.5, false),
                                        (0.3, 1.5, false), (-0.3, 1.5, true)] {
            let p = AugmentationParameters(crop: CropBox(x: 0, y: 0, width: 40, height: 30), distortsColor: true,
                                           brightnessFirst: first, brightnessDelta: delta, saturationFactor: factor)
            let t = augmentation.tensor(for: image, parameters: p)
            XCTAssertTrue(t.scalars.allSatisfy { $0 >= -1 && $0 <= 1 && $0.isFinite })
            // Large brightness shifts do reach the clip.
            if abs(delta) > 0.2 { XCTAssertTrue(t.scalars.contains(delta > 0 ? 1 : -1)) }
        }
    }

    func testSaturationMatchesTensorFlowsKernelOnKnownColours() {
        // (0.8, 0.4, 0.2): h = 1/18, s = 0.75, v = 0.8; halving s gives (0.8, 0.6, 0.5).
        var (r, g, b): (Float, Float, Float) = (0.8, 0.4, 0.2)
        TrainingAugmentation.adjustSaturation(&r, &g, &b, factor: 0.5)
        XCTAssertEqual(r, 0.8, accuracy: 1e-6)
        XCTAssertEqual(g, 0.6, accuracy: 1e-6)
        XCTAssertEqual(b, 0.5, accuracy: 1e-6)
        // Factor 0: grey at the value (the maximum channel).
        (r, g, b) = (0.1, 0.7, 0.3)
        TrainingAugmentation.adjustSaturation(&r, &g, &b, factor: 0)
        XCTAssertEqual([r, g, b], [0.7, 0.7, 0.7])
        // Factor 1 leaves colours (all six hue sectors) unchanged.
        for colour: (Float, Float, Float) in [(0.9, 0.5, 0.1), (0.5, 0.9, 0.1), (0.1, 0.9, 0.5), (0.1, 0.5, 0.9),
                                               (0.5, 0.1, 0.9), (0.9, 0.1, 0.5), (0.4, 0.4, 0.4)] {
            (r, g, b) = colour
            TrainingAugmentation.adjustSaturation(&r, &g, &b, factor: 1)
            XCTAssertEqual(r, colour.0, accuracy: 1e-6)
            XCTAssertEqual(g, colour.1, accuracy: 1e-6)
            XCTAssertEqual(b, colour.2, accuracy: 1e-6)
        }
    }

    func testTheSameSeedGivesTheSameOutputAndOtherSeedsDiffer() {
        let image = patternImage(width: 64, height: 48, seed: 2)
        let a = augmentation.tensor(for: image, seed: 12345)
        let b = augmentation.tensor(for: image, seed: 12345)
        XCTAssertEqual(a, b)
        let c = augmentation.tensor(for: image, seed: 12346)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(TrainingAugmentation.seed(runSeed: 1, epoch: 2, sample: 3), TrainingAugmentation.seed(runSeed: 1, epoch: 2, sample: 3))
        XCTAssertNotEqual(TrainingAugmentation.seed(runSeed: 1, epoch: 2, sample: 3), TrainingAugmentation.seed(runSeed: 1, epoch: 3, sample: 2))
    }

    func testWithoutDistortionsTheResizeEqualsThePreprocessingResize() {
        let image = patternImage(width: 57, height: 43, seed: 4)
        for centers in [Preprocessing.ResizeCenters.legacyTF1, .halfPixel] {
            let plain = TrainingAugmentation(height: 24, width: 20, randomCrop: false, randomFlip: false, distortColors: false,
                                             resizeCenters: centers)
            let expected = Preprocessing(height: 24, width: 20, centralFraction: nil, resizeCenters: centers).tensor(for: image)
            XCTAssertEqual(plain.tensor(for: image, seed: 99), expected)
        }
    }

    func testTheEvaluationPreprocessingAtTheDefaultSizeIsSlimsEval() {
        XCTAssertEqual(TrainingAugmentation().evaluationPreprocessing, Preprocessing.inceptionEval)
        XCTAssertEqual(augmentation.evaluationPreprocessing.height, 24)
    }

    func testParametersAreDrawnWithinTheirRangesAndOrderingsFollowThePolicy() {
        func brightnessFirstShare(_ ordering: TrainingAugmentation.ColorOrdering) -> Double {
            let a = TrainingAugmentation(colorOrdering: ordering)
            var firsts = 0
            for seed in 0..<4000 {
                var g = SeededGenerator(seed: UInt64(seed))
                let p = a.parameters(width: 300, height: 200, using: &g)
                XCTAssertTrue(p.distortsColor)
                XCTAssertTrue(p.brightnessDelta >= -32.0 / 255.0 && p.brightnessDelta < 32.0 / 255.0)
                XCTAssertTrue(p.saturationFactor >= 0.5 && p.saturationFactor < 1.5)
                if p.brightnessFirst { firsts += 1 }
            }
            return Double(firsts) / 4000
        }
        XCTAssertEqual(brightnessFirstShare(.slim2016), 0.25, accuracy: 0.03)
        XCTAssertEqual(brightnessFirstShare(.uniform), 0.5, accuracy: 0.03)
        XCTAssertEqual(brightnessFirstShare(.brightnessFirst), 1)
        // Flips: about half.
        var flips = 0
        for seed in 0..<2000 {
            var g = SeededGenerator(seed: UInt64(seed) + 77)
            if TrainingAugmentation().parameters(width: 50, height: 50, using: &g).flipped { flips += 1 }
        }
        XCTAssertEqual(Double(flips) / 2000, 0.5, accuracy: 0.04)
    }

    func testDistortedImagesLookRight() throws {
        // Writes a strip of distortions of one picture (Samples/cat.jpg when present) for a person
        // to look at: /tmp/inception-augment-samples.png. Each differs from the others.
        let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Samples/cat.jpg").path
        let image = (try? ImageDecoder.decode(contentsOf: samples)) ?? patternImage(width: 160, height: 120, seed: 1)
        let a = TrainingAugmentation(height: 96, width: 96)
        let count = 8
        var seen: [Tensor] = []
        var strip = [UInt8](repeating: 255, count: (96 * count + 4 * (count - 1)) * 96 * 3)
        let stripWidth = 96 * count + 4 * (count - 1)
        for k in 0..<count {
            let t = a.tensor(for: image, seed: TrainingAugmentation.seed(runSeed: 5, epoch: 0, sample: k))
            XCTAssertFalse(seen.contains(t))
            seen.append(t)
            for y in 0..<96 {
                for x in 0..<96 {
                    for c in 0..<3 {
                        let v = (t[0, y, x, c] + 1) / 2 * 255
                        strip[(y * stripWidth + k * 100 + x) * 3 + c] = UInt8(max(0, min(255, v.rounded())))
                    }
                }
            }
        }
        try PNGEncoder.write(RGBImage(width: stripWidth, height: 96, pixels: strip), to: NSTemporaryDirectory() + "inception-augment-samples.png")
    }
}
