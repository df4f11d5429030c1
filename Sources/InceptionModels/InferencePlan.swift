import InceptionCore

/// Inference as a fixed schedule of kernel calls over buffers that are planned once per input
/// shape and reused by every later pass: after the first pass a forward allocates nothing but
/// the tensors it returns. Each Inception branch writes straight into its channel slice of the
/// block's output, so there is no concatenation copy.
final class InferencePlan {
    /// Where a value lives: an allocation in the plan's arena (or the caller's input, slot −1)
    /// and its NHWC shape. Values that share a slot share the memory.
    struct Value {
        let slot: Int
        let shape: [Int]
        /// Inside an ``Step/eachImage(count:steps:)`` loop: the value is one image (`shape[0]` = 1)
        /// of a batch buffer, at an offset of `image · count` floats in its slot.
        var perImage = false
        var count: Int { shape.reduce(1, *) }
    }

    enum Step {
        case conv(Convolution2D, input: Value, output: Value, channelOffset: Int)
        case pool(Pooling.Kind, Window2D, input: Value, output: Value, channelOffset: Int)
        case globalAverage(input: Value, output: Value)
        case localResponseNorm(LocalResponseNorm, input: Value, output: Value)
        case softmax(input: Value, output: Value)
        /// Copy a value out as a named endpoint (only the endpoints the caller asked for).
        case emit(String, Value)
        /// Runs `steps` once per image of the batch (see ``planEachImage(_:scope:input:convolutions:)``).
        indirect case eachImage(count: Int, steps: [Step])
    }

    let inputShape: [Int]
    private(set) var steps: [Step] = []
    private(set) var output: Value!
    /// Where each slot lives in the arena (planned value by value).
    private var layout = ArenaLayout()
    /// One block holding every slot; `buffers[slot]` points into it.
    private var arena: UnsafeMutablePointer<Float>?
    private var buffers: [UnsafeMutablePointer<Float>] = []

    /// Plans `layers` (+ the head) for one input shape, emitting the endpoints `keep` accepts.
    init(inputShape: [Int], scope: String, layers: [Layer], head: Head?, convolutions: [String: Convolution2D],
         keep: (String) -> Bool) {
        self.inputShape = inputShape
        var x = Value(slot: -1, shape: inputShape)
        var layers = layers[...]
        // The large early layers run image by image when none of their endpoints is wanted (see
        // planEachImage): those whose input has at least 28×28 pixels, up to the last that is not
        // an Inception block (its output is the batch buffer the rest of the network reads).
        var stem: [Layer] = []
        var current = inputShape
        for layer in layers {
            guard current[1] * current[2] >= 784 else { break }
            stem.append(layer)
            current = shape(after: [layer], scope: scope, input: current, convolutions: convolutions)
        }
        while let last = stem.last, case .mixed = last { stem.removeLast() }
        if inputShape[0] > 1, !stem.isEmpty, !stem.contains(where: { keep($0.name) }) {
            x = planEachImage(Array(stem), scope: scope, input: x, convolutions: convolutions)
            layers = layers.dropFirst(stem.count)
        }
        for layer in layers {
            let y = plan(layer, scope: scope, input: x, convolutions: convolutions)
            release(x)
            x = y
            if keep(layer.name) { steps.append(.emit(layer.name, x)) }
        }
        if let head {
            let pooledShape = [x.shape[0], 1, 1, x.shape[3]]
            let pooled = allocate(pooledShape)
            if head.globalPool {
                steps.append(.globalAverage(input: x, output: pooled))
            } else {
                steps.append(.pool(.average, head.poolWindow, input: x, output: pooled, channelOffset: 0))
            }
            release(x)
            x = pooled
            if keep(head.poolName) { steps.append(.emit(head.poolName, x)) }
            if let logits = head.logits {
                let out = allocate([x.shape[0], 1, 1, logits.outputChannels])
                steps.append(.conv(logits, input: x, output: out, channelOffset: 0))
                release(x)
                let squeezed = head.spatialSqueeze ? Value(slot: out.slot, shape: [x.shape[0], logits.outputChannels]) : out
                if keep("Logits") { steps.append(.emit("Logits", squeezed)) }
                if keep("Predictions") {
                    let probabilities = allocate(squeezed.shape)
                    steps.append(.softmax(input: squeezed, output: probabilities))
                    steps.append(.emit("Predictions", probabilities))
                }
                x = squeezed
            }
        }
        output = x
        let arena = FloatMemory.allocate(layout.size)
        self.arena = arena
        buffers = layout.offsets.map { arena + $0 }
    }

    deinit { FloatMemory.free(arena) }

    /// What the plan needs to know about the classification head.
    struct Head {
        let globalPool: Bool
        let poolWindow: Window2D
        let logits: Convolution2D?
        let spatialSqueeze: Bool
        var poolName: String { globalPool ? "global_pool" : "AvgPool_0a_7x7" }
    }

    /// Bytes of activation buffers the plan holds.
    var bufferBytes: Int { layout.size * MemoryLayout<Float>.stride }

    // MARK: Planning

    /// Plans `stem` (the network's first layers, Inception blocks included, ending with one that
    /// is not a block) to run once per image of the batch, writing each image's result into its
    /// place in one batch-sized buffer.
    ///
    /// Why: the early activations are the largest of the network (Conv2d_1a_7x7's output is
    /// 112×112×64, 3.2 MB per image; Conv2d_2c_3x3's 56×56×192, 2.4 MB; Mixed_3c's 28×28×480,
    /// 1.5 MB), so at batch 8 they set the plan's peak memory (about 45 MB of buffers). Per image
    /// they need a fraction of that, and they lose nothing in speed (measured: batch 8 is faster
    /// this way, the working set staying in cache): even one image gives those convolutions
    /// hundreds to thousands of output rows to split over the threads.
    private func planEachImage(_ stem: [Layer], scope: String, input: Value,
                               convolutions: [String: Convolution2D]) -> Value {
        let images = input.shape[0]
        var x = Value(slot: -1, shape: [1] + input.shape.dropFirst(), perImage: true)
        let imageOutput = shape(after: stem, scope: scope, input: x.shape, convolutions: convolutions)
        // The batch output lives across the whole loop: it is allocated before any per-image
        // buffer so that none of them can share its slot.
        let batchOutput = allocate([images] + imageOutput.dropFirst())
        let outer = steps
        steps = []
        for (i, layer) in stem.enumerated() {
            let y: Value
            if i == stem.count - 1 {
                y = Value(slot: batchOutput.slot, shape: imageOutput, perImage: true)
                append(layer, scope: scope, input: x, output: y, channelOffset: 0, convolutions: convolutions)
            } else {
                y = plan(layer, scope: scope, input: x, convolutions: convolutions)
            }
            release(x)
            x = y
        }
        steps = outer + [.eachImage(count: images, steps: steps)]
        return batchOutput
    }

    private func plan(_ layer: Layer, scope: String, input: Value, convolutions: [String: Convolution2D]) -> Value {
        switch layer {
        case .conv, .maxPool, .avgPool, .localResponseNorm, .adaptiveAvgPool, .fullyConnected:
            let shape = outputShape(layer, scope: scope, input: input.shape, convolutions: convolutions)
            let out = allocate(shape)
            append(layer, scope: scope, input: input, output: out, channelOffset: 0, convolutions: convolutions)
            return out
        case .mixed(let name, let branches):
            // Plan each branch's shapes first to size the concatenated output.
            var shapes: [[Int]] = []
            for (i, branch) in branches.enumerated() {
                var s = input.shape
                for l in branch { s = outputShape(l, scope: "\(scope)/\(name)/Branch_\(i)", input: s, convolutions: convolutions) }
                shapes.append(s)
            }
            let out = allocate([input.shape[0], shapes[0][1], shapes[0][2], shapes.reduce(0) { $0 + $1[3] }])
            var offset = 0
            for (i, branch) in branches.enumerated() {
                let branchScope = "\(scope)/\(name)/Branch_\(i)"
                var current = input
                for (j, l) in branch.enumerated() {
                    if j == branch.count - 1 {
                        append(l, scope: branchScope, input: current, output: out, channelOffset: offset, convolutions: convolutions)
                    } else {
                        let next = allocate(outputShape(l, scope: branchScope, input: current.shape, convolutions: convolutions))
                        append(l, scope: branchScope, input: current, output: next, channelOffset: 0, convolutions: convolutions)
                        if current.slot != input.slot { release(current) }
                        current = next
                    }
                }
                if current.slot != input.slot { release(current) }
                offset += shapes[i][3]
            }
            return out
        }
    }

    private func append(_ layer: Layer, scope: String, input: Value, output: Value, channelOffset: Int,
                        convolutions: [String: Convolution2D]) {
        switch layer {
        case .conv(let name, _, _):
            steps.append(.conv(convolutions["\(scope)/\(name)"]!, input: input, output: output, channelOffset: channelOffset))
        case .maxPool(_, let window):
            steps.append(.pool(.max, window, input: input, output: output, channelOffset: channelOffset))
        case .avgPool(_, let window):
            steps.append(.pool(.average, window, input: input, output: output, channelOffset: channelOffset))
        case .localResponseNorm(_, let lrn):
            precondition(channelOffset == 0 && output.shape[3] == input.shape[3], "LRN writes a whole tensor")
            steps.append(.localResponseNorm(lrn, input: input, output: output))
        case .mixed, .adaptiveAvgPool, .fullyConnected:
            preconditionFailure("\(layer.name): not part of any network's inference path")
        }
    }

    /// The output shape of `layers` run in order on `input`.
    private func shape(after layers: [Layer], scope: String, input: [Int], convolutions: [String: Convolution2D]) -> [Int] {
        layers.reduce(input) { current, layer in
            guard case .mixed(let name, let branches) = layer else {
                return outputShape(layer, scope: scope, input: current, convolutions: convolutions)
            }
            let outputs = branches.enumerated().map { i, branch in
                shape(after: branch, scope: "\(scope)/\(name)/Branch_\(i)", input: current, convolutions: convolutions)
            }
            return Array(outputs[0].prefix(3)) + [outputs.reduce(0) { $0 + $1[3] }]
        }
    }

    private func outputShape(_ layer: Layer, scope: String, input: [Int], convolutions: [String: Convolution2D]) -> [Int] {
        switch layer {
        case .conv(let name, _, _): return convolutions["\(scope)/\(name)"]!.outputShape(for: input)!
        case .maxPool(_, let window), .avgPool(_, let window): return Pooling.outputShape(window, input: input)!
        case .localResponseNorm: return input
        case .mixed, .adaptiveAvgPool, .fullyConnected:
            preconditionFailure("\(layer.name): not part of any network's inference path")
        }
    }

    private func allocate(_ shape: [Int]) -> Value {
        Value(slot: layout.allocate(shape.reduce(1, *)), shape: shape)
    }

    private func release(_ value: Value) {
        if value.slot >= 0 { layout.release(value.slot) }
    }

    // MARK: Running

    /// Runs the schedule on `input` (of `inputShape`); returns the output and the emitted endpoints.
    func run(_ input: Tensor) -> (output: Tensor, endpoints: Endpoints) {
        precondition(input.shape == inputShape)
        var endpoints = Endpoints()
        input.scalars.withUnsafeBufferPointer { inputBuffer in
            let source = UnsafeMutablePointer(mutating: inputBuffer.baseAddress!)
            var image = 0
            func pointer(_ v: Value) -> UnsafeMutablePointer<Float> {
                (v.slot < 0 ? source : buffers[v.slot]) + (v.perImage ? image * v.count : 0)
            }
            func execute(_ steps: [Step]) {
                for step in steps {
                    switch step {
                    case .conv(let conv, let x, let y, let offset):
                        conv.run(pointer(x), batch: x.shape[0], height: x.shape[1], width: x.shape[2],
                                 into: pointer(y) + offset, channelStride: y.shape[3])
                    case .pool(let kind, let window, let x, let y, let offset):
                        Pooling.pool(kind, pointer(x), shape: x.shape, window, into: pointer(y) + offset, channelStride: y.shape[3])
                    case .globalAverage(let x, let y):
                        Pooling.globalAverage(pointer(x), shape: x.shape, into: pointer(y))
                    case .localResponseNorm(let lrn, let x, let y):
                        lrn.run(pointer(x), pixels: x.count / x.shape[3], channels: x.shape[3], into: pointer(y))
                    case .softmax(let x, let y):
                        Ops.softmax(pointer(x), rows: x.count / x.shape.last!, classes: x.shape.last!, into: pointer(y))
                    case .emit(let name, let v):
                        endpoints.append(name, Tensor(shape: v.shape, scalars: Array(UnsafeBufferPointer(start: pointer(v), count: v.count))))
                    case .eachImage(let count, let body):
                        for i in 0..<count { image = i; execute(body) }
                        image = 0
                    }
                }
            }
            execute(steps)
        }
        let out = output.slot < 0 ? input
            : Tensor(shape: output.shape, scalars: Array(UnsafeBufferPointer(start: buffers[output.slot], count: output.count)))
        return (out, endpoints)
    }
}

/// Places the plan's values in one block of memory as they are planned: each new value at the
/// lowest place, on a 64-byte boundary, that overlaps no live value (first fit by address).
///
/// Why lowest-first: the places reused most are the ones written most recently, so a layer's
/// output mostly lands on memory that is still in cache. An output written to memory last
/// touched a whole pass ago (the weights streaming through evict it) has every cache line read
/// from DRAM before it is written: at batch 1 that cost Conv2d_2c_3x3 (2.4 MB of output) ~25% of
/// its time. With a buffer per value it did; here its output lands on Conv2d_1a_7x7's, written a
/// millisecond earlier (batch 1: 5.15 → 4.95 ms per image).
struct ArenaLayout {
    /// Each slot's first float.
    private(set) var offsets: [Int] = []
    private var counts: [Int] = []
    private var live: Set<Int> = []
    /// Floats the block needs.
    private(set) var size = 0

    /// A new live slot of `count` floats.
    mutating func allocate(_ count: Int) -> Int {
        let rounded = (count + 15) / 16 * 16
        var offset = 0
        for slot in live.sorted(by: { offsets[$0] < offsets[$1] }) {
            if offset + rounded <= offsets[slot] { break }
            offset = max(offset, offsets[slot] + counts[slot])
        }
        offsets.append(offset)
        counts.append(rounded)
        live.insert(offsets.count - 1)
        size = max(size, offset + rounded)
        return offsets.count - 1
    }

    /// Frees a slot's place for later values (again: no effect).
    mutating func release(_ slot: Int) { live.remove(slot) }
}
