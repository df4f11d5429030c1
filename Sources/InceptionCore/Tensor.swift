/// A dense float32 tensor in row-major order.
///
/// Image tensors are NHWC (batch, height, width, channels), as in TF-slim; convolution weights are
/// HWIO (kernel height, kernel width, input channels, output channels), as slim stores them.
/// Storage is a Swift array, so copies are copy-on-write and a `Tensor` is a plain value.
public struct Tensor: Sendable, Equatable {
    /// The extent of each axis, outermost first.
    public private(set) var shape: [Int]
    /// The elements in row-major order; `scalars.count == shape.reduce(1, *)`.
    public var scalars: [Float]

    /// A tensor with the given shape and elements. The element count must match the shape.
    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative extent in shape \(shape)")
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) elements, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of the given shape filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) { self.init(repeating: 0, shape: shape) }

    /// The number of elements.
    public var count: Int { scalars.count }
    /// The number of axes.
    public var rank: Int { shape.count }

    /// The same elements viewed with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, scalars: scalars) }

    /// The element at a full multi-index (slow; for tests and tools, not kernels).
    public subscript(_ index: Int...) -> Float {
        get { scalars[offset(of: index)] }
        set { scalars[offset(of: index)] = newValue }
    }

    private func offset(of index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) does not fit shape \(shape)")
        var offset = 0
        for (i, extent) in zip(index, shape) {
            precondition(i >= 0 && i < extent, "index \(index) out of range for shape \(shape)")
            offset = offset * extent + i
        }
        return offset
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor(shape: \(shape))" }
}

extension Tensor {
    /// The largest absolute element-wise difference to `other` (same shape required).
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        var worst: Float = 0
        for i in 0..<scalars.count { worst = max(worst, abs(scalars[i] - other.scalars[i])) }
        return worst
    }

    /// The largest absolute element.
    public var maxAbs: Float { scalars.reduce(0) { max($0, abs($1)) } }
}

/// A pointer handed to worker threads that write disjoint parts of one buffer.
public struct SendablePointer: @unchecked Sendable {
    public let pointer: UnsafePointer<Float>
    public init(_ pointer: UnsafePointer<Float>) { self.pointer = pointer }
}

/// A mutable pointer handed to worker threads that write disjoint parts of one buffer.
public struct SendableMutablePointer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public init(_ pointer: UnsafeMutablePointer<Float>) { self.pointer = pointer }
}
