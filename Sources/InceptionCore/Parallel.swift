import CInceptionKernels
import Foundation

/// Data-parallel loops on a small persistent thread pool (the pool itself is C: `parallel.c`).
///
/// Every call to ``forEach(count:_:)`` runs on up to ``threadCount`` threads, the calling thread
/// being one of them. Indices are handed out dynamically, so a core that is busy with something
/// else simply takes fewer. Idle workers poll for a fraction of a millisecond before sleeping, so
/// back-to-back layers start in about a microsecond; a call that finds the pool busy (another
/// thread's loop, or a loop nested in a loop body) runs serially on its own thread.
public enum Parallel {
    /// The number of threads loops use (≥ 1). Defaults to the number of active processors.
    /// Set it before starting work; it takes effect at the next loop.
    public static var threadCount: Int {
        get {
            let n = Int(ik_parallel_threads())
            return n > 0 ? n : defaultThreadCount
        }
        set {
            precondition(newValue >= 1, "Parallel.threadCount must be at least 1, got \(newValue)")
            ik_parallel_set_threads(Int32(clamping: newValue))
        }
    }

    private static let defaultThreadCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Calls `body(i)` for every `i` in `0..<count`, spread over ``threadCount`` threads, and
    /// returns when every call has returned. Calls for different indices may run concurrently,
    /// in any order, so they must write disjoint memory.
    public static func forEach(count: Int, _ body: (Int) -> Void) {
        forEach(count: count, threads: threadCount, body)
    }

    /// ``forEach(count:_:)`` with an explicit thread limit.
    static func forEach(count: Int, threads: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        if threads <= 1 || count == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var closure = body
            withUnsafeMutablePointer(to: &closure) { pointer in
                ik_parallel_for(Int32(clamping: threads), count, { context, index in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(index)
                }, UnsafeMutableRawPointer(pointer))
            }
        }
    }
}
