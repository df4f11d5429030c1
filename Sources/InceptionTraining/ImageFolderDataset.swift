import Dispatch
import Foundation
import Inception

/// An image-classification data set laid out as one sub-folder per class:
///
///     DATA/cat/0001.jpg
///     DATA/cat/more/0002.png      (found recursively)
///     DATA/dog/0003.JPEG
///
/// Classes are the sub-folder names sorted bytewise (UTF-8); a class's label is its position in
/// that list. Images are the `.jpg`, `.jpeg` and `.png` files (any case) under the class folder,
/// recursively; hidden files and folders are skipped, other files ignored.
///
/// Everything that would stop training is checked when the data set is opened, before any
/// training: a missing or empty folder, a class folder without images, fewer than two classes,
/// classes differing from the expected ones, and (unless ``Options/verifyImages`` is off) every
/// image is decoded once so that an unreadable or corrupt file is reported by name, or skipped and
/// counted when ``Options/skipBadImages`` is set.
///
/// Validation data is either a separate folder with the same class folders (a subset is allowed)
/// or a per-class stratified split of the training folder: each class's files, sorted, are shuffled
/// with a seeded generator and the first `round(count · split)` (at least one when the class has two
/// or more images, and never all of them) are held out.
public struct ImageFolderDataset: Sendable {
    /// One image and its class index.
    public struct Sample: Sendable, Equatable, Hashable {
        public let path: String
        public let label: Int

        public init(path: String, label: Int) {
            self.path = path
            self.label = label
        }
    }

    public struct Options: Sendable, Equatable {
        /// The fraction of each class held out for validation, in [0, 1). 0: no split.
        public var validationSplit: Double
        /// A separate validation folder (same class folder names). Exclusive with a split.
        public var validationFolder: String?
        /// Seeds the split's shuffle.
        public var splitSeed: UInt64
        /// When set, the class folder names must be exactly these (in sorted order).
        public var expectedClasses: [String]?
        /// When set, the number of class folders must be this.
        public var expectedClassCount: Int?
        /// Decode every image once while opening, so bad files are found before training.
        public var verifyImages: Bool
        /// Leave out (and count) images that cannot be decoded instead of failing.
        public var skipBadImages: Bool
        /// How images are decoded during verification.
        public var decodeOptions: DecodeOptions
        /// Threads decoding during verification (0: one per core).
        public var verificationThreads: Int

        public init(validationSplit: Double = 0, validationFolder: String? = nil, splitSeed: UInt64 = 0,
                    expectedClasses: [String]? = nil, expectedClassCount: Int? = nil,
                    verifyImages: Bool = true, skipBadImages: Bool = false,
                    decodeOptions: DecodeOptions = DecodeOptions(), verificationThreads: Int = 0) {
            self.validationSplit = validationSplit
            self.validationFolder = validationFolder
            self.splitSeed = splitSeed
            self.expectedClasses = expectedClasses
            self.expectedClassCount = expectedClassCount
            self.verifyImages = verifyImages
            self.skipBadImages = skipBadImages
            self.decodeOptions = decodeOptions
            self.verificationThreads = verificationThreads
        }
    }

    /// The data folder, as given (without a trailing slash).
    public let root: String
    /// The validation folder when one was given.
    public let validationRoot: String?
    /// Class names, sorted; the label of a class is its index here.
    public let classNames: [String]
    /// Training samples, by class then path.
    public let training: [Sample]
    /// Validation samples (from the split or the validation folder), by class then path.
    public let validation: [Sample]
    /// Images left out because they could not be decoded (only with `skipBadImages`).
    public let skipped: [SkippedImage]
    /// Notes worth showing (e.g. a class missing from the validation folder).
    public let warnings: [String]
    public let options: Options

    /// The number of images left out as unreadable.
    public var skippedCount: Int { skipped.count }
    public var classCount: Int { classNames.count }

    /// Training images per class.
    public var trainingCounts: [Int] { Self.counts(training, classes: classNames.count) }
    /// Validation images per class.
    public var validationCounts: [Int] { Self.counts(validation, classes: classNames.count) }

    /// Opens and checks the data set. `progress(done, total)` is called during image verification
    /// (from worker threads).
    public init(root: String, options: Options = Options(),
                progress: (@Sendable (Int, Int) -> Void)? = nil) throws {
        guard options.validationSplit >= 0, options.validationSplit < 1, options.validationSplit.isFinite else {
            throw DatasetError.invalidOption("the validation split must be in [0, 1), got \(options.validationSplit)")
        }
        if options.validationSplit > 0, options.validationFolder != nil {
            throw DatasetError.invalidOption("give either a validation split or a validation folder, not both")
        }
        let root = Self.trimmed(root)
        self.root = root
        self.options = options
        var warnings: [String] = []

        // Classes and their files.
        let scan = try Self.scan(root)
        let names = scan.map(\.name)
        guard names.count >= 2 else { throw DatasetError.tooFewClasses(root, found: names) }
        if let expected = options.expectedClasses, expected != names {
            throw DatasetError.classMismatch(root, expected: expected, found: names)
        }
        if let expected = options.expectedClassCount, expected != names.count {
            throw DatasetError.classCountMismatch(root, expected: expected, found: names)
        }
        for entry in scan where entry.images.isEmpty {
            throw DatasetError.classWithoutImages(className: entry.name, folder: entry.folder, otherFiles: entry.otherFiles)
        }
        classNames = names

        // Validation files.
        var validationFiles: [[String]] = Array(repeating: [], count: names.count)
        if let folder = options.validationFolder {
            let validationRoot = Self.trimmed(folder)
            let validationScan = try Self.scan(validationRoot)
            let unknown = validationScan.map(\.name).filter { !names.contains($0) }
            if !unknown.isEmpty {
                throw DatasetError.unknownValidationClasses(validationRoot, unknown: unknown, known: names)
            }
            for entry in validationScan {
                validationFiles[names.firstIndex(of: entry.name)!] = entry.images
            }
            let missing = names.enumerated().filter { validationFiles[$0.offset].isEmpty }.map(\.element)
            if missing.count == names.count { throw DatasetError.emptyValidation(validationRoot) }
            if !missing.isEmpty {
                warnings.append("validation folder \(validationRoot) has no images for class\(missing.count == 1 ? "" : "es") "
                    + missing.map { "\"\($0)\"" }.joined(separator: ", "))
            }
            self.validationRoot = validationRoot
        } else {
            self.validationRoot = nil
        }

        // Verification: decode everything once.
        var bad = Set<String>()
        var skipped: [SkippedImage] = []
        if options.verifyImages {
            let all = scan.flatMap(\.images) + validationFiles.flatMap { $0 }
            let errors = Self.verify(all, options: options.decodeOptions, threads: options.verificationThreads,
                                     progress: progress)
            if !errors.isEmpty {
                guard options.skipBadImages else { throw DatasetError.badImages(errors) }
                for error in errors {
                    bad.insert(error.file)
                    skipped.append(SkippedImage(path: error.file, reason: error.description))
                }
            }
        }
        self.skipped = skipped

        var training: [Sample] = []
        var validation: [Sample] = []
        for (label, entry) in scan.enumerated() {
            let good = entry.images.filter { !bad.contains($0) }
            if good.isEmpty {
                throw DatasetError.classOnlyBadImages(className: entry.name, folder: entry.folder, bad: entry.images.count)
            }
            if options.validationSplit > 0 {
                let (train, held) = Self.split(good, fraction: options.validationSplit, seed: options.splitSeed, label: label)
                training += train.map { Sample(path: $0, label: label) }
                validation += held.map { Sample(path: $0, label: label) }
            } else {
                training += good.map { Sample(path: $0, label: label) }
                validation += validationFiles[label].filter { !bad.contains($0) }.map { Sample(path: $0, label: label) }
            }
        }
        if options.validationFolder != nil && validation.isEmpty {
            throw DatasetError.emptyValidation(validationRoot ?? "")
        }
        self.training = training
        self.validation = validation
        self.warnings = warnings
    }

    /// A one-paragraph description: classes, counts, split, skipped files.
    public var summary: String {
        let t = trainingCounts, v = validationCounts
        var lines = ["\(root): \(classNames.count) classes, \(training.count) training and \(validation.count) validation images"]
        for (i, name) in classNames.enumerated() {
            lines.append("  \(i): \(name) (\(t[i]) training, \(v[i]) validation)")
        }
        if !skipped.isEmpty { lines.append("skipped \(skipped.count) unreadable image\(skipped.count == 1 ? "" : "s")") }
        lines += warnings
        return lines.joined(separator: "\n")
    }

    // MARK: - Scanning

    struct ClassEntry {
        let name: String
        let folder: String
        let images: [String]
        let otherFiles: Int
    }

    static func trimmed(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    /// Bytewise (UTF-8) order, as Python's `sorted` on names: independent of locale and of
    /// Unicode normalisation.
    static func bytewiseLess(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    static func isImageName(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
        return ImageFiles.extensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// The class folders of `root` with their image files (recursive, sorted bytewise).
    static func scan(_ root: String) throws -> [ClassEntry] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDirectory) else { throw DatasetError.folderMissing(root) }
        guard isDirectory.boolValue else { throw DatasetError.notAFolder(root) }
        let entries: [String]
        do {
            entries = try fm.contentsOfDirectory(atPath: root)
        } catch {
            throw DatasetError.invalidOption("\(root): cannot list the folder: \(error.localizedDescription)")
        }
        var classFolders: [String] = []
        var loose = 0
        for name in entries where !name.hasPrefix(".") {
            var dir: ObjCBool = false
            guard fm.fileExists(atPath: root + "/" + name, isDirectory: &dir) else { continue }
            if dir.boolValue { classFolders.append(name) } else if isImageName(name) { loose += 1 }
        }
        guard !classFolders.isEmpty else { throw DatasetError.noClassFolders(root, looseImages: loose) }
        classFolders.sort(by: bytewiseLess)
        return classFolders.map { name in
            let folder = root + "/" + name
            let (images, others) = listFiles(folder)
            return ClassEntry(name: name, folder: folder, images: images, otherFiles: others)
        }
    }

    /// Image files under `folder` (recursive, hidden entries skipped), sorted bytewise, and the
    /// number of other regular files.
    static func listFiles(_ folder: String) -> (images: [String], others: Int) {
        let fm = FileManager.default
        var images: [String] = []
        var others = 0
        var pending = [folder]
        while let dir = pending.popLast() {
            guard let names = try? fm.contentsOfDirectory(atPath: dir) else { continue }
            for name in names where !name.hasPrefix(".") {
                let path = dir + "/" + name
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: path, isDirectory: &isDir) else { continue }
                if isDir.boolValue {
                    pending.append(path)
                } else if isImageName(name) {
                    images.append(path)
                } else {
                    others += 1
                }
            }
        }
        return (images.sorted(by: bytewiseLess), others)
    }

    /// Decodes every file; returns the errors in path order.
    static func verify(_ paths: [String], options: DecodeOptions, threads: Int,
                       progress: (@Sendable (Int, Int) -> Void)?) -> [ImageError] {
        guard !paths.isEmpty else { return [] }
        final class Shared: @unchecked Sendable {
            let lock = NSLock()
            var errors: [Int: ImageError] = [:]
            var done = 0
            var next = 0
        }
        let shared = Shared()
        let workers = max(1, min(threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount, paths.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                shared.lock.lock()
                let i = shared.next
                shared.next += 1
                shared.lock.unlock()
                guard i < paths.count else { return }
                let error: ImageError?
                do throws(ImageError) {
                    _ = try ImageDecoder.decode(contentsOf: paths[i], options: options)
                    error = nil
                } catch let e {
                    error = e
                }
                shared.lock.lock()
                if let error { shared.errors[i] = error }
                shared.done += 1
                let done = shared.done
                shared.lock.unlock()
                progress?(done, paths.count)
            }
        }
        return shared.errors.keys.sorted().map { shared.errors[$0]! }
    }

    /// The per-class split: `files` (sorted) shuffled with a seed derived from `seed` and the class
    /// index; the first `held` go to validation. Both halves are returned sorted.
    static func split(_ files: [String], fraction: Double, seed: UInt64, label: Int) -> (train: [String], validation: [String]) {
        let n = files.count
        var held = Int((Double(n) * fraction).rounded())
        if fraction > 0 && n >= 2 { held = max(held, 1) }
        held = min(held, n - 1)
        guard held > 0 else { return (files, []) }
        var shuffled = files
        var generator = SeededGenerator(seed: DataRandom.seed(seed, DataRandom.Purpose.split.rawValue, label))
        DataRandom.shuffle(&shuffled, using: &generator)
        let validation = Array(shuffled[..<held]).sorted(by: bytewiseLess)
        let train = Array(shuffled[held...]).sorted(by: bytewiseLess)
        return (train, validation)
    }

    static func counts(_ samples: [Sample], classes: Int) -> [Int] {
        var c = [Int](repeating: 0, count: classes)
        for s in samples where s.label >= 0 && s.label < classes { c[s.label] += 1 }
        return c
    }
}
