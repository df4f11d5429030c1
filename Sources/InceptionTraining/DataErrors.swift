import Inception

/// Why a data set cannot be used, found before training starts (or while loading a batch).
/// Every case names the folder or file it is about; the description is one or a few plain lines.
public enum DatasetError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The data folder does not exist.
    case folderMissing(String)
    /// The path exists but is a file, not a folder.
    case notAFolder(String)
    /// The folder has no class sub-folders. `looseImages` counts images lying directly in it.
    case noClassFolders(String, looseImages: Int)
    /// A class folder holds no .jpg/.jpeg/.png images (`otherFiles`: other files found in it).
    case classWithoutImages(className: String, folder: String, otherFiles: Int)
    /// Training needs at least two classes.
    case tooFewClasses(String, found: [String])
    /// The classes found differ from the ones expected (e.g. `--num-classes`, or a label file).
    case classMismatch(String, expected: [String], found: [String])
    /// The number of classes found differs from the number expected.
    case classCountMismatch(String, expected: Int, found: [String])
    /// A validation folder has class folders that the training folder lacks.
    case unknownValidationClasses(String, unknown: [String], known: [String])
    /// A validation folder holds no images at all.
    case emptyValidation(String)
    /// An option is out of range.
    case invalidOption(String)
    /// Images that cannot be decoded (unreadable, corrupt, truncated, unsupported), each naming
    /// its file. Raised unless bad images are to be skipped.
    case badImages([ImageError])
    /// Every image of a class was bad and skipped.
    case classOnlyBadImages(className: String, folder: String, bad: Int)

    public var description: String {
        switch self {
        case let .folderMissing(path):
            return "\(path): no such folder; the data set must be a folder with one sub-folder per class"
        case let .notAFolder(path):
            return "\(path) is a file, not a folder; the data set must be a folder with one sub-folder per class"
        case let .noClassFolders(path, loose):
            if loose > 0 {
                return "\(path) holds \(loose) image\(loose == 1 ? "" : "s") but no class sub-folders; "
                    + "put each class's images in a sub-folder named after the class (\(path)/cat/1.jpg, \(path)/dog/2.jpg, …)"
            }
            return "\(path) is empty: it has no class sub-folders (expected \(path)/CLASS/IMAGE.jpg)"
        case let .classWithoutImages(name, folder, other):
            let extra = other > 0 ? " (it holds \(other) other file\(other == 1 ? "" : "s"))" : ""
            return "class \"\(name)\": \(folder) holds no .jpg, .jpeg or .png images\(extra); "
                + "remove the folder or add images to it"
        case let .tooFewClasses(path, found):
            let list = found.isEmpty ? "none" : found.map { "\"\($0)\"" }.joined(separator: ", ")
            return "\(path) has \(found.count) class folder\(found.count == 1 ? "" : "s") (\(list)); "
                + "a classifier needs at least 2 classes"
        case let .classMismatch(path, expected, found):
            let missing = expected.filter { !found.contains($0) }
            let extra = found.filter { !expected.contains($0) }
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing \(Self.list(missing))") }
            if !extra.isEmpty { parts.append("unexpected \(Self.list(extra))") }
            if parts.isEmpty { parts.append("same names in a different order") }
            return "\(path): the class folders do not match the expected classes: " + parts.joined(separator: "; ")
        case let .classCountMismatch(path, expected, found):
            return "\(path) has \(found.count) class folders but \(expected) classes were expected (found \(Self.list(found)))"
        case let .unknownValidationClasses(path, unknown, known):
            return "validation folder \(path) has class folders the training data lacks: \(Self.list(unknown)) "
                + "(training classes: \(Self.list(known)))"
        case let .emptyValidation(path):
            return "validation folder \(path) holds no images"
        case let .invalidOption(message):
            return message
        case let .badImages(errors):
            let shown = errors.prefix(5).map { "  \($0)" }.joined(separator: "\n")
            let more = errors.count > 5 ? "\n  … and \(errors.count - 5) more" : ""
            return "\(errors.count) image\(errors.count == 1 ? "" : "s") cannot be read:\n\(shown)\(more)\n"
                + "fix or remove \(errors.count == 1 ? "it" : "them"), or skip bad images (--skip-bad-images)"
        case let .classOnlyBadImages(name, folder, bad):
            return "class \"\(name)\": all \(bad) images in \(folder) are unreadable"
        }
    }

    private static func list(_ names: [String]) -> String {
        let shown = names.prefix(10).map { "\"\($0)\"" }.joined(separator: ", ")
        return names.count > 10 ? shown + ", … (\(names.count) in all)" : shown
    }
}

/// An image left out because it could not be decoded.
public struct SkippedImage: Sendable, Equatable, CustomStringConvertible {
    public let path: String
    /// Why, naming the file (the decoder's message).
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { reason }
}
