import Dispatch
import InceptionCore

/// Turns decoded images into network input, by default exactly as TF-slim's evaluation path
/// (`inception_preprocessing.preprocess_for_eval`, central_fraction 0.875) run under TF2:
///
/// 1. uint8 → float32 in [0, 1] (`x · Float(1/255)`, as `tf.image.convert_image_dtype`);
/// 2. central crop keeping ``centralFraction`` of height and width, with `tf.image.central_crop`'s
///    integer arithmetic (see ``centralCrop(width:height:)``);
/// 3. bilinear resize to ``height`` × ``width`` as `tf.image.resize(method: 'bilinear',
///    antialias: False)`: half-pixel centres, edge clamping, float32 arithmetic in TF's order;
/// 4. normalization, by default `(x − 0.5) · 2` → [−1, 1].
///
/// The output layout is NHWC with RGB channels.
public struct Preprocessing: Sendable, Equatable {
    /// Where output samples sit on the input grid.
    public enum ResizeCenters: Sendable, Equatable {
        /// TF2 `tf.image.resize` / `ResizeBilinear(half_pixel_centers=True)`:
        /// `in = (out + 0.5) · scale − 0.5`.
        case halfPixel
        /// TF1 `tf.compat.v1.image.resize_bilinear(align_corners=False)`, which is what slim's
        /// `inception_preprocessing.py` literally calls: `in = out · scale` (shifted by half an
        /// output pixel towards the top-left).
        case legacyTF1
    }

    /// The mapping from [0, 1] floats to network input.
    public enum Normalization: Sendable, Equatable {
        /// `(x − 0.5) · 2` → [−1, 1]: slim's Inception (and most TF-slim models).
        case inception
        /// `x` in [0, 1], unchanged.
        case unitRange
        /// `(x − mean[c]) / std[c]` per RGB channel: torchvision-style (e.g. mean 0.485, 0.456, 0.406;
        /// std 0.229, 0.224, 0.225). Only the normalization: torchvision's resize-then-crop geometry
        /// is not implemented here.
        case meanStd(mean: [Float], std: [Float])
    }

    /// Output height and width.
    public var height: Int
    public var width: Int
    /// The fraction of height and width kept by the central crop; nil or 1 for no crop.
    public var centralFraction: Double?
    /// Crop a centred square of `centralFraction` × the shorter side instead (torchvision's
    /// `Resize(256)` + `CenterCrop(224)` keeps that region: 224/256 = 0.875 of the shorter side).
    public var squareCrop = false
    public var resizeCenters: ResizeCenters
    public var normalization: Normalization

    public init(height: Int = 224, width: Int = 224, centralFraction: Double? = 0.875,
                resizeCenters: ResizeCenters = .halfPixel, normalization: Normalization = .inception) {
        precondition(height > 0 && width > 0, "output size must be positive, got \(height)x\(width)")
        if let f = centralFraction { precondition(f > 0 && f <= 1, "central fraction must be in (0, 1], got \(f)") }
        if case let .meanStd(mean, std) = normalization {
            precondition(mean.count == 3 && std.count == 3, "meanStd needs three means and three deviations")
        }
        self.height = height
        self.width = width
        self.centralFraction = centralFraction
        self.resizeCenters = resizeCenters
        self.normalization = normalization
    }

    /// slim's Inception V1 evaluation preprocessing at 224 × 224, exactly as
    /// `inception_preprocessing.preprocess_for_eval` runs it: its resize is
    /// `resize_bilinear(align_corners=False)`, TF1's sampling (``ResizeCenters/legacyTF1``), which is
    /// what the released checkpoint was evaluated with. `Preprocessing()` uses TF2's half-pixel
    /// centres instead; the two differ by a fraction of a pixel.
    public static let inceptionEval = Preprocessing(resizeCenters: .legacyTF1)

    /// torchvision's evaluation geometry for its GoogLeNet: the centred square of 0.875 × the shorter
    /// side (what `Resize(256)` + `CenterCrop(224)` keep), resized to 224 × 224 with half-pixel
    /// bilinear sampling, in [-1, 1] — which is what torchvision's mean/std normalization followed
    /// by the model's `transform_input` amounts to. PIL's antialiased downscaling is not reproduced,
    /// so values differ slightly from torchvision's on large photos.
    public static var torchvisionEval: Preprocessing {
        var p = Preprocessing(resizeCenters: .halfPixel)
        p.squareCrop = true
        return p
    }

    /// The shape of one preprocessed image batch: [count, height, width, 3].
    public func batchShape(count: Int) -> [Int] { [count, height, width, 3] }

    /// The region kept by the central crop of a `width` × `height` image, computed as
    /// `tf.image.central_crop` does: `start = Int((size − size · fraction) / 2)` in double precision
    /// (truncated), and `extent = size − 2 · start`.
    public func centralCrop(width: Int, height: Int) -> (x: Int, y: Int, width: Int, height: Int) {
        if squareCrop {
            let side = max(1, Int((Double(min(width, height)) * (centralFraction ?? 1)).rounded()))
            return ((width - side) / 2, (height - side) / 2, side, side)
        }
        guard let fraction = centralFraction, fraction < 1 else { return (0, 0, width, height) }
        func start(_ size: Int) -> Int {
            let s = Double(size)
            return Int((s - s * fraction) / 2)
        }
        let x = start(width), y = start(height)
        return (x, y, width - 2 * x, height - 2 * y)
    }

    /// One image as a [1, height, width, 3] tensor.
    public func tensor(for image: RGBImage) -> Tensor {
        var out = Tensor(zeros: batchShape(count: 1))
        write(image, into: &out, at: 0)
        return out
    }

    /// Preprocesses `image` into slot `index` of a [N, height, width, 3] batch tensor.
    public func write(_ image: RGBImage, into batch: inout Tensor, at index: Int) {
        precondition(batch.rank == 4 && Array(batch.shape[1...]) == [height, width, 3],
                     "batch shape \(batch.shape) does not fit [N, \(height), \(width), 3]")
        precondition(index >= 0 && index < batch.shape[0], "index \(index) outside a batch of \(batch.shape[0])")
        let size = height * width * 3
        batch.scalars.withUnsafeMutableBufferPointer { buffer in
            run(image, into: buffer.baseAddress! + index * size)
        }
    }

    /// Preprocesses `images` into one [N, height, width, 3] tensor, several images at a time.
    public func batch(_ images: [RGBImage]) -> Tensor {
        var out = Tensor(zeros: batchShape(count: images.count))
        guard !images.isEmpty else { return out }
        let size = height * width * 3
        out.scalars.withUnsafeMutableBufferPointer { buffer in
            let base = SharedPointer(buffer.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: images.count) { i in
                run(images[i], into: base.pointer + i * size)
            }
        }
        return out
    }

    /// Decodes the files at `paths` and preprocesses them into one [N, height, width, 3] tensor,
    /// several files at a time (each decoded image is released once written). If any file fails,
    /// the error for the first failing path (in `paths` order) is thrown.
    public func batch(contentsOf paths: [String], options: DecodeOptions = DecodeOptions()) throws(ImageError) -> Tensor {
        var out = Tensor(zeros: batchShape(count: paths.count))
        guard !paths.isEmpty else { return out }
        let size = height * width * 3
        var errors = [ImageError?](repeating: nil, count: paths.count)
        out.scalars.withUnsafeMutableBufferPointer { buffer in
            errors.withUnsafeMutableBufferPointer { errorSlots in
                let base = SharedPointer(buffer.baseAddress!)
                let slots = SharedPointer(errorSlots.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: paths.count) { i in
                    do throws(ImageError) {
                        let image = try ImageDecoder.decode(contentsOf: paths[i], options: options)
                        run(image, into: base.pointer + i * size)
                    } catch {
                        slots.pointer[i] = error
                    }
                }
            }
        }
        if let first = errors.lazy.compactMap({ $0 }).first { throw first }
        return out
    }

    // MARK: - Kernel

    /// A pointer handed to concurrent iterations that each write a disjoint slice of its memory.
    private struct SharedPointer<Element>: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<Element>
        init(_ pointer: UnsafeMutablePointer<Element>) { self.pointer = pointer }
    }

    /// Source rows/columns and weights for each output row/column, as TF's
    /// `compute_interpolation_weights`: lower = max(floor(in), 0), upper = min(ceil(in), size − 1),
    /// lerp = in − floor(in), with `scale = Float(inSize) / Float(outSize)`.
    public static func interpolation(inSize: Int, outSize: Int, centers: ResizeCenters)
        -> (lower: [Int], upper: [Int], lerp: [Float])
    {
        let scale = Float(inSize) / Float(outSize)
        var lower = [Int](repeating: 0, count: outSize)
        var upper = [Int](repeating: 0, count: outSize)
        var lerp = [Float](repeating: 0, count: outSize)
        for i in 0..<outSize {
            let position: Float = centers == .halfPixel ? (Float(i) + 0.5) * scale - 0.5 : Float(i) * scale
            let floored = position.rounded(.down)
            lower[i] = max(Int(floored), 0)
            upper[i] = min(Int(position.rounded(.up)), inSize - 1)
            lerp[i] = position - floored
        }
        return (lower, upper, lerp)
    }

    /// `Float(v) · Float(1/255)` for every byte, as `convert_image_dtype` computes it.
    public static let unitScale: [Float] = (0..<256).map { Float($0) * Float(1.0 / 255.0) }

    private func run(_ image: RGBImage, into output: UnsafeMutablePointer<Float>) {
        let crop = centralCrop(width: image.width, height: image.height)
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
                        let left = columns.lower[ox] * 3, right = columns.upper[ox] * 3
                        let xLerp = columns.lerp[ox]
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
        normalize(output, count: height * width)
    }

    private func normalize(_ values: UnsafeMutablePointer<Float>, count: Int) {
        switch normalization {
        case .unitRange:
            return
        case .inception:
            for i in 0..<count * 3 { values[i] = (values[i] - 0.5) * 2 }
        case let .meanStd(mean, std):
            for p in 0..<count {
                for c in 0..<3 { values[p * 3 + c] = (values[p * 3 + c] - mean[c]) / std[c] }
            }
        }
    }
}
