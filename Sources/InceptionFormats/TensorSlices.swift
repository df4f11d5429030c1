/// Assembling a variable from slices, as TensorFlow stores partitioned variables: each slice
/// gives, per axis, a start and a length (or "the whole axis"), and holds the elements of that
/// box in row-major order. The slices of one variable must tile it: no gaps, no overlaps.

/// The (start, length) box a slice covers in a tensor of shape `fullShape`.
/// A slice with no extents on a tensor of rank > 0 means the whole tensor.
func resolveSlice(_ extents: [SliceExtent], fullShape: [Int]) throws -> (starts: [Int], lengths: [Int]) {
    if extents.isEmpty { return ([Int](repeating: 0, count: fullShape.count), fullShape) }
    guard extents.count == fullShape.count else {
        throw Malformed("slice has \(extents.count) axes but the variable has shape \(fullShape)")
    }
    var starts: [Int] = []
    var lengths: [Int] = []
    for (axis, extent) in extents.enumerated() {
        let length = extent.length ?? (fullShape[axis] - extent.start)
        guard extent.start >= 0, length >= 0, extent.start <= fullShape[axis],
              length <= fullShape[axis] - extent.start else {
            throw Malformed("slice [\(extent.start), +\(length)) on axis \(axis) lies outside shape \(fullShape)")
        }
        starts.append(extent.start)
        lengths.append(length)
    }
    return (starts, lengths)
}

/// Collects slices of one tensor and checks that together they cover it exactly once.
struct SliceAssembler {
    let shape: [Int]
    private(set) var values: [Float]
    private var covered: [Bool]
    private var coveredCount = 0

    init(shape: [Int], count: Int) {
        self.shape = shape
        values = [Float](repeating: 0, count: count)
        covered = [Bool](repeating: false, count: count)
    }

    var isComplete: Bool { coveredCount == values.count }

    /// Copies a slice's row-major `sliceValues` into the box (starts, lengths).
    mutating func place(starts: [Int], lengths: [Int], _ sliceValues: [Float]) throws {
        let rank = shape.count
        guard let n = elementCount(lengths), n == sliceValues.count else {
            throw Malformed("slice of shape \(lengths) holds \(sliceValues.count) values")
        }
        if n == 0 { return }
        if rank == 0 {
            try mark(0, 1)
            values[0] = sliceValues[0]
            return
        }
        var strides = [Int](repeating: 1, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        let run = lengths[rank - 1]
        var index = [Int](repeating: 0, count: rank)  // position within the slice; last axis unused
        var source = 0
        while true {
            var destination = 0
            for d in 0..<rank - 1 { destination += (starts[d] + index[d]) * strides[d] }
            destination += starts[rank - 1]
            try mark(destination, run)
            for k in 0..<run { values[destination + k] = sliceValues[source + k] }
            source += run
            // Advance the outer axes like an odometer.
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < lengths[d] { break }
                index[d] = 0
                d -= 1
            }
            if d < 0 { break }
        }
    }

    private mutating func mark(_ start: Int, _ count: Int) throws {
        for i in start..<(start + count) {
            guard !covered[i] else { throw Malformed("slices overlap at element \(i)") }
            covered[i] = true
        }
        coveredCount += count
    }
}
