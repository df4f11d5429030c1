import Foundation
@testable import InceptionCore
import XCTest

/// ``FloatMemory``: big buffers go on transparent huge pages, small ones stay ordinary.
final class FloatMemoryTests: XCTestCase {
    /// Whether the mapping that holds `address` carries the huge-page advice (`hg` among its
    /// `VmFlags` in /proc/self/smaps: what `madvise(MADV_HUGEPAGE)` sets), or nil (not Linux, or
    /// no such line). The advice itself, not `THPeligible`: that field also folds in the
    /// kernel's momentary policy, and read 0 once in a CI run for a buffer marked `hg`.
    private func hugePageAdvice(of address: UnsafeRawPointer) throws -> Bool? {
        // /proc files report size 0, so read the handle to its end rather than by size.
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/smaps"),
              let data = try handle.readToEnd(), let smaps = String(data: data, encoding: .utf8) else { return nil }
        let target = UInt(bitPattern: address)
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), !range.hasSuffix(":") {
                let bounds = range.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = bounds.count == 2 && bounds[0] <= target && target < bounds[1]
            } else if inside, fields.first == "VmFlags:" {
                return fields.contains("hg")
            }
        }
        return nil
    }

    private var hugePagesOffered: Bool {
        guard let handle = FileHandle(forReadingAtPath: "/sys/kernel/mm/transparent_hugepage/enabled"),
              let data = try? handle.readToEnd(), let mode = String(data: data, encoding: .utf8) else { return false }
        return !mode.contains("[never]")
    }

    func testBigBuffersAreHugePageAlignedAndAdvised() throws {
        let count = 3 << 20  // 12 MB
        let p = FloatMemory.allocate(count)
        defer { FloatMemory.free(p) }
        XCTAssertEqual(UInt(bitPattern: p) % (2 << 20), 0, "2 MB aligned")
        p.update(repeating: 1.5, count: count)  // the whole buffer is usable
        XCTAssertEqual(p[count - 1], 1.5)
        guard hugePagesOffered, let advised = try hugePageAdvice(of: p) else {
            throw XCTSkip("no transparent huge pages here (or no VmFlags in /proc/self/smaps)")
        }
        XCTAssertTrue(advised, "the buffer's mapping is marked for transparent huge pages")
    }

    func testSmallBuffersAreCacheLineAligned() {
        for count in [1, 3, 1000, 100_000] {
            let p = FloatMemory.allocate(count)
            XCTAssertEqual(UInt(bitPattern: p) % 64, 0, "\(count) floats")
            p.update(repeating: 0, count: count)
            FloatMemory.free(p)
        }
        FloatMemory.free(nil)
    }
}
