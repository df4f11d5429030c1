import InceptionCore
import Foundation

/// What a weight file says about one stored variable, without reading its values.
public struct TensorInfo: Sendable, Equatable, CustomStringConvertible {
    /// The variable's name, e.g. "InceptionV1/Conv2d_1a_7x7/weights".
    public let name: String
    /// The stored element type in NumPy spelling: "float32", "float16", "bfloat16", "float64",
    /// "int64", …, or a type this module cannot convert ("string", "resource", "complex64", …).
    public let dtype: String
    /// The extents, outermost first.
    public let shape: [Int]
    /// The bytes the values occupy in the file (element count × element size; for TF V2 string
    /// tensors, the stored size).
    public var byteCount: Int

    public init(name: String, dtype: String, shape: [Int], byteCount: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteCount = byteCount
    }

    /// The number of elements (0 if the shape is malformed).
    public var elementCount: Int { InceptionFormats.elementCount(shape) ?? 0 }

    /// True when `tensor(named:)` can return this variable as float32.
    public var isConvertibleToFloat: Bool { ElementType(rawValue: dtype) != nil }

    public var description: String { "\(name) \(dtype) \(shape)" }
}

/// A file (or checkpoint) of named tensors.
public protocol WeightReader: Sendable {
    /// The path the reader was opened with (for TF V2 checkpoints, the prefix).
    var path: String { get }
    /// Every stored variable, sorted by name.
    var variables: [TensorInfo] { get }
    /// The values of one variable as float32, converted from the stored type when needed.
    /// Throws `FormatError` for unknown names, unconvertible types and corrupt data.
    func tensor(named name: String) throws -> Tensor
}

extension WeightReader {
    /// The listing entry for `name`, if stored.
    public func info(named name: String) -> TensorInfo? { variables.first { $0.name == name } }

    /// Every variable whose type converts to float32, by name.
    public func readAll() throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for info in variables where info.isConvertibleToFloat {
            result[info.name] = try tensor(named: info.name)
        }
        return result
    }
}

/// The "no such variable" error, with a hint of what is there.
func variableNotFound(_ name: String, in path: String, names: [String]) -> FormatError {
    let similar = names.filter { $0.hasSuffix(name) || name.hasSuffix($0) }.prefix(3)
    let hint = similar.isEmpty ? "" : "; similar: " + similar.joined(separator: ", ")
    return FormatError(path, "no variable named \"\(name)\" (the file holds \(names.count) variables\(hint))")
}

/// Opening weight files by path, whatever their format.
public enum WeightFile {
    /// Opens `path` with the reader its format needs:
    /// - `X.safetensors` (or a file whose first bytes look like a safetensors header): safetensors;
    /// - `X.npy` (or a file starting with the NumPy magic): one array, named after the file;
    /// - a TensorFlow V2 checkpoint, given as its prefix (`X`, with `X.index` next to it), as
    ///   `X.index`, or as one of its `X.data-NNNNN-of-MMMMM` shards;
    /// - a TensorFlow V1 checkpoint: a single file that is a LevelDB-format table;
    /// - `X.pth` / `X.pt` (or a zip archive holding a data.pkl record): a PyTorch state_dict.
    /// Anything else is a `FormatError` saying what was tried.
    public static func open(_ path: String) throws -> any WeightReader {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        let exists = fileManager.fileExists(atPath: path, isDirectory: &isDirectory)
        if exists && isDirectory.boolValue {
            throw FormatError(path, "is a directory; give a checkpoint prefix (e.g. dir/model.ckpt) or a file")
        }
        if path.hasSuffix(".safetensors") { return try SafeTensorsReader(path: path) }
        if path.hasSuffix(".npy") { return try NPYReader(path: path) }
        if path.hasSuffix(".pth") || path.hasSuffix(".pt") { return try PyTorchReader(path: path) }
        if path.hasSuffix(".index") { return try TFCheckpointV2Reader(prefix: String(path.dropLast(".index".count))) }
        if let range = path.range(of: ".data-", options: .backwards),
           path[range.upperBound...].range(of: #"^\d{5}-of-\d{5}$"#, options: .regularExpression) != nil {
            return try TFCheckpointV2Reader(prefix: String(path[..<range.lowerBound]))
        }
        if fileManager.fileExists(atPath: path + ".index") { return try TFCheckpointV2Reader(prefix: path) }
        guard exists else {
            throw FormatError(path, "no such file, and no \(path).index for a TensorFlow V2 checkpoint prefix")
        }
        let file = try FileBytes.load(path)
        if file.count == 0 { throw FormatError(path, "file is empty (0 bytes)") }
        let head = try file.bytes(at: 0, count: min(9, file.count), what: "file start")
        if head.starts(with: NPY.magic) { return try NPYReader(path: path) }
        if head.count == 9, head[8] == UInt8(ascii: "{") { return try SafeTensorsReader(path: path) }
        if PyTorchReader.recognises(file) { return try PyTorchReader(path: path) }
        if file.count >= LevelDBTable.footerSize {
            var cursor = ByteCursor(try file.bytes(at: file.count - 8, count: 8, what: "table magic"))
            if try cursor.readUInt64LE() == LevelDBTable.magic { return try TFCheckpointV1Reader(path: path) }
        }
        throw FormatError(path, "unrecognised weight file: not .safetensors, .npy or .pth by name or content, no \(path).index (TF V2 prefix), not a .index or .data-NNNNN-of-MMMMM file, and no LevelDB table magic at the end (TF V1 checkpoint)")
    }

    /// Opens `path` and reads every variable that converts to float32 (string and other
    /// non-numeric entries, such as a V2 checkpoint's object graph, are skipped).
    public static func readAll(_ path: String) throws -> [String: Tensor] {
        try open(path).readAll()
    }
}
