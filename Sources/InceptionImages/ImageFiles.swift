import Foundation

/// Finding and decoding many image files.
public enum ImageFiles {
    /// File name endings taken when walking a directory (explicitly named files are always tried).
    public static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    /// Expands files and directories (recursively, sorted, hidden entries skipped) into image paths.
    /// A path that does not exist is returned as is, so decoding reports it with the others.
    public static func expand(_ paths: [String]) -> [String] {
        var result: [String] = []
        let fileManager = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fileManager.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                result.append(path)
                continue
            }
            let base = URL(fileURLWithPath: path)
            guard let walker = fileManager.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey],
                                                      options: [.skipsHiddenFiles]) else { continue }
            var found: [String] = []
            for case let url as URL in walker where extensions.contains(url.pathExtension.lowercased()) {
                found.append(path.hasSuffix("/") ? path + relative(url, to: base) : path + "/" + relative(url, to: base))
            }
            result += found.sorted()
        }
        return result
    }

    private static func relative(_ url: URL, to base: URL) -> String {
        let full = url.standardizedFileURL.path, root = base.standardizedFileURL.path
        return full.hasPrefix(root + "/") ? String(full.dropFirst(root.count + 1)) : url.lastPathComponent
    }

    /// Decodes files on all cores; each result is the image or the reason it could not be read.
    public static func decode(_ paths: [String], options: DecodeOptions = DecodeOptions()) -> [Result<RGBImage, ImageError>] {
        final class Slots: @unchecked Sendable {  // each index written by one iteration only
            var results: [Result<RGBImage, ImageError>?]
            init(_ n: Int) { results = Array(repeating: nil, count: n) }
        }
        let slots = Slots(paths.count)
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            slots.results[i] = Result<RGBImage, ImageError> { () throws(ImageError) in
                try ImageDecoder.decode(contentsOf: paths[i], options: options)
            }
        }
        return slots.results.map { $0! }
    }
}
