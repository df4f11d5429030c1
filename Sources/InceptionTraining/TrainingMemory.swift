import Foundation
import Inception

/// An owned block of floats (``FloatMemory``: big blocks on transparent huge pages).
final class FloatBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        pointer = FloatMemory.allocate(self.capacity)
    }

    deinit { FloatMemory.free(pointer) }
}

/// The transient buffers of a training step (materialised activations and gradients), reused
/// from step to step.
///
/// A request takes the smallest free slot that is big enough; when none is, the largest free
/// slot grows to fit (its old contents are dead), and only when no slot is free is a new one made.
/// A step asks for the same sizes in the same order every time, so after the first step nothing
/// is allocated, and the slots add up to about the step's peak of live transient data (like an
/// offline interval-colouring, but decided online).
final class SlotAllocator {
    final class Slot {
        fileprivate(set) var buffer: FloatBuffer
        fileprivate var free = false
        init(_ buffer: FloatBuffer) { self.buffer = buffer }
        var pointer: UnsafeMutablePointer<Float> { buffer.pointer }
    }

    private var slots: [Slot] = []

    /// Bytes held by all slots.
    var bytes: Int { slots.reduce(0) { $0 + $1.buffer.capacity } * MemoryLayout<Float>.stride }

    func take(_ count: Int) -> Slot {
        let free = slots.filter(\.free)
        if let fit = free.filter({ $0.buffer.capacity >= count }).min(by: { $0.buffer.capacity < $1.buffer.capacity }) {
            fit.free = false
            return fit
        }
        if let largest = free.max(by: { $0.buffer.capacity < $1.buffer.capacity }) {
            largest.buffer = FloatBuffer(capacity: count)
            largest.free = false
            return largest
        }
        let slot = Slot(FloatBuffer(capacity: count))
        slots.append(slot)
        return slot
    }

    func give(_ slot: Slot) {
        precondition(!slot.free, "slot returned twice")
        slot.free = true
    }

    /// Frees every slot's memory (e.g. before planning for another input shape).
    func removeAll() { slots.removeAll() }
}

/// Opt-in phase timings of the training pass (`INCEPTION_TRAIN_PROFILE=1`): seconds per phase,
/// summed over steps, printed by ``report()``. Costs one branch per phase when off.
/// `INCEPTION_TRAIN_PROFILE=layers` times each convolution's products under its own scope
/// (`fwd conv InceptionV1/Mixed_3b/Branch_1/Conv2d_0b_3x3`, `bwd dW …`, `bwd dX …`).
enum TrainingProfile {
    static let enabled = ProcessInfo.processInfo.environment["INCEPTION_TRAIN_PROFILE"] != nil
    static let perLayer = ProcessInfo.processInfo.environment["INCEPTION_TRAIN_PROFILE"] == "layers"

    /// `kind` ("bwd dW 1x1"), or with per-layer timings its first words and the layer's scope.
    static func phase(_ kind: String, layer scope: String) -> String {
        perLayer ? kind.split(separator: " ").dropLast().joined(separator: " ") + " " + scope : kind
    }
    nonisolated(unsafe) private static var totals: [String: Double] = [:]
    nonisolated(unsafe) private static var order: [String] = []

    @inline(__always)
    static func measure<R>(_ phase: String, _ body: () throws -> R) rethrows -> R {
        guard enabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            let t = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if totals[phase] == nil { order.append(phase) }
            totals[phase, default: 0] += t
        }
        return try body()
    }

    static func report() -> String {
        let total = totals.values.reduce(0, +)
        return order.map { String(format: "%-28@ %9.4f s %5.1f%%", $0 as NSString, totals[$0]!, 100 * totals[$0]! / max(total, 1e-9)) }
            .joined(separator: "\n")
    }

    static func reset() { totals = [:]; order = [] }
}
