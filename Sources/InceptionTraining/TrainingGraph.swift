import Foundation
import Inception

/// One training pass (forward in training mode, then reverse-mode gradients) over the model's
/// layer list, planned once per input shape.
///
/// The plan walks `InceptionModel.layers` (the network is data) and makes:
/// - a **wide** buffer per root convolution and per Inception block: every convolution of a block
///   writes its pre-batch-norm output Z into its own channel columns, branch outputs side by side in
///   concatenation order (so the block output is a column range: no concatenation copy) after the
///   branches' inner convolutions;
/// - **one fused GEMM** for the 1x1 stride-1 convolutions that open the branches of a block (they
///   read the same input): their columns are adjacent by construction, so forward is one matrix
///   product with the weights side by side, and backward gets the sum of their input gradients
///   from one product with the stacked transposed weights;
/// - pool nodes (also local response normalization and adaptive pooling: per-pixel or windowed
///   operations with their own output), and the head (pool → dropout → logits → softmax
///   cross-entropy);
/// - auxiliary classifiers (the paper's and torchvision's GoogLeNet) as ordinary nodes right after
///   the block they read, ending in a head node whose loss is weighted (0.3): walking backward,
///   their gradient reaches the block's output before the block's own convolutions run.
///
/// Saved for backward: Z of every convolution (and the batch statistics), and of every max pool
/// the window position of each maximum (one byte per output element: its gradient then needs
/// neither X nor Y) and, when a convolution's weight gradient reads it, its output (so that
/// neither the pool nor its input is recomputed for that). Other activations Y = ReLU(BN(Z))
/// and pooled values are re-materialised when a gradient kernel needs them and released after
/// their last use, unless the Ys that weight gradients read fit ``keptActivationBudget``
/// together (then they stay from the forward); gradients live in buffers with the same layout
/// as the wides, batch-norm backward turning ∂L/∂Y into ∂L/∂Z in place. Transient buffers come from a
/// ``SlotAllocator`` that reuses them step after step.
///
/// Trainable scopes: a convolution computes dW only for trainable weights, and a node sends a
/// gradient to its input only if something trainable lies upstream, so fine-tuning just the head
/// runs no convolution backward at all. Batch-norm statistics are computed (and the moving
/// averages updated by the trainer) for every layer, as slim's UPDATE_OPS do.
final class TrainingGraph {
    let options: ModelOptions
    let inputShape: [Int]
    private(set) var nodes: [Node] = []
    private(set) var head: HeadNode?
    /// The last base endpoint's activation (the head's input).
    private(set) var output: Source = .image

    let memory = SlotAllocator()
    let workspace = Workspace()
    let image: FloatBuffer
    private var wides: [Wide] = []
    private var forwardReleases: [[Holder]] = []
    private var backwardYReleases: [[Holder]] = []
    private var backwardGradientReleases: [[Holder]] = []

    /// The variables used by the current step (read only).
    var variables: [String: [Float]] = [:]
    /// Gradients of the trainable variables, filled by ``backward()``.
    var gradients: [String: [Float]] = [:]
    /// Whether a variable gets a gradient.
    let isTrainable: (String) -> Bool

    enum Node {
        case conv(ConvNode)
        case pool(PoolNode)
        /// An auxiliary classifier's loss (the main head is ``head``).
        case head(HeadNode)
    }

    /// The auxiliary classifiers' heads, in network order.
    private(set) var auxiliaryHeads: [HeadNode] = []

    /// Bytes of the saved pre-activations and max-pool positions (held for the life of the plan).
    var savedBytes: Int {
        wides.reduce(0) { $0 + $1.z.capacity } * MemoryLayout<Float>.stride
            + nodes.reduce(0) { if case .pool(let p) = $1 { return $0 + (p.argmax?.count ?? 0) }; return $0 }
    }

    init(layers: [Layer], options: ModelOptions, inputShape: [Int], isTrainable: @escaping (String) -> Bool) throws {
        precondition(inputShape.count == 4)
        self.options = options
        self.inputShape = inputShape
        self.isTrainable = isTrainable
        image = FloatBuffer(capacity: inputShape.reduce(1, *))
        let network = options.network
        let withHead = options.finalEndpoint == "Mixed_5c" && options.numClasses > 0
        var source = Source.image
        for layer in layers {
            source = try build(layer, scope: network.scope, input: source)
            guard withHead && options.auxiliaryLogits else { continue }
            for aux in network.auxiliaryHeads where aux.endpoint == layer.name {
                try buildAuxiliary(aux, scope: network.scope, input: source)
            }
        }
        output = source
        if withHead {
            let s = shape(of: source)
            var pooled = (1, 1)
            if !options.globalPool {
                guard let g = network.headPoolWindow.geometry(inputHeight: s[1], inputWidth: s[2]) else {
                    throw TrainingError.unsupported("the \(s[1])x\(s[2]) Mixed_5c output is smaller than the 7x7 average pool; use global pooling")
                }
                pooled = (g.outputHeight, g.outputWidth)
            }
            guard pooled == (1, 1) else {
                throw TrainingError.unsupported("a \(inputShape[1])x\(inputShape[2]) input gives \(pooled.0)x\(pooled.1) logits; "
                    + "training needs one prediction per image: use global pooling or a 224x224 input")
            }
            head = HeadNode(path: "\(network.scope)/\(network.logitsScope)", input: source, inputShape: s,
                            classes: options.numClasses, pool: options.globalPool ? nil : network.headPoolWindow,
                            keep: options.dropoutKeepProbability, lossWeight: 1)
        }
        planGradientFlow()
        planPoolsOverPreActivations()
        planReleases()
    }

    // MARK: Building

    private func shape(of source: Source) -> [Int] {
        switch source {
        case .image: return inputShape
        case .wide(let w, let r): return [w.batch, w.height, w.width, r.count]
        case .pool(let p): return [p.batch, p.height, p.width, p.channels]
        }
    }

    /// An auxiliary classifier: its layers on `input`, then a weighted head on their 1x1 output.
    private func buildAuxiliary(_ aux: AuxiliaryHead, scope: String, input: Source) throws {
        func unfit(_ detail: String) -> TrainingError {
            TrainingError.unsupported("\(aux.name): the auxiliary classifier does not fit a \(inputShape[1])x\(inputShape[2]) input "
                + "(\(detail)); train at 224x224, or without auxiliary classifiers (--aux-loss-weight 0)")
        }
        var x = input
        for layer in aux.layers {
            do { x = try build(layer, scope: "\(scope)/\(aux.name)", input: x) } catch let error as TrainingError { throw unfit("\(error)") }
        }
        let s = shape(of: x)
        guard s[1] == 1 && s[2] == 1 else { throw unfit("its fully connected layer sees a \(s[1])x\(s[2]) grid") }
        let node = HeadNode(path: "\(scope)/\(aux.name)/\(aux.logitsName)", input: x, inputShape: s, classes: options.numClasses,
                            pool: nil, keep: options.auxiliaryDropoutKeepProbability, lossWeight: options.auxiliaryLossWeight)
        node.name = aux.name
        nodes.append(.head(node))
        auxiliaryHeads.append(node)
    }

    private func convOutputShape(_ input: [Int], channels: Int, window: Window2D, path: String) throws -> [Int] {
        guard let g = window.geometry(inputHeight: input[1], inputWidth: input[2]) else {
            throw TrainingError.unsupported("\(path): a \(window.kernelHeight)x\(window.kernelWidth) VALID window does not fit a \(input[1])x\(input[2]) input")
        }
        return [input[0], g.outputHeight, g.outputWidth, channels]
    }

    private func makeWide(_ shape: [Int], columns: Int) -> Wide {
        let w = Wide(batch: shape[0], height: shape[1], width: shape[2], columns: columns)
        wides.append(w)
        return w
    }

    private func addConv(units: [(path: String, channels: Int)], window: Window2D, input: Source, wide: Wide, column: Int,
                         fullyConnected: Bool = false) -> ConvNode {
        var offset = 0
        let list = units.map { u -> ConvUnit in defer { offset += u.channels }; return ConvUnit(path: u.path, channels: u.channels, offset: offset) }
        let node = ConvNode(index: nodes.count, units: list, window: window, input: input, inputChannels: shape(of: input)[3],
                            wide: wide, columns: column..<(column + offset), options: options, fullyConnected: fullyConnected)
        wide.producers.append(node)
        nodes.append(.conv(node))
        return node
    }

    private func addPool(_ kind: Pooling.Kind, window: Window2D, input: Source, path: String) throws -> PoolNode {
        let s = shape(of: input)
        guard let out = Pooling.outputShape(window, input: s) else {
            throw TrainingError.unsupported("\(path): the pooling window does not fit a \(s[1])x\(s[2]) input")
        }
        guard kind == .average || window.kernelHeight * window.kernelWidth <= 255 else {
            throw TrainingError.unsupported("\(path): training records max-pool positions in a byte: at most 255 window taps")
        }
        return addPoolNode(kind == .max ? .max(window) : .average(window), input: input, shape: out)
    }

    private func addPoolNode(_ operation: PoolNode.Operation, input: Source, shape: [Int]) -> PoolNode {
        let node = PoolNode(index: nodes.count, operation: operation, input: input, shape: shape)
        nodes.append(.pool(node))
        return node
    }

    private func build(_ layer: Layer, scope: String, input: Source) throws -> Source {
        switch layer {
        case .conv(let name, let channels, let window):
            let path = "\(scope)/\(name)"
            let out = try convOutputShape(shape(of: input), channels: channels, window: window, path: path)
            let wide = makeWide(out, columns: channels)
            _ = addConv(units: [(path, channels)], window: window, input: input, wide: wide, column: 0)
            return .wide(wide, 0..<channels)
        case .maxPool(let name, let window):
            return .pool(try addPool(.max, window: window, input: input, path: "\(scope)/\(name)"))
        case .avgPool(let name, let window):
            return .pool(try addPool(.average, window: window, input: input, path: "\(scope)/\(name)"))
        case .mixed(let name, let branches):
            return try buildMixed(scope: "\(scope)/\(name)", branches: branches, input: input)
        case .localResponseNorm(_, let lrn):
            return .pool(addPoolNode(.localResponseNorm(lrn), input: input, shape: shape(of: input)))
        case .adaptiveAvgPool(_, let oh, let ow):
            let s = shape(of: input)
            return .pool(addPoolNode(.adaptiveAverage, input: input, shape: [s[0], oh, ow, s[3]]))
        case .fullyConnected(let name, let channels, let window):
            let path = "\(scope)/\(name)"
            let out = try convOutputShape(shape(of: input), channels: channels, window: window, path: path)
            let wide = makeWide(out, columns: channels)
            _ = addConv(units: [(path, channels)], window: window, input: input, wide: wide, column: 0, fullyConnected: true)
            return .wide(wide, 0..<channels)
        }
    }

    /// An Inception block: see the type's documentation for the layout.
    private func buildMixed(scope: String, branches: [[Layer]], input: Source) throws -> Source {
        struct Step { let layer: Layer; let path: String; let inShape: [Int]; let outShape: [Int] }
        let inShape = shape(of: input)
        var steps: [[Step]] = []
        for (i, branch) in branches.enumerated() {
            guard let last = branch.last, case .conv = last else {
                throw TrainingError.unsupported("\(scope)/Branch_\(i): training needs every branch to end in a convolution")
            }
            var s = inShape
            var list: [Step] = []
            for layer in branch {
                let path = "\(scope)/Branch_\(i)/\(layer.name)"
                let out: [Int]
                switch layer {
                case .conv(_, let channels, let window): out = try convOutputShape(s, channels: channels, window: window, path: path)
                case .maxPool(_, let window), .avgPool(_, let window):
                    guard let o = Pooling.outputShape(window, input: s) else { throw TrainingError.unsupported("\(path): window does not fit") }
                    out = o
                case .mixed, .localResponseNorm, .adaptiveAvgPool, .fullyConnected:
                    throw TrainingError.unsupported("\(path): \(layer.name) inside an Inception block")
                }
                list.append(Step(layer: layer, path: path, inShape: s, outShape: out))
                s = out
            }
            steps.append(list)
        }
        let spatial = Array(steps[0].last!.outShape.prefix(3))
        guard steps.allSatisfy({ Array($0.last!.outShape.prefix(3)) == spatial }) else {
            throw TrainingError.unsupported("\(scope): branches end at different sizes and cannot be concatenated")
        }
        func isConv(_ s: Step) -> (channels: Int, window: Window2D)? {
            if case .conv(_, let c, let w) = s.layer { return (c, w) }
            return nil
        }
        func opensWith1x1(_ i: Int) -> Bool {
            guard let c = isConv(steps[i][0]) else { return false }
            return c.window.isPointwise
        }
        // Fused: branches opening with a 1x1 stride-1 conv; single-conv branches only as a prefix
        // of the concatenation order (so the fused columns are contiguous).
        var fused = Set((0..<steps.count).filter(opensWith1x1))
        var prefix = 0
        while prefix < steps.count && fused.contains(prefix) && steps[prefix].count == 1 { prefix += 1 }
        for i in fused where steps[i].count == 1 && i >= prefix { fused.remove(i) }
        // Columns: inner convs (same size as the block output; the fused ones last), then branch outputs.
        var column: [String: Int] = [:]
        var next = 0
        var innerOwnWide: Set<String> = []
        let inner = steps.enumerated().flatMap { i, list in list.dropLast().enumerated().map { (i, $0.offset, $0.element) } }
        for pass in 0..<2 {
            for (i, j, step) in inner {
                guard let c = isConv(step) else { continue }
                let isFused = j == 0 && fused.contains(i)
                guard (pass == 1) == isFused else { continue }
                if Array(step.outShape.prefix(3)) != spatial { innerOwnWide.insert(step.path); continue }
                column[step.path] = next
                next += c.channels
            }
        }
        let innerWidth = next
        for list in steps { column[list.last!.path] = next; next += isConv(list.last!)!.channels }
        let wide = makeWide(spatial + [next], columns: next)

        var current = Array(repeating: input, count: steps.count)
        var done = Array(repeating: 0, count: steps.count)
        // Pools opening a branch first (their input gradient then adds onto the fused product's).
        for i in 0..<steps.count {
            let step = steps[i][0]
            switch step.layer {
            case .maxPool(_, let w): current[i] = .pool(try addPool(.max, window: w, input: input, path: step.path)); done[i] = 1
            case .avgPool(_, let w): current[i] = .pool(try addPool(.average, window: w, input: input, path: step.path)); done[i] = 1
            default: break
            }
        }
        let fusedOrder = fused.sorted { (steps[$0].count == 1 ? 1 : 0, $0) < (steps[$1].count == 1 ? 1 : 0, $1) }
        if !fusedOrder.isEmpty {
            let first = steps[fusedOrder[0]][0]
            let units = fusedOrder.map { (steps[$0][0].path, isConv(steps[$0][0])!.channels) }
            let start = column[first.path]!
            let node = addConv(units: units, window: isConv(first)!.window, input: input, wide: wide, column: start)
            for (u, i) in zip(node.units, fusedOrder) {
                current[i] = .wide(wide, (node.columns.lowerBound + u.offset)..<(node.columns.lowerBound + u.offset + u.channels))
                done[i] = 1
            }
        }
        for i in 0..<steps.count {
            for step in steps[i][done[i]...] {
                switch step.layer {
                case .conv(_, let channels, let window):
                    if innerOwnWide.contains(step.path) {
                        let own = makeWide(step.outShape, columns: channels)
                        _ = addConv(units: [(step.path, channels)], window: window, input: current[i], wide: own, column: 0)
                        current[i] = .wide(own, 0..<channels)
                    } else {
                        let start = column[step.path]!
                        _ = addConv(units: [(step.path, channels)], window: window, input: current[i], wide: wide, column: start)
                        current[i] = .wide(wide, start..<(start + channels))
                    }
                case .maxPool(_, let w): current[i] = .pool(try addPool(.max, window: w, input: current[i], path: step.path))
                case .avgPool(_, let w): current[i] = .pool(try addPool(.average, window: w, input: current[i], path: step.path))
                case .mixed, .localResponseNorm, .adaptiveAvgPool, .fullyConnected: break
                }
            }
        }
        return .wide(wide, innerWidth..<next)
    }

    // MARK: Planning

    /// Which nodes compute what in backward, and whether each input gradient is written or added.
    private func planGradientFlow() {
        // Forward: does a value depend on anything trainable?
        var dependsWide: [ObjectIdentifier: [Range<Int>]] = [:]  // column ranges of wides that do
        func depends(_ s: Source) -> Bool {
            switch s {
            case .image: return false
            case .wide(let w, let r): return (dependsWide[ObjectIdentifier(w)] ?? []).contains { $0.overlaps(r) }
            case .pool(let p): return p.dependsOnTrainable
            }
        }
        for node in nodes {
            switch node {
            case .conv(let c):
                let own = c.units.contains { u in c.variableNames(u).contains(where: isTrainable) }
                c.computeWeights = c.units.contains { isTrainable($0.weights) }
                c.propagate = depends(c.input)
                c.participates = own || c.propagate
                if c.participates { dependsWide[ObjectIdentifier(c.wide), default: []].append(c.columns) }
            case .pool(let p):
                p.propagate = depends(p.input)
                p.dependsOnTrainable = p.propagate
            case .head(let h):
                h.planGradients(isTrainable: isTrainable, inputDependsOnTrainable: depends(h.input))
            }
        }
        head?.planGradients(isTrainable: isTrainable, inputDependsOnTrainable: head.map { depends($0.input) } ?? false)
        // Backward order: the first contribution to a gradient range writes, later ones add.
        var written: [ObjectIdentifier: [Range<Int>]] = [:]
        var contributors: [ObjectIdentifier: [(Bool) -> Void]] = [:]
        func contribute(_ s: Source, set: @escaping (Bool) -> Void) {
            let key: ObjectIdentifier, range: Range<Int>
            switch s {
            case .image: return
            case .wide(let w, let r): key = ObjectIdentifier(w); range = r
            case .pool(let p): key = ObjectIdentifier(p); range = 0..<p.channels
            }
            contributors[key, default: []].append(set)
            let ranges = written[key] ?? []
            if ranges.contains(range) { set(true); return }
            if ranges.contains(where: { $0.overlaps(range) }) {
                if case .wide(let w, _) = s { w.zeroFillGradient = true }
                set(true)
                return
            }
            written[key, default: []].append(range)
            set(false)
        }
        if let head, head.propagate { contribute(head.input) { head.accumulate = $0 } }
        for node in nodes.reversed() {
            switch node {
            case .conv(let c): if c.propagate { contribute(c.input) { c.accumulate = $0 } }
            case .pool(let p): if p.propagate { contribute(p.input) { p.accumulate = $0 } }
            case .head(let h): if h.propagate { contribute(h.input) { h.accumulate = $0 } }
            }
        }
        // A wide whose participating columns are not all covered by contributions starts at zero.
        for w in wides {
            let covered = written[ObjectIdentifier(w)] ?? []
            for p in w.producers where p.participates {
                let ok = p.columns.allSatisfy { col in covered.contains { $0.contains(col) } }
                if !ok { w.zeroFillGradient = true }
            }
            if w.zeroFillGradient { for set in contributors[ObjectIdentifier(w)] ?? [] { set(true) } }
        }
    }

    fileprivate enum HolderKind { case wide(Wide), pool(PoolNode) }
    fileprivate struct Holder {
        let kind: HolderKind
    }

    /// Whether max pools may pool Z (``planPoolsOverPreActivations()``); tests compare both plans.
    nonisolated(unsafe) static var poolsOverPreActivations = true

    /// Max pools straight after convolutions (slim's MaxPool_2a and 3a; 4a and 5a read blocks
    /// whose fused 1x1 also writes inner columns, and keep the plain path) pool Z and apply
    /// ReLU∘BN to their own output, which is 4x smaller, when that map is non-decreasing for every
    /// channel (no γ): max(ReLU(BN(z))) = ReLU(BN(max z)), the same floats, since rounding keeps
    /// order. The convolutions' Y is then never written, when nothing else reads it. The backward
    /// routes each gradient to the position of the largest z, which is the first largest y
    /// (TF's choice) unless two different z round to the same y; where ReLU clamps them to 0 the
    /// gradient is zero either way.
    private func planPoolsOverPreActivations() {
        guard Self.poolsOverPreActivations else { return }
        var readers: [ObjectIdentifier: [(range: Range<Int>, pool: PoolNode?)]] = [:]
        func read(_ s: Source, by pool: PoolNode?) {
            if case .wide(let w, let r) = s { readers[ObjectIdentifier(w), default: []].append((r, pool)) }
        }
        for node in nodes {
            switch node {
            case .conv(let c): read(c.input, by: nil)
            case .pool(let p): read(p.input, by: p)
            case .head(let h): read(h.input, by: nil)
            }
        }
        read(output, by: nil)
        if let head { read(head.input, by: nil) }
        for w in wides {
            let all = readers[ObjectIdentifier(w)] ?? []
            for case (let r, let pool?) in all {
                guard case .max = pool.operation else { continue }
                // Every producer under the pool monotone, with all its columns inside the pool's range.
                let producers = w.producers.filter { $0.columns.overlaps(r) }
                pool.poolsOverPreActivation = !producers.isEmpty && producers.allSatisfy {
                    $0.isMonotone && r.contains($0.columns.lowerBound) && r.contains($0.columns.upperBound - 1)
                }
            }
            // A producer whose Y only such pools read never writes it.
            for c in w.producers {
                let under = all.filter { $0.range.overlaps(c.columns) }
                c.skipsActivation = !under.isEmpty && under.allSatisfy { $0.pool?.poolsOverPreActivation ?? false }
            }
        }
    }

    /// The most bytes of activations Y = ReLU(BN(Z)) that the backward reads again (weight
    /// gradients' inputs) kept from the forward: when all of them fit, none is re-materialised.
    /// Batch 32 has ~40 MB of them at 112x112 and ~160 MB at 224x224 (where the peak stays at
    /// ~1.2 GB, with the pools over Z); re-materialising them took ~3 and ~10 ms of a step.
    nonisolated(unsafe) static var keptActivationBudget = 256 << 20

    /// When each materialised activation and gradient buffer can go.
    private func planReleases() {
        let count = nodes.count + 1  // index nodes.count: the head (or the caller's output gradient)
        forwardReleases = Array(repeating: [], count: count)
        backwardYReleases = Array(repeating: [], count: count)
        backwardGradientReleases = Array(repeating: [], count: count)
        var users: [ObjectIdentifier: (holder: Holder, first: Int, last: Int)] = [:]
        func use(_ s: Source, at index: Int) {
            let holder: Holder, key: ObjectIdentifier
            switch s {
            case .image: return
            case .wide(let w, _): holder = Holder(kind: .wide(w)); key = ObjectIdentifier(w)
            case .pool(let p): holder = Holder(kind: .pool(p)); key = ObjectIdentifier(p)
            }
            if let u = users[key] { users[key] = (holder, min(u.first, index), max(u.last, index)) } else { users[key] = (holder, index, index) }
        }
        for (i, node) in nodes.enumerated() {
            switch node {
            case .conv(let c): use(c.input, at: i)
            case .pool(let p): use(p.input, at: i)
            case .head(let h): use(h.input, at: i)
            }
        }
        use(output, at: nodes.count)
        // A max pool read by a weight gradient keeps its output from the forward to then: it is
        // small (a quarter of its input for the stride-2 pools), and recomputing it would first
        // re-materialise its input, which nothing else may need in backward.
        for node in nodes {
            if case .conv(let c) = node, c.computeWeights, case .pool(let p) = c.input, case .max = p.operation { p.keepsOutput = true }
        }
        // The Ys a gradient kernel reads again (a weight gradient's input, local response
        // normalization's): kept from the forward to the backward when they fit the budget
        // together, else re-materialised there.
        var readInBackward: Set<ObjectIdentifier> = []
        for node in nodes {
            switch node {
            case .conv(let c): if c.participates && c.computeWeights, case .wide(let w, _) = c.input { readInBackward.insert(ObjectIdentifier(w)) }
            case .pool(let p): if p.propagate && p.operation.readsInputInBackward, case .wide(let w, _) = p.input { readInBackward.insert(ObjectIdentifier(w)) }
            case .head: break
            }
        }
        let keptFloats = wides.filter { readInBackward.contains(ObjectIdentifier($0)) }.reduce(0) { $0 + $1.pixels * $1.columns }
        let keepsReadActivations = keptFloats * MemoryLayout<Float>.stride <= Self.keptActivationBudget
        for (key, u) in users {
            // The final output stays until the head (or the caller) has used it.
            var kept = false
            if case .pool(let p) = u.holder.kind { kept = p.keepsOutput }
            if case .wide = u.holder.kind { kept = keepsReadActivations && readInBackward.contains(key) }
            if !kept { forwardReleases[u.last].append(u.holder) }
            backwardYReleases[u.first].append(u.holder)
        }
        for w in wides {
            let first = w.producers.map(\.index).min() ?? 0
            backwardGradientReleases[first].append(Holder(kind: .wide(w)))
        }
        for node in nodes { if case .pool(let p) = node { backwardGradientReleases[p.index].append(Holder(kind: .pool(p))) } }
    }

    // MARK: Values

    /// The activation of `source`, materialised if needed.
    func activation(_ source: Source) -> ActivationSlab {
        switch source {
        case .image:
            return ActivationSlab(base: image.pointer, batch: inputShape[0], height: inputShape[1], width: inputShape[2], channels: inputShape[3])
        case .wide(let w, let r):
            if w.y == nil { w.y = memory.take(w.pixels * w.columns) }
            for p in w.producers where !p.yReady && p.columns.overlaps(r) { p.materialize(self) }
            return w.slab(w.y!.pointer, r)
        case .pool(let p):
            if p.y == nil {
                p.y = memory.take(p.pixels * p.rowStride)
                let y = p.slab(p.y!.pointer)
                if p.poolsOverPreActivation, case .wide(let w, let r) = p.input {
                    // max(ReLU(BN(z))) = ReLU(BN(max z)) channel by channel: pool Z, then normalize.
                    p.forward(input: w.slab(w.z.pointer, r), into: y)
                    for c in w.producers where c.columns.overlaps(r) {
                        let out = ActivationSlab(base: y.base + (c.columns.lowerBound - r.lowerBound), batch: y.batch,
                                                 height: y.height, width: y.width, channels: c.columns.count, stride: y.stride)
                        c.normalizeInPlace(out)
                    }
                } else {
                    p.forward(input: activation(p.input), into: y)
                }
            }
            return p.slab(p.y!.pointer)
        }
    }

    /// The gradient buffer of `source`, allocated if needed (zero-filled when planned so).
    func gradient(_ source: Source) -> ActivationSlab {
        switch source {
        case .image: preconditionFailure("no gradient for the input image")
        case .wide(let w, let r):
            if w.g == nil {
                w.g = memory.take(w.pixels * w.columns)
                if w.zeroFillGradient { w.slab(w.g!.pointer, 0..<w.columns).fill(0) }
            }
            return w.slab(w.g!.pointer, r)
        case .pool(let p):
            if p.g == nil { p.g = memory.take(p.pixels * p.rowStride) }
            return p.slab(p.g!.pointer)
        }
    }

    private func releaseActivation(_ h: Holder) {
        switch h.kind {
        case .wide(let w):
            if let y = w.y { memory.give(y); w.y = nil }
            for p in w.producers { p.yReady = false }
        case .pool(let p):
            if let y = p.y { memory.give(y); p.y = nil }
        }
    }

    private func releaseGradient(_ h: Holder) {
        switch h.kind {
        case .wide(let w): if let g = w.g { memory.give(g); w.g = nil }
        case .pool(let p): if let g = p.g { memory.give(g); p.g = nil }
        }
    }

    /// Returns every transient buffer (after a step, or one that stopped half way).
    func releaseAll() {
        for w in wides {
            releaseActivation(Holder(kind: .wide(w)))
            releaseGradient(Holder(kind: .wide(w)))
        }
        for node in nodes {
            if case .pool(let p) = node {
                releaseActivation(Holder(kind: .pool(p)))
                releaseGradient(Holder(kind: .pool(p)))
            }
        }
    }

    // MARK: Running

    /// The forward pass in training mode on `images` (NHWC, the plan's shape). With a head, returns
    /// the per-example losses and the logits [N × classes]; without one, the losses are empty and
    /// the final activation is available through ``outputTensor()``.
    func forward(images: Tensor, labels: [Int], labelSmoothing: Float, generator: inout SeededGenerator)
        -> (losses: [Double], logits: [Float]) {
        precondition(images.shape == inputShape)
        releaseAll()
        let input = options.transformInput ? InceptionModel.torchvisionInputTransform(images) : images
        input.scalars.withUnsafeBufferPointer { image.pointer.update(from: $0.baseAddress!, count: $0.count) }
        var auxiliaryLosses = [Double](repeating: 0, count: inputShape[0])
        for (i, node) in nodes.enumerated() {
            switch node {
            case .conv(let c): c.forward(self)
            case .pool(let p): TrainingProfile.measure("fwd pool") { _ = activation(.pool(p)) }
            case .head(let h):
                let losses = h.forward(self, labels: labels, labelSmoothing: labelSmoothing, generator: &generator)
                for (k, l) in losses.enumerated() { auxiliaryLosses[k] += Double(h.lossWeight) * l }
            }
            for h in forwardReleases[i] { releaseActivation(h) }
        }
        guard let head else { return ([], []) }
        var losses = TrainingProfile.measure("head fwd") { head.forward(self, labels: labels, labelSmoothing: labelSmoothing, generator: &generator) }
        for k in losses.indices { losses[k] += auxiliaryLosses[k] }
        for h in forwardReleases[nodes.count] { releaseActivation(h) }
        return (losses, head.logits)
    }

    /// The auxiliary classifiers' logits of the last forward pass, by name (`AuxLogits_4b`, …).
    func auxiliaryLogits() -> [(name: String, logits: [Float])] { auxiliaryHeads.map { ($0.name, $0.logits) } }

    /// The final activation as a tensor (headless plans; call right after ``forward(images:labels:labelSmoothing:generator:)``).
    func outputTensor() -> Tensor { activation(output).tensor() }

    /// Reverse pass after ``forward(images:labels:labelSmoothing:generator:)``: fills ``gradients``.
    /// Headless plans take ∂L/∂output from the caller.
    func backward(outputGradient: Tensor? = nil) {
        gradients = [:]
        if let head {
            TrainingProfile.measure("head bwd") { head.backward(self) }
        } else if let outputGradient {
            var dy = outputGradient
            let target = gradient(output)
            dy.withSlab { target.copy(from: $0) }
        }
        for h in backwardYReleases[nodes.count] { releaseActivation(h) }
        for i in stride(from: nodes.count - 1, through: 0, by: -1) {
            switch nodes[i] {
            case .conv(let c): c.backward(self)
            case .pool(let p):
                if p.propagate && p.operation.readsInputInBackward { _ = TrainingProfile.measure("bwd rematerialize") { activation(p.input) } }
                TrainingProfile.measure("bwd pool") { p.backward(self) }
            case .head(let h): h.backward(self)
            }
            for h in backwardYReleases[i] { releaseActivation(h) }
            for h in backwardGradientReleases[i] { releaseGradient(h) }
        }
        releaseAll()
    }

    /// Batch statistics of the last forward pass, per convolution scope: (mean, biased variance, count).
    func batchStatistics() -> [(path: String, mean: ArraySlice<Float>, variance: ArraySlice<Float>, count: Int)] {
        nodes.flatMap { node -> [(path: String, mean: ArraySlice<Float>, variance: ArraySlice<Float>, count: Int)] in
            guard case .conv(let c) = node, c.batchNorm else { return [] }
            return c.units.map { u in (u.path, c.mean[u.offset..<(u.offset + u.channels)],
                                       c.variance[u.offset..<(u.offset + u.channels)], c.wide.pixels) }
        }
    }

    func setGradient(_ name: String, _ value: [Float]) { gradients[name] = value }
}

/// Where a node's input comes from.
enum Source {
    /// The input batch.
    case image
    /// Columns of a wide buffer (one or more convolutions' outputs side by side).
    case wide(Wide, Range<Int>)
    /// A pooling node's output.
    case pool(PoolNode)
}

/// Channels of several convolutions stored side by side for the same pixels: Z (kept from forward
/// to backward), Y (materialised on demand) and the gradient, all in the same layout.
final class Wide {
    let batch: Int, height: Int, width: Int, columns: Int
    let z: FloatBuffer
    var y: SlotAllocator.Slot?
    var g: SlotAllocator.Slot?
    var producers: [ConvNode] = []
    var zeroFillGradient = false

    init(batch: Int, height: Int, width: Int, columns: Int) {
        self.batch = batch; self.height = height; self.width = width; self.columns = columns
        z = FloatBuffer(capacity: batch * height * width * columns)
    }

    var pixels: Int { batch * height * width }

    func slab(_ base: UnsafeMutablePointer<Float>, _ r: Range<Int>) -> ActivationSlab {
        ActivationSlab(base: base + r.lowerBound, batch: batch, height: height, width: width, channels: r.count, stride: columns)
    }
}

/// A convolution's variables and its columns within its node.
struct ConvUnit {
    let path: String
    let channels: Int
    let offset: Int
    var weights: String { path + "/weights" }
    var biases: String { path + "/biases" }
    var beta: String { path + "/BatchNorm/beta" }
    var gamma: String { path + "/BatchNorm/gamma" }
}

/// Convolution(s) → batch norm → ReLU. Several units = 1x1 convolutions on the same input fused
/// into one GEMM (weights side by side).
final class ConvNode {
    let index: Int
    let units: [ConvUnit]
    let window: Window2D
    let input: Source
    let inputChannels: Int
    let wide: Wide
    let columns: Range<Int>
    let batchNorm: Bool
    let hasGamma: Bool
    let epsilon: Float

    var participates = false, computeWeights = false, propagate = false, accumulate = false
    var yReady = false
    /// Only max pools read this convolution's Y, and they pool Z instead (see
    /// ``TrainingGraph/planPoolsOverPreActivations()``): Y is never written.
    var skipsActivation = false
    /// ReLU∘BN (or ReLU of Z + bias) is non-decreasing in Z for every channel: no batch-norm scale
    /// γ, which could be negative (slim has none; 1/√(σ² + ε) > 0).
    var isMonotone: Bool { !hasGamma }
    // Per step.
    private(set) var weights: [Float] = []   // (KH·KW·CI) × total, the units' columns side by side
    private(set) var mean: [Float] = [], variance: [Float] = [], scale: [Float] = [], beta: [Float] = []
    /// The bfloat16 kernel's per-task statistics (reused step after step).
    private let columnSums = ColumnSums()
    /// The float32 kernels' per-task statistics (reused step after step).
    private let channelMoments = ChannelMoments()

    /// `fullyConnected`: biases and ReLU whatever the model's normalization (the auxiliary heads'
    /// fully connected layer).
    init(index: Int, units: [ConvUnit], window: Window2D, input: Source, inputChannels: Int, wide: Wide,
         columns: Range<Int>, options: ModelOptions, fullyConnected: Bool = false) {
        self.index = index; self.units = units; self.window = window; self.input = input
        self.inputChannels = inputChannels; self.wide = wide; self.columns = columns
        batchNorm = options.useBatchNorm && !fullyConnected
        hasGamma = batchNorm && options.batchNormScale
        epsilon = options.batchNormEpsilon
    }

    var total: Int { columns.count }
    var k: Int { window.kernelHeight * window.kernelWidth * inputChannels }

    func variableNames(_ u: ConvUnit) -> [String] {
        batchNorm ? [u.weights, u.beta] + (hasGamma ? [u.gamma] : []) : [u.weights, u.biases]
    }

    /// The units' vectors `suffix` side by side.
    private func concatenated(_ graph: TrainingGraph, _ name: (ConvUnit) -> String) -> [Float] {
        units.count == 1 ? graph.variables[name(units[0])]! : units.flatMap { graph.variables[name($0)]! }
    }

    /// Unit `u`'s columns of a (KH·KW·CI)-row weight matrix as the rows of a slab, so that copies
    /// between the fused and the separate forms run on every thread (on one, they took ~2 ms of
    /// a 112×112 step while the other waited): in the fused matrix at `base`, or `alone` (`base`
    /// is the unit's own matrix).
    private func unitColumns(_ base: UnsafeMutablePointer<Float>, of u: ConvUnit, alone: Bool = false) -> ActivationSlab {
        ActivationSlab(base: alone ? base : base + u.offset, batch: k, height: 1, width: 1, channels: u.channels,
                       stride: alone ? u.channels : total)
    }

    func forward(_ graph: TrainingGraph) {
        let x = graph.activation(input)
        let k = self.k, total = self.total
        if units.count == 1 {
            weights = graph.variables[units[0].weights]!
        } else {
            // The units' columns side by side; together they cover every column.
            weights = [Float](unsafeUninitializedCapacity: k * total) { dst, initialized in
                for u in units {
                    graph.variables[u.weights]!.withUnsafeBufferPointer { src in
                        let own = unitColumns(UnsafeMutablePointer(mutating: src.baseAddress!), of: u, alone: true)
                        unitColumns(dst.baseAddress!, of: u).copy(from: own)  // reads `own` only
                    }
                }
                initialized = k * total
            }
        }
        let z = wide.slab(wide.z.pointer, columns)
        if batchNorm {
            // With bfloat16 products the kernel sums the statistics as it stores Z.
            let moments = TrainingProfile.measure(TrainingProfile.phase(window.kernelHeight == 1 ? "fwd conv 1x1" : "fwd conv kxk",
                                                                        layer: units[0].path)) {
                weights.withUnsafeBufferPointer {
                    ConvolutionGradient.forwardWithMoments(input: x, hwio: $0.baseAddress!, window: window, into: z,
                                                           sums: columnSums, moments: channelMoments)
                }
            }
            (mean, variance) = TrainingProfile.measure("fwd bn moments") { moments ?? BatchNormTraining.moments(z) }
            beta = concatenated(graph) { $0.beta }
            scale = BatchNormTraining.scale(variance: variance, gamma: hasGamma ? concatenated(graph) { $0.gamma } : nil,
                                            epsilon: epsilon)
        } else {
            let bias = concatenated(graph) { $0.biases }
            bias.withUnsafeBufferPointer { b in
                weights.withUnsafeBufferPointer {
                    ConvolutionGradient.forward(input: x, hwio: $0.baseAddress!, window: window, bias: b.baseAddress, into: z)
                }
            }
        }
        if !skipsActivation {
            TrainingProfile.measure("fwd bn normalize+relu") { _ = graph.activation(.wide(wide, columns)) }  // while Z is in cache
        }
    }

    /// ReLU(BN(·)) (or ReLU) of this convolution's channels, in place, on a max pool's output
    /// of its Z (`slab`: channels `columns` of the wide, as the pool saw them).
    func normalizeInPlace(_ slab: ActivationSlab) {
        if batchNorm {
            BatchNormTraining.normalize(slab, mean: mean, scale: scale, beta: beta, relu: true, into: slab)
        } else {
            BatchNormTraining.relu(slab, into: slab)
        }
    }

    /// Y = ReLU(BN(Z)) (or ReLU(Z) with biases) into the wide's activation buffer.
    func materialize(_ graph: TrainingGraph) {
        let z = wide.slab(wide.z.pointer, columns), y = wide.slab(wide.y!.pointer, columns)
        if batchNorm {
            BatchNormTraining.normalize(z, mean: mean, scale: scale, beta: beta, relu: true, into: y)
        } else {
            BatchNormTraining.relu(z, into: y)
        }
        yReady = true
    }

    func backward(_ graph: TrainingGraph) {
        guard participates else { return }
        let z = wide.slab(wide.z.pointer, columns)
        let g = graph.gradient(.wide(wide, columns))
        if batchNorm {
            let (dBeta, dGamma) = TrainingProfile.measure("bwd bn") { BatchNormTraining.backward(z: z, outputGradient: g, mean: mean, variance: variance,
                                                             scale: scale, beta: beta, epsilon: epsilon, relu: true, into: g) }
            for u in units {
                if graph.isTrainable(u.beta) { graph.setGradient(u.beta, Array(dBeta[u.offset..<(u.offset + u.channels)])) }
                if hasGamma && graph.isTrainable(u.gamma) { graph.setGradient(u.gamma, Array(dGamma[u.offset..<(u.offset + u.channels)])) }
            }
        } else {
            let dBias = BatchNormTraining.reluBackward(z: z, outputGradient: g, into: g)
            for u in units where graph.isTrainable(u.biases) {
                graph.setGradient(u.biases, Array(dBias[u.offset..<(u.offset + u.channels)]))
            }
        }
        let k = self.k, total = self.total
        if computeWeights {
            let x = TrainingProfile.measure("bwd rematerialize") { graph.activation(input) }
            let dw = TrainingProfile.measure(TrainingProfile.phase(window.kernelHeight == 1 ? "bwd dW 1x1" : "bwd dW kxk", layer: units[0].path)) {
                [Float](unsafeUninitializedCapacity: k * total) { out, initialized in  // written whole
                    ConvolutionGradient.weightGradient(input: x, outputGradient: g, window: window, into: out.baseAddress!,
                                                       workspace: graph.workspace)
                    initialized = k * total
                }
            }
            for u in units where graph.isTrainable(u.weights) {
                if units.count == 1 { graph.setGradient(u.weights, dw); continue }
                // Unit u's columns of the fused product.
                let part = [Float](unsafeUninitializedCapacity: k * u.channels) { out, initialized in
                    dw.withUnsafeBufferPointer { fused in
                        let inFused = unitColumns(UnsafeMutablePointer(mutating: fused.baseAddress!), of: u)
                        unitColumns(out.baseAddress!, of: u, alone: true).copy(from: inFused)  // reads `inFused` only
                    }
                    initialized = k * u.channels
                }
                graph.setGradient(u.weights, part)
            }
        }
        if propagate {
            let dx = graph.gradient(input)
            TrainingProfile.measure(TrainingProfile.phase(window.kernelHeight == 1 ? "bwd dX 1x1" : "bwd dX kxk", layer: units[0].path)) {
                weights.withUnsafeBufferPointer {
                    ConvolutionGradient.inputGradient(outputGradient: g, hwio: $0.baseAddress!, window: window, into: dx,
                                                      accumulate: accumulate, workspace: graph.workspace)
                }
            }
        }
    }
}

/// A node with its own output computed from one input: max or average pooling, adaptive average
/// pooling, or local response normalization.
final class PoolNode {
    enum Operation {
        case max(Window2D), average(Window2D), adaptiveAverage
        case localResponseNorm(LocalResponseNorm)

        /// Backward needs the input again (LRN's sums of squares; max pooling reads the
        /// positions its forward recorded instead).
        var readsInputInBackward: Bool { if case .localResponseNorm = self { return true }; return false }
    }

    let index: Int
    let operation: Operation
    let input: Source
    let batch: Int, height: Int, width: Int, channels: Int
    var y: SlotAllocator.Slot?
    var g: SlotAllocator.Slot?
    var propagate = false, accumulate = false, dependsOnTrainable = false
    /// Y stays from the forward to the backward (see ``TrainingGraph``).
    var keepsOutput = false
    /// A max pool of a wide's columns whose producers are all monotone: it pools their Z and
    /// normalizes its own output (``TrainingGraph/planPoolsOverPreActivations()``).
    var poolsOverPreActivation = false
    /// Max pooling: each output element's window position, written by every forward (held for
    /// the life of the plan).
    let argmax: UnsafeMutableBufferPointer<UInt8>?

    init(index: Int, operation: Operation, input: Source, shape: [Int]) {
        self.index = index; self.operation = operation; self.input = input
        batch = shape[0]; height = shape[1]; width = shape[2]; channels = shape[3]
        if case .max = operation { argmax = .allocate(capacity: max(1, shape.reduce(1, *))) } else { argmax = nil }
    }

    deinit { argmax?.deallocate() }

    var pixels: Int { batch * height * width }

    /// Floats from one pixel of Y (or its gradient) to the next: the channels, plus 16 when
    /// those are a multiple of 256. A weight gradient reads its input X down the pixels, one
    /// 12-channel strip at a time (`ik_gemm_transposed_a`); rows 1 KB-multiples apart fall in
    /// few L1 sets and evict each other. Measured on the Branch_3 1x1s after the 512-channel
    /// pools of Mixed_4c–4e (224×224, batch 32): dW 3.4 → 2.5 ms each.
    var rowStride: Int { channels % 256 == 0 ? channels + 16 : channels }

    func slab(_ base: UnsafeMutablePointer<Float>) -> ActivationSlab {
        ActivationSlab(base: base, batch: batch, height: height, width: width, channels: channels, stride: rowStride)
    }

    func forward(input x: ActivationSlab, into y: ActivationSlab) {
        switch operation {
        case .max(let window): PoolingGradient.forward(.max, input: x, window: window, into: y, argmax: argmax?.baseAddress)
        case .average(let window): PoolingGradient.forward(.average, input: x, window: window, into: y)
        case .adaptiveAverage: PoolingGradient.adaptiveAverage(input: x, into: y)
        case .localResponseNorm(let lrn): lrn.forward(input: x, into: y)
        }
    }

    func backward(_ graph: TrainingGraph) {
        guard propagate else { return }
        let dy = graph.gradient(.pool(self))
        let dx = graph.gradient(input)
        switch operation {
        case .max(let window):
            PoolingGradient.maxPoolInputGradient(argmax: argmax!.baseAddress!, outputGradient: dy, window: window,
                                                 into: dx, accumulate: accumulate)
        case .average(let window):
            PoolingGradient.averagePoolInputGradient(outputGradient: dy, window: window, into: dx, accumulate: accumulate)
        case .adaptiveAverage:
            PoolingGradient.adaptiveAverageInputGradient(outputGradient: dy, into: dx, accumulate: accumulate)
        case .localResponseNorm(let lrn):
            lrn.inputGradient(input: graph.activation(input), outputGradient: dy, into: dx, accumulate: accumulate)
        }
    }
}

/// A classifier and its loss: slim's head (`AvgPool_0a_7x7` or the global mean, `Dropout_0b`,
/// `Conv2d_0c_1x1` with biases, softmax cross-entropy), or an auxiliary classifier's end (its 1x1
/// input, dropout, logits, cross-entropy counted with `lossWeight`).
final class HeadNode {
    /// The logits layer's scope (variables `path/weights`, `path/biases`).
    let path: String
    /// The endpoint name of an auxiliary head's logits.
    var name = "Logits"
    let input: Source
    let batch: Int, height: Int, width: Int, channels: Int
    let classes: Int
    /// The average pool before the logits; nil: the mean over H and W (global pool, or the
    /// identity on an auxiliary head's 1x1 input).
    let pool: Window2D?
    let keep: Float
    let lossWeight: Float
    var computeWeights = false, computeBiases = false, propagate = false, accumulate = false
    var globalPool: Bool { pool == nil }

    // Per step.
    private(set) var features: [Float] = []   // N × C after pooling and dropout
    private(set) var mask: [Float]?
    private(set) var logits: [Float] = []
    private(set) var logitsGradient: [Float] = []

    init(path: String, input: Source, inputShape s: [Int], classes: Int, pool: Window2D?, keep: Float, lossWeight: Float) {
        self.path = path
        self.input = input
        batch = s[0]; height = s[1]; width = s[2]; channels = s[3]
        self.classes = classes
        self.pool = pool
        self.keep = keep
        self.lossWeight = lossWeight
    }

    func planGradients(isTrainable: (String) -> Bool, inputDependsOnTrainable: Bool) {
        computeWeights = isTrainable(path + "/weights")
        computeBiases = isTrainable(path + "/biases")
        propagate = inputDependsOnTrainable
    }

    private func column(_ base: UnsafeMutablePointer<Float>, _ c: Int) -> ActivationSlab {
        ActivationSlab(base: base, batch: batch, height: 1, width: 1, channels: c)
    }

    func forward(_ graph: TrainingGraph, labels: [Int], labelSmoothing: Float, generator: inout SeededGenerator) -> [Double] {
        let x = graph.activation(input)
        features = [Float](repeating: 0, count: batch * channels)
        features.withUnsafeMutableBufferPointer { f in
            let out = column(f.baseAddress!, channels)
            if let pool {
                PoolingGradient.forward(.average, input: x, window: pool, into: out)
            } else {
                PoolingGradient.globalAverage(input: x, into: out)
            }
        }
        mask = DropoutMask.generate(count: features.count, keep: keep, using: &generator)
        if let mask { for i in 0..<features.count { features[i] *= mask[i] } }
        let w = graph.variables[path + "/weights"]!, b = graph.variables[path + "/biases"]!
        let packed = GEMM.pack(w, rows: channels, columns: classes)
        logits = [Float](repeating: 0, count: batch * classes)
        logitsGradient = logits
        features.withUnsafeBufferPointer { f in
            logits.withUnsafeMutableBufferPointer { l in
                b.withUnsafeBufferPointer { bias in
                    GEMM.multiply(m: batch, a: f.baseAddress!, lda: channels, b: packed, c: l.baseAddress!, ldc: classes,
                                  bias: bias.baseAddress, relu: false)
                }
            }
        }
        return logits.withUnsafeBufferPointer { l in
            logitsGradient.withUnsafeMutableBufferPointer { g in
                SoftmaxCrossEntropy.evaluate(logits: l.baseAddress!, batch: batch, classes: classes, labels: labels,
                                             labelSmoothing: labelSmoothing, weight: lossWeight, gradient: g.baseAddress!)
            }
        }
    }

    func backward(_ graph: TrainingGraph) {
        features.withUnsafeMutableBufferPointer { f in
            logitsGradient.withUnsafeMutableBufferPointer { g in
                let fx = column(f.baseAddress!, channels), dl = column(g.baseAddress!, classes)
                if computeWeights {
                    let dw = [Float](unsafeUninitializedCapacity: channels * classes) { out, initialized in  // written whole
                        ConvolutionGradient.weightGradient(input: fx, outputGradient: dl, window: Window2D(1), into: out.baseAddress!,
                                                           workspace: graph.workspace)
                        initialized = channels * classes
                    }
                    graph.setGradient(path + "/weights", dw)
                }
                if computeBiases { graph.setGradient(path + "/biases", BatchNormTraining.channelSums(dl)) }
                guard propagate else { return }
                let w = graph.variables[path + "/weights"]!
                let wt = w.withUnsafeBufferPointer {
                    ConvolutionGradient.packTransposedWeights($0.baseAddress!, kernelHeight: 1, kernelWidth: 1,
                                                              inputChannels: channels, outputChannels: classes)
                }
                var df = [Float](repeating: 0, count: batch * channels)
                df.withUnsafeMutableBufferPointer { d in
                    let dfs = column(d.baseAddress!, channels)
                    ConvolutionGradient.inputGradient(outputGradient: dl, transposedWeights: wt, window: Window2D(1), into: dfs, accumulate: false)
                    if let mask { for i in 0..<d.count { d[i] *= mask[i] } }
                    let dx = graph.gradient(input)
                    if let pool {
                        PoolingGradient.averagePoolInputGradient(outputGradient: dfs, window: pool, into: dx, accumulate: accumulate)
                    } else {
                        PoolingGradient.globalAverageInputGradient(outputGradient: dfs, into: dx, accumulate: accumulate)
                    }
                }
            }
        }
    }
}
