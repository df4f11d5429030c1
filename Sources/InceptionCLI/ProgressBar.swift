import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-line progress bar on standard error with count, rate and ETA, redrawn in place.
/// Shown only when standard error is a terminal, so pipes and logs stay clean.
/// (Hand-written: none of the available packages draws progress bars; this is 50 lines.)
final class ProgressBar {
    private let total: Int?
    private let label: String
    private let unit: String
    private let start = Date()
    private var lastDraw = Date.distantPast
    private(set) var done = 0
    let isVisible: Bool

    init(total: Int?, label: String, unit: String = "it", visible: Bool = isatty(STDERR_FILENO) == 1) {
        self.total = total
        self.label = label
        self.unit = unit
        self.isVisible = visible
    }

    /// Advances by `count` and redraws at most ten times a second (and always at the end).
    func advance(by count: Int = 1, note: String = "") {
        done += count
        guard isVisible else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || done == total else { return }
        lastDraw = now
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line(now: now, note: note)).utf8))
    }

    /// Ends the bar's line.
    func finish() {
        guard isVisible else { return }
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line(now: Date(), note: "") + "\n").utf8))
    }

    func line(now: Date, note: String) -> String {
        let elapsed = max(now.timeIntervalSince(start), 1e-9)
        let rate = Double(done) / elapsed
        var text = label + " "
        if let total, total > 0 {
            let fraction = min(Double(done) / Double(total), 1)
            let width = 24
            let filled = Int(fraction * Double(width))
            text += "[" + String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled) + "] "
            text += "\(done)/\(total)"
            let eta = rate > 0 ? Double(total - done) / rate : 0
            text += String(format: "  %.1f %@/s  ETA %@", rate, unit, Self.duration(eta))
        } else {
            text += String(format: "%d  %.1f %@/s", done, rate, unit)
        }
        return note.isEmpty ? text : text + "  " + note
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
