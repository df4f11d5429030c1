import InceptionCore
@testable import InceptionModels
import XCTest

/// The inference plan's values share one block of memory, placed first fit by address.
final class ArenaLayoutTests: XCTestCase {
    /// Any values live at the same time get disjoint places, whatever the order of allocations
    /// and releases (a random schedule checked against every pair).
    func testLiveValuesNeverOverlap() {
        var layout = ArenaLayout()
        var rng = SeededGenerator(seed: 3)
        var live: [Int: Int] = [:]  // slot → requested count
        for _ in 0..<400 {
            if !live.isEmpty && Bool.random(using: &rng) {
                let slot = live.keys.randomElement(using: &rng)!
                layout.release(slot)
                live[slot] = nil
            } else {
                let count = Int.random(in: 1...5000, using: &rng)
                live[layout.allocate(count)] = count
            }
            let places = live.map { slot, count in layout.offsets[slot] ..< layout.offsets[slot] + count }
            for (i, a) in places.enumerated() {
                XCTAssertLessThanOrEqual(a.upperBound, layout.size)
                for b in places[(i + 1)...] { XCTAssertFalse(a.overlaps(b), "\(a) and \(b) are both live") }
            }
        }
    }

    /// A freed place is taken again by the next value that fits, lowest first: this is what puts
    /// a layer's output on memory written a moment ago (still in cache).
    func testFreedPlacesAreReusedLowestFirst() {
        var layout = ArenaLayout()
        let stem = layout.allocate(3200)      // e.g. Conv2d_1a's output
        let pool = layout.allocate(800)       // its max pool, live at the same time
        XCTAssertEqual(layout.offsets[pool], 3200)
        layout.release(stem)
        let reduce = layout.allocate(800)     // next value: at the bottom again
        XCTAssertEqual(layout.offsets[reduce], 0)
        layout.release(pool)
        let wide = layout.allocate(2400)      // fits between `reduce` and the old top: no growth
        XCTAssertEqual(layout.offsets[wide], 800)
        XCTAssertEqual(layout.size, 4000)
    }

    /// Places start on 64-byte boundaries (16 floats), so vector loads of a value's rows align.
    func testPlacesAreSixteenFloatsAligned() {
        var layout = ArenaLayout()
        for count in [1, 17, 33, 100, 5] {
            let slot = layout.allocate(count)
            XCTAssertEqual(layout.offsets[slot] % 16, 0)
        }
    }
}
