import Inception

/// A crop rectangle in pixels: columns `x..<x+width`, rows `y..<y+height`.
public struct CropBox: Sendable, Equatable, CustomStringConvertible {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var area: Int { width * height }
    public var description: String { "\(width)x\(height) at (\(x), \(y))" }
}

/// Every random choice made for one training image; applying them is deterministic.
public struct AugmentationParameters: Sendable, Equatable {
    /// The region cut out of the decoded image.
    public var crop: CropBox
    /// Whether the resized crop is mirrored left–right.
    public var flipped: Bool
    /// Whether colours are distorted at all.
    public var distortsColor: Bool
    /// Brightness before saturation (slim's `color_ordering` 0) or after (any other ordering).
    public var brightnessFirst: Bool
    /// Added to every channel (`tf.image.adjust_brightness`).
    public var brightnessDelta: Float
    /// Multiplies the HSV saturation (`tf.image.adjust_saturation`).
    public var saturationFactor: Float

    public init(crop: CropBox, flipped: Bool = false, distortsColor: Bool = false, brightnessFirst: Bool = true,
                brightnessDelta: Float = 0, saturationFactor: Float = 1) {
        self.crop = crop
        self.flipped = flipped
        self.distortsColor = distortsColor
        self.brightnessFirst = brightnessFirst
        self.brightnessDelta = brightnessDelta
        self.saturationFactor = saturationFactor
    }
}

/// slim's training preprocessing, `inception_preprocessing.preprocess_for_train(fast_mode=True)`,
/// with no bounding boxes (the whole image is the object):
///
/// 1. uint8 → float in [0, 1];
/// 2. a random crop drawn as `tf.image.sample_distorted_bounding_box` draws it (min object covered
///    0.1, aspect ratio 0.75–1.33, area 0.05–1.0, 100 attempts, the whole image when every attempt
///    fails; see ``sampleCrop(width:height:using:)``);
/// 3. bilinear resize of the crop to ``height`` × ``width`` (`tf.image.resize_images`, which in the
///    TF1 code slim runs is `resize_bilinear(align_corners=False)`: ``Preprocessing/ResizeCenters/legacyTF1``);
/// 4. a left–right flip with probability ½ (`random_flip_left_right`);
/// 5. fast-mode colour distortion: `random_brightness(max_delta=32/255)` and
///    `random_saturation(0.5, 1.5)` in one of two orders (see ``ColorOrdering``), then a clip to [0, 1];
/// 6. `(x − 0.5) · 2` → [−1, 1].
///
/// The random numbers come from a ``SeededGenerator`` seeded per image (see
/// ``seed(runSeed:epoch:sample:)``), so a run is reproducible and a resumed run distorts each image
/// exactly as the interrupted one would have. The generator is not TensorFlow's Philox, so the draws
/// follow the same distributions, not the same values.
public struct TrainingAugmentation: Sendable, Equatable {
    /// How the order of the two fast-mode colour operations is chosen.
    public enum ColorOrdering: String, Sendable, Equatable, Codable {
        /// slim as published in 2016 (when the released checkpoints were trained): a selector drawn
        /// from 0..<4 for every image; 0 → brightness then saturation, 1–3 → saturation then
        /// brightness (fast mode only distinguishes ordering 0). The default.
        case slim2016
        /// Each order with probability ½.
        case uniform
        /// Later slim (`num_distort_cases = 1 if fast_mode else 4`): always brightness then saturation.
        case brightnessFirst
    }

    /// Output size.
    public var height: Int
    public var width: Int
    /// Whether to crop at random at all (slim's `random_crop`); false keeps the whole image.
    public var randomCrop: Bool
    public var minObjectCovered: Float
    public var aspectRatioRange: ClosedRange<Float>
    public var areaRange: ClosedRange<Float>
    public var maxAttempts: Int
    public var randomFlip: Bool
    public var distortColors: Bool
    public var colorOrdering: ColorOrdering
    /// `random_brightness` draws a delta uniformly from [−max, max).
    public var brightnessMaxDelta: Float
    /// `random_saturation` draws a factor uniformly from [lower, upper).
    public var saturationRange: ClosedRange<Float>
    public var resizeCenters: Preprocessing.ResizeCenters

    public init(height: Int = 224, width: Int = 224, randomCrop: Bool = true, minObjectCovered: Float = 0.1,
                aspectRatioRange: ClosedRange<Float> = 0.75...1.33, areaRange: ClosedRange<Float> = 0.05...1.0,
                maxAttempts: Int = 100, randomFlip: Bool = true, distortColors: Bool = true,
                colorOrdering: ColorOrdering = .slim2016, brightnessMaxDelta: Float = 32.0 / 255.0,
                saturationRange: ClosedRange<Float> = 0.5...1.5, resizeCenters: Preprocessing.ResizeCenters = .legacyTF1) {
        precondition(height > 0 && width > 0, "output size must be positive, got \(height)x\(width)")
        precondition(aspectRatioRange.lowerBound > 0, "aspect ratios must be positive")
        precondition(areaRange.lowerBound > 0 && areaRange.upperBound <= 1, "the area range must lie in (0, 1]")
        precondition(minObjectCovered >= 0, "min object covered must be non-negative")
        precondition(maxAttempts > 0, "max attempts must be positive")
        self.height = height
        self.width = width
        self.randomCrop = randomCrop
        self.minObjectCovered = minObjectCovered
        self.aspectRatioRange = aspectRatioRange
        self.areaRange = areaRange
        self.maxAttempts = maxAttempts
        self.randomFlip = randomFlip
        self.distortColors = distortColors
        self.colorOrdering = colorOrdering
        self.brightnessMaxDelta = brightnessMaxDelta
        self.saturationRange = saturationRange
        self.resizeCenters = resizeCenters
    }

    /// slim's evaluation preprocessing at this augmentation's size, for validation during training:
    /// central crop 0.875, bilinear resize with the same sample centres, [−1, 1]. At 224 × 224 with
    /// `.legacyTF1` this is `Preprocessing.inceptionEval`.
    public var evaluationPreprocessing: Preprocessing {
        Preprocessing(height: height, width: width, centralFraction: 0.875, resizeCenters: resizeCenters)
    }

    /// The seed of one image's distortions in one epoch of a run.
    public static func seed(runSeed: UInt64, epoch: Int, sample: Int) -> UInt64 {
        DataRandom.seed(runSeed, DataRandom.Purpose.augment.rawValue, epoch, sample)
    }

    // MARK: - Drawing the parameters

    /// Draws every random choice for an image of `width` × `height`, in slim's order: crop,
    /// flip, colour ordering, then the colour amounts in the order they are applied.
    public func parameters(width imageWidth: Int, height imageHeight: Int,
                           using generator: inout SeededGenerator) -> AugmentationParameters {
        let crop = randomCrop
            ? sampleCrop(width: imageWidth, height: imageHeight, using: &generator)
            : CropBox(x: 0, y: 0, width: imageWidth, height: imageHeight)
        var p = AugmentationParameters(crop: crop)
        if randomFlip { p.flipped = DataRandom.unitFloat(using: &generator) < 0.5 }
        if distortColors {
            p.distortsColor = true
            switch colorOrdering {
            case .slim2016: p.brightnessFirst = DataRandom.uniform(below: 4, using: &generator) == 0
            case .uniform: p.brightnessFirst = DataRandom.uniform(below: 2, using: &generator) == 0
            case .brightnessFirst: p.brightnessFirst = true
            }
            func brightness() -> Float {
                -brightnessMaxDelta + 2 * brightnessMaxDelta * DataRandom.unitFloat(using: &generator)
            }
            func saturation() -> Float {
                saturationRange.lowerBound
                    + (saturationRange.upperBound - saturationRange.lowerBound) * DataRandom.unitFloat(using: &generator)
            }
            if p.brightnessFirst {
                p.brightnessDelta = brightness()
                p.saturationFactor = saturation()
            } else {
                p.saturationFactor = saturation()
                p.brightnessDelta = brightness()
            }
        }
        return p
    }

    /// `tf.image.sample_distorted_bounding_box` with the whole image as the only bounding box and
    /// `use_image_if_no_bounding_boxes`, following TensorFlow's kernel
    /// (`core/kernels/image/sample_distorted_bounding_box_op.cc`): up to ``maxAttempts`` times, draw
    /// an aspect ratio uniformly from the range and try `GenerateRandomCrop` (a height drawn
    /// uniformly between those giving the minimum and the maximum area, width = round(height ·
    /// ratio), corrected by one row when rounding leaves the area range, a top-left corner drawn
    /// uniformly); keep the first crop that covers at least ``minObjectCovered`` of the image.
    /// If none does, the whole image. (With the whole image as the object, a crop covering 0.1 of
    /// it has area ≥ 0.1, so the effective area range is [max(0.05, 0.1), 1].)
    public func sampleCrop(width imageWidth: Int, height imageHeight: Int,
                           using generator: inout SeededGenerator) -> CropBox {
        let whole = CropBox(x: 0, y: 0, width: imageWidth, height: imageHeight)
        let imageArea = Float(imageWidth * imageHeight)
        for _ in 0..<maxAttempts {
            let ratio = DataRandom.unitFloat(using: &generator) * (aspectRatioRange.upperBound - aspectRatioRange.lowerBound)
                + aspectRatioRange.lowerBound
            guard let crop = Self.generateRandomCrop(width: imageWidth, height: imageHeight,
                                                     minArea: areaRange.lowerBound, maxArea: areaRange.upperBound,
                                                     aspectRatio: ratio, using: &generator) else { continue }
            // SatisfiesOverlapConstraints: the crop has at least one pixel and covers enough of the
            // (whole-image) object; the crop lies inside the image, so the intersection is the crop.
            let cropArea = Float(crop.width * crop.height)
            if cropArea >= 1, imageArea >= 1, cropArea / imageArea >= minObjectCovered { return crop }
        }
        return whole
    }

    /// `lrintf`: round half to even.
    @inline(__always)
    static func lrint(_ x: Float) -> Int { Int(x.rounded(.toNearestOrEven)) }

    /// TensorFlow's `GenerateRandomCrop`, float for float.
    static func generateRandomCrop(width originalWidth: Int, height originalHeight: Int, minArea minRelative: Float,
                                   maxArea maxRelative: Float, aspectRatio: Float,
                                   using generator: inout SeededGenerator) -> CropBox? {
        if maxRelative <= 0 || aspectRatio <= 0 || originalWidth <= 0 || originalHeight <= 0 || minRelative > maxRelative {
            return nil
        }
        let minArea = minRelative * Float(originalWidth) * Float(originalHeight)
        let maxArea = maxRelative * Float(originalWidth) * Float(originalHeight)
        var height = lrint((minArea / aspectRatio).squareRoot())
        var maxHeight = lrint((maxArea / aspectRatio).squareRoot())
        if lrint(Float(maxHeight) * aspectRatio) > originalWidth {
            // The smallest max height with round(max_height · ratio) ≤ width (computed in double,
            // as the C++ promotes `original_width + 0.5`).
            let eps = Double(Float(0.0000001))
            maxHeight = Int((Double(originalWidth) + 0.5 - eps) / Double(aspectRatio))
            if lrint(Float(maxHeight) * aspectRatio) > originalWidth { maxHeight -= 1 }
        }
        if maxHeight > originalHeight { maxHeight = originalHeight }
        if height >= maxHeight { height = maxHeight }
        if height < maxHeight {
            height += DataRandom.uniform(below: maxHeight - height + 1, using: &generator)
        }
        var width = lrint(Float(height) * aspectRatio)
        var area = Float(width * height)
        if area < minArea {
            height += 1
            width = lrint(Float(height) * aspectRatio)
            area = Float(width * height)
        }
        if area > maxArea {
            height -= 1
            width = lrint(Float(height) * aspectRatio)
            area = Float(width * height)
        }
        if area < minArea || area > maxArea || width > originalWidth || height > originalHeight || width <= 0 || height <= 0 {
            return nil
        }
        // SimplePhilox::Uniform(n) is in [0, n): the crop never reaches the last row or column
        // unless it spans the whole extent. Kept as TensorFlow does it.
        let y = height < originalHeight ? DataRandom.uniform(below: originalHeight - height, using: &generator) : 0
        let x = width < originalWidth ? DataRandom.uniform(below: originalWidth - width, using: &generator) : 0
        return CropBox(x: x, y: y, width: width, height: height)
    }

    // MARK: - Applying

    /// The shape of one augmented image batch: [count, height, width, 3].
    public func batchShape(count: Int) -> [Int] { [count, height, width, 3] }

    /// Draws parameters from `seed` and writes the augmented image into slot `index` of a
    /// [N, height, width, 3] batch. Returns the parameters used.
    @discardableResult
    public func write(_ image: RGBImage, seed: UInt64, into batch: inout Tensor, at index: Int) -> AugmentationParameters {
        var generator = SeededGenerator(seed: seed)
        let p = parameters(width: image.width, height: image.height, using: &generator)
        write(image, parameters: p, into: &batch, at: index)
        return p
    }

    /// Writes `image` distorted by `parameters` into slot `index` of a [N, height, width, 3] batch.
    public func write(_ image: RGBImage, parameters: AugmentationParameters, into batch: inout Tensor, at index: Int) {
        precondition(batch.rank == 4 && Array(batch.shape[1...]) == [height, width, 3],
                     "batch shape \(batch.shape) does not fit [N, \(height), \(width), 3]")
        precondition(index >= 0 && index < batch.shape[0], "index \(index) outside a batch of \(batch.shape[0])")
        let size = height * width * 3
        batch.scalars.withUnsafeMutableBufferPointer { buffer in
            apply(image, parameters, into: buffer.baseAddress! + index * size)
        }
    }

    /// One augmented image as a [1, height, width, 3] tensor.
    public func tensor(for image: RGBImage, parameters: AugmentationParameters) -> Tensor {
        var out = Tensor(zeros: batchShape(count: 1))
        write(image, parameters: parameters, into: &out, at: 0)
        return out
    }

    /// One augmented image as a [1, height, width, 3] tensor, its parameters drawn from `seed`.
    public func tensor(for image: RGBImage, seed: UInt64) -> Tensor {
        var out = Tensor(zeros: batchShape(count: 1))
        write(image, seed: seed, into: &out, at: 0)
        return out
    }

    /// Crop → resize → flip → colour → clip → [−1, 1], into `height · width · 3` floats.
    func apply(_ image: RGBImage, _ p: AugmentationParameters, into output: UnsafeMutablePointer<Float>) {
        let crop = p.crop
        precondition(crop.x >= 0 && crop.y >= 0 && crop.width > 0 && crop.height > 0
                     && crop.x + crop.width <= image.width && crop.y + crop.height <= image.height,
                     "crop \(crop) outside the \(image.width)x\(image.height) image")
        let rows = Self.interpolation(inSize: crop.height, outSize: height, centers: resizeCenters)
        let columns = Self.interpolation(inSize: crop.width, outSize: width, centers: resizeCenters)
        let stride = image.width * 3
        let outWidth = width
        Self.unitScale.withUnsafeBufferPointer { lut in
            image.pixels.withUnsafeBufferPointer { pixels in
                var o = output
                for oy in 0..<height {
                    let top = pixels.baseAddress! + (crop.y + rows.lower[oy]) * stride + crop.x * 3
                    let bottom = pixels.baseAddress! + (crop.y + rows.upper[oy]) * stride + crop.x * 3
                    let yLerp = rows.lerp[oy]
                    for ox in 0..<outWidth {
                        // The flip mirrors the resized image: output column ox shows column W−1−ox.
                        let sx = p.flipped ? outWidth - 1 - ox : ox
                        let left = columns.lower[sx] * 3, right = columns.upper[sx] * 3
                        let xLerp = columns.lerp[sx]
                        for c in 0..<3 {
                            let topLeft = lut[Int(top[left + c])], topRight = lut[Int(top[right + c])]
                            let bottomLeft = lut[Int(bottom[left + c])], bottomRight = lut[Int(bottom[right + c])]
                            let upperValue = topLeft + (topRight - topLeft) * xLerp
                            let lowerValue = bottomLeft + (bottomRight - bottomLeft) * xLerp
                            o[c] = upperValue + (lowerValue - upperValue) * yLerp
                        }
                        o += 3
                    }
                }
            }
        }
        let count = height * width
        if p.distortsColor {
            for i in 0..<count {
                let px = output + i * 3
                var r = px[0], g = px[1], b = px[2]
                if p.brightnessFirst {
                    r += p.brightnessDelta; g += p.brightnessDelta; b += p.brightnessDelta
                    Self.adjustSaturation(&r, &g, &b, factor: p.saturationFactor)
                } else {
                    Self.adjustSaturation(&r, &g, &b, factor: p.saturationFactor)
                    r += p.brightnessDelta; g += p.brightnessDelta; b += p.brightnessDelta
                }
                px[0] = r; px[1] = g; px[2] = b
            }
        }
        // distort_color's clip (a no-op without colour distortion), then [−1, 1].
        for i in 0..<count * 3 {
            output[i] = (min(max(output[i], 0), 1) - 0.5) * 2
        }
    }

    /// The same byte-to-float table and resize weights as the evaluation path (one definition).
    static var unitScale: [Float] { Preprocessing.unitScale }

    static func interpolation(inSize: Int, outSize: Int, centers: Preprocessing.ResizeCenters)
        -> (lower: [Int], upper: [Int], lerp: [Float])
    {
        Preprocessing.interpolation(inSize: inSize, outSize: outSize, centers: centers)
    }

    // MARK: - Colour (TensorFlow's CPU AdjustSaturation kernel, float for float)

    /// `rgb_to_hsv`, saturation scaled and clamped to [0, 1], `hsv_to_rgb`.
    @inline(__always)
    static func adjustSaturation(_ r: inout Float, _ g: inout Float, _ b: inout Float, factor: Float) {
        var (h, s, v) = rgbToHSV(r, g, b)
        s = min(1, max(0, s * factor))
        (r, g, b) = hsvToRGB(h, s, v)
    }

    static func rgbToHSV(_ r: Float, _ g: Float, _ b: Float) -> (h: Float, s: Float, v: Float) {
        let vv = max(r, max(g, b))
        let range = vv - min(r, min(g, b))
        let s: Float = vv > 0 ? range / vv : 0
        let norm: Float = 1 / (6 * range)
        var hh: Float
        if r == vv {
            hh = norm * (g - b)
        } else if g == vv {
            hh = Float(Double(norm * (b - r)) + 2.0 / 6.0)
        } else {
            hh = Float(Double(norm * (r - g)) + 4.0 / 6.0)
        }
        if range <= 0 { hh = 0 }
        if hh < 0 { hh += 1 }
        return (hh, s, vv)
    }

    static func hsvToRGB(_ h: Float, _ s: Float, _ v: Float) -> (r: Float, g: Float, b: Float) {
        let c = s * v
        let m = v - c
        let dh = h * 6
        let category = dh.isFinite ? Int(dh) : -1
        var fmodu = dh
        if fmodu.isFinite {
            while fmodu <= 0 { fmodu += 2 }
            while fmodu >= 2 { fmodu -= 2 }
        }
        let x = c * (1 - abs(fmodu - 1))
        let (rr, gg, bb): (Float, Float, Float)
        switch category {
        case 0: (rr, gg, bb) = (c, x, 0)
        case 1: (rr, gg, bb) = (x, c, 0)
        case 2: (rr, gg, bb) = (0, c, x)
        case 3: (rr, gg, bb) = (0, x, c)
        case 4: (rr, gg, bb) = (x, 0, c)
        case 5: (rr, gg, bb) = (c, 0, x)
        default: (rr, gg, bb) = (0, 0, 0)
        }
        return (rr + m, gg + m, bb + m)
    }
}
