/// Why an image could not be read. The description names the file and the problem, e.g.
/// `photo.webp is a WebP image; only JPEG and PNG are supported`.
public struct ImageError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The file could not be read (missing, a directory, no permission, …).
        case unreadable
        /// The file has no bytes.
        case empty
        /// The bytes are not a recognised image format.
        case notAnImage
        /// A recognised image format that cannot be decoded (only JPEG and PNG can).
        case unsupportedFormat(ImageFormat)
        /// The data ends before the image is complete.
        case truncated
        /// The decoder rejected the data (corrupt, or a variant the library does not handle).
        case corrupt
        /// The header announces more pixels than allowed; nothing was allocated for them.
        case tooManyPixels(width: Int, height: Int, limit: Int)
        /// Memory for the pixels could not be allocated.
        case outOfMemory
    }

    /// The file name (or caller-chosen name for in-memory data) the error is about.
    public let file: String
    public let kind: Kind
    /// The format, when it was recognised.
    public let format: ImageFormat?
    /// Further detail, usually the decoding library's own message.
    public let detail: String

    public init(file: String, kind: Kind, format: ImageFormat? = nil, detail: String = "") {
        self.file = file
        self.kind = kind
        self.format = format
        self.detail = detail
    }

    public var description: String {
        let what = format?.rawValue ?? "image"
        let libraryMessage = detail.isEmpty ? "" : " (\(detail))"
        switch kind {
        case .unreadable:
            return "\(file): cannot read the file\(detail.isEmpty ? "" : ": \(detail)")"
        case .empty:
            return "\(file) is empty (0 bytes); expected a JPEG or PNG image"
        case .notAnImage:
            return "\(file) is not a JPEG or PNG image\(detail.isEmpty ? "" : " (\(detail))")"
        case .unsupportedFormat(let format):
            return "\(file) is \(format.withArticle) image; only JPEG and PNG are supported"
        case .truncated:
            return "\(file): truncated \(what): the data ends before the image is complete\(libraryMessage)"
        case .corrupt:
            return "\(file): cannot decode \(what)\(detail.isEmpty ? "" : ": \(detail)")"
        case let .tooManyPixels(width, height, limit):
            return "\(file): \(what) of \(width)x\(height) pixels (\(megapixels(width * height)) megapixels) "
                + "exceeds the limit of \(megapixels(limit)) megapixels (\(limit) pixels); "
                + "raise the maximum pixel count if the image is genuine"
        case .outOfMemory:
            return "\(file): out of memory decoding the \(what)\(libraryMessage)"
        }
    }

    private func megapixels(_ count: Int) -> String {
        let tenths = (count + 50_000) / 100_000
        return "\(tenths / 10).\(tenths % 10)"
    }
}
