import Foundation

/// A problem with a weight file: which file, and what is wrong with it.
///
/// Every reader in this module reports malformed, truncated or unsupported input with this type;
/// none of them traps. The description reads `"<path>: <message>"`, for example
/// `model.ckpt.index: block at offset 1234 fails its CRC32C check (stored 0x…, computed 0x…)`.
public struct FormatError: Error, CustomStringConvertible, LocalizedError, Sendable, Equatable {
    /// The file (or checkpoint prefix) the problem was found in.
    public let path: String
    /// What is wrong, without the path.
    public let message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
    public var errorDescription: String? { description }
}

/// A parse failure inside a byte range, before the caller has said which file and which part of it
/// the range came from. Callers turn it into a `FormatError` with that context.
struct Malformed: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Formats a number as `0x` followed by eight hex digits (for checksums).
func hex32(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
