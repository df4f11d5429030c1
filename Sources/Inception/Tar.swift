// Unpacking one member of a .tar.gz with the system `tar`.
//
// Why a subprocess: Foundation has no gzip on Linux (macOS has only Compression/Apple Archive,
// with no tar reader either), and linking zlib would need a system-library target in
// Package.swift. `tar` with gzip support is on every system this runs on (Linux distributions,
// macOS's bsdtar), takes one call, and the archive has already passed its SHA-256 check.
import Foundation

enum Tar {
    enum Failure: Error {
        /// No `tar` executable.
        case notFound
        /// `tar` failed or the member is not in the archive; the detail says which.
        case failed(String)
    }

    /// The `tar` to run: /usr/bin/tar, /bin/tar, else the first on PATH.
    static func executable(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let path = environment["PATH"].map { $0.split(separator: ":").map { "\($0)/tar" } } ?? []
        return (["/usr/bin/tar", "/bin/tar"] + path).first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Extracts `member` (stored as `member`, `./member` or `DIR/member`) from the gzip-compressed
    /// tar `archive` into `directory`, returning the extracted file's path.
    static func extract(member: String, from archive: String, into directory: String) throws -> String {
        guard let tar = executable() else { throw Failure.notFound }
        let listing = try run(tar, ["-t", "-z", "-f", archive], scratch: directory)
        let entries = listing.split(whereSeparator: \.isNewline).map(String.init)
        let candidates = entries.filter { entry in
            // Never a name that could land outside `directory`.
            let parts = entry.split(separator: "/")
            guard !entry.hasPrefix("/"), !entry.hasPrefix("-"), !parts.contains("..") else { return false }
            return entry == member || entry == "./" + member || entry.hasSuffix("/" + member)
        }
        // The shortest: the member at the top level if it is there.
        guard let entry = candidates.min(by: { $0.count < $1.count }) else {
            throw Failure.failed("no \(member) among its \(entries.count) entries")
        }
        _ = try run(tar, ["-x", "-z", "--no-same-owner", "-f", archive, "-C", directory, entry],
                    scratch: directory)
        let extracted = (directory as NSString).appendingPathComponent(entry)
        guard regularFileSize(extracted) != nil else {
            throw Failure.failed("tar did not unpack \(entry) as a regular file")
        }
        return extracted
    }

    /// Runs `tar`, returning its standard output; a non-zero exit is `.failed` with tar's message.
    /// Standard error goes to a file in `scratch` so that neither pipe can fill up and block it.
    private static func run(_ tar: String, _ arguments: [String], scratch: String) throws -> String {
        let errorPath = (scratch as NSString).appendingPathComponent(".tar-stderr-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: errorPath, contents: nil),
              let errorHandle = FileHandle(forWritingAtPath: errorPath) else {
            throw Failure.failed("cannot create \(errorPath)")
        }
        defer { try? FileManager.default.removeItem(atPath: errorPath) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: tar)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errorHandle
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            try? errorHandle.close()
            throw Failure.failed("cannot run \(tar): \(error.localizedDescription)")
        }
        try? errorHandle.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()

        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let message = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
            let lines = message.split(whereSeparator: \.isNewline).prefix(3).joined(separator: "; ")
            let how = process.terminationReason == .exit
                ? "exit status \(process.terminationStatus)" : "signal \(process.terminationStatus)"
            throw Failure.failed("\(tar) \(arguments.first ?? "") failed with \(how)\(lines.isEmpty ? "" : ": \(lines)")")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
