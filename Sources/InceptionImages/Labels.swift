import Foundation

/// Class names for a classifier's outputs.
///
/// The bundled ImageNet list has 1001 entries, as the released TF-slim checkpoints: index 0 is
/// "background", then the 1000 ILSVRC-2012 classes in synset-sorted order (the usual class-index
/// order), with torchvision's short readable names. ``imagenet(forOutputCount:)`` adapts it to
/// models with 1000 outputs (no background class), so output `i` is named correctly either way.
public struct Labels: Sendable, Equatable {
    /// The name of each output, index-aligned with the model's outputs.
    public let names: [String]

    public init(names: [String]) { self.names = names }

    /// Labels from a text file with one name per line. Blank trailing lines and `\r` are ignored;
    /// a file whose every line starts with `N:` (slim's `labels.txt`) has that prefix removed.
    public init(contentsOf path: String) throws(LabelsError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw LabelsError("\(path): cannot read labels: \(error.localizedDescription)")
        }
        names = Labels.parse(text)
        if names.isEmpty { throw LabelsError("\(path): no labels (expected one name per line)") }
    }

    static func parse(_ text: String) -> [String] {
        // Split on scalars: in Swift, "\r\n" is a single Character and would not match "\n".
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            var line = String(String.UnicodeScalarView(line))
            if line.hasSuffix("\r") { line.removeLast() }
            return line
        }
        while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
        let prefixed = !lines.isEmpty && lines.allSatisfy { line in
            guard let colon = line.firstIndex(of: ":") else { return false }
            return colon > line.startIndex && line[..<colon].allSatisfy(\.isASCII) && Int(line[..<colon]) != nil
        }
        if prefixed { lines = lines.map { String($0[$0.index(after: $0.firstIndex(of: ":")!)...]) } }
        return lines
    }

    public var count: Int { names.count }

    /// Whether the first name is a background class (so the list suits 1001-output models).
    public var hasBackground: Bool { names.first?.lowercased().hasSuffix("background") ?? false }

    /// The name of model output `index`, or `"class <index>"` when the list has no such entry.
    public func name(forOutput index: Int) -> String {
        names.indices.contains(index) ? names[index] : "class \(index)"
    }

    public subscript(output index: Int) -> String { name(forOutput: index) }

    /// These labels aligned to a model with `outputCount` outputs: unchanged when the counts agree;
    /// without the background entry for a model that has one output fewer; with a "background"
    /// entry added for a model with one output more.
    public func adapted(toOutputCount outputCount: Int) throws(LabelsError) -> Labels {
        if names.count == outputCount { return self }
        if names.count == outputCount + 1 && hasBackground { return Labels(names: Array(names.dropFirst())) }
        if names.count + 1 == outputCount && !hasBackground { return Labels(names: ["background"] + names) }
        throw LabelsError("\(names.count) labels do not fit a model with \(outputCount) outputs")
    }

    /// The bundled ImageNet labels: 1001 names, "background" first.
    public static func imagenet() throws(LabelsError) -> Labels { try bundledImagenet.get() }

    /// The bundled ImageNet labels for a model with `outputCount` outputs (1001 or 1000).
    public static func imagenet(forOutputCount outputCount: Int) throws(LabelsError) -> Labels {
        try imagenet().adapted(toOutputCount: outputCount)
    }

    private static let bundledImagenet: Result<Labels, LabelsError> = {
        guard let url = Bundle.module.url(forResource: "imagenet_labels", withExtension: "txt") else {
            return .failure(LabelsError("imagenet_labels.txt is missing from the InceptionImages resource bundle"))
        }
        do {
            return .success(Labels(names: parse(try String(contentsOf: url, encoding: .utf8))))
        } catch {
            return .failure(LabelsError("cannot read bundled ImageNet labels: \(error.localizedDescription)"))
        }
    }()
}

/// A labels file that cannot be read or does not fit the model.
public struct LabelsError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
