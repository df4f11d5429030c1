import InceptionCore
import Foundation

/// NumPy's `.npy` array format (versions 1.0, 2.0 and 3.0).
///
/// Layout: the magic `\x93NUMPY`, a major and a minor version byte, the header length
/// (little-endian u16 in version 1, u32 in versions 2 and 3), the header — a Python dict literal
/// such as `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`, space-padded and ending
/// in a newline (ASCII; UTF-8 in version 3) — then the raw elements, exactly
/// shape-product × item-size bytes.
public enum NPY {
    static let magic: [UInt8] = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]  // \x93NUMPY

    /// Reads a little-endian float32 array, or a float64 / float16 / integer / bool array
    /// converted to Float (see `readWithInfo` for the stored dtype).
    public static func read(_ path: String) throws -> Tensor {
        try readWithInfo(path).tensor
    }

    /// Reads an array and reports what was stored; `info.dtype` is "float32" when no conversion
    /// happened, otherwise the stored type ("float64", "uint8", …).
    public static func readWithInfo(_ path: String) throws -> (tensor: Tensor, info: TensorInfo) {
        let file = try FileBytes.load(path)
        let header = try parseHeader(file)
        let values = try file.withBytes(at: header.dataStart, count: header.byteCount, what: "array data") {
            header.type.decode($0, count: header.count)
        }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let info = TensorInfo(name: name, dtype: header.type.name, shape: header.shape, byteCount: header.byteCount)
        return (Tensor(shape: header.shape, scalars: values), info)
    }

    /// Writes `tensor` as a C-order little-endian float32 array (format version 1.0, or 2.0 when
    /// the header would not fit a 16-bit length), atomically.
    public static func write(_ tensor: Tensor, to path: String) throws {
        let shape: String
        switch tensor.shape.count {
        case 0: shape = "()"
        case 1: shape = "(\(tensor.shape[0]),)"
        default: shape = "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dict = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }".utf8)
        // Pad with spaces and end with a newline so the data starts at a multiple of 64 bytes.
        let prefix = dict.count + 1 + 10 <= 65535 ? 10 : 12
        while (prefix + dict.count + 1) % 64 != 0 { dict.append(0x20) }
        dict.append(0x0a)
        var out = magic
        if prefix == 10 {
            out += [1, 0, UInt8(dict.count & 0xff), UInt8(dict.count >> 8)]
        } else {
            out += [2, 0] + (0..<4).map { UInt8(truncatingIfNeeded: dict.count >> (8 * $0)) }
        }
        out += dict
        appendLittleEndian(tensor.scalars, to: &out)
        try writeFileAtomically(out, to: path)
    }

    struct Header {
        let type: ElementType
        let shape: [Int]
        let count: Int
        let byteCount: Int
        let dataStart: Int
    }

    /// Parses and checks the preamble and header; the data size must match the file exactly.
    static func parseHeader(_ file: FileBytes) throws -> Header {
        let path = file.path
        if file.count == 0 { throw FormatError(path, "file is empty (0 bytes)") }
        guard file.count >= 10, try file.bytes(at: 0, count: 6, what: "magic") == magic else {
            throw FormatError(path, "not a .npy file (no \\x93NUMPY magic)")
        }
        let preamble = try file.bytes(at: 6, count: 4, what: "version")
        let major = preamble[0]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(preamble[2]) | Int(preamble[3]) << 8
            headerStart = 10
        case 2, 3:
            guard file.count >= 12 else { throw FormatError(path, "file ends inside the header length") }
            var c = ByteCursor(try file.bytes(at: 8, count: 4, what: "header length"))
            headerLength = Int(try c.readUInt32LE())
            headerStart = 12
        default:
            throw FormatError(path, "unsupported .npy format version \(major).\(preamble[1])")
        }
        guard file.contains(offset: headerStart, count: headerLength) else {
            throw FormatError(path, "header length \(headerLength) runs past the end of the file (\(file.count) bytes)")
        }
        let text = try file.bytes(at: headerStart, count: headerLength, what: "header")
        let dict: [String: PyValue]
        do {
            dict = try PyLiteralParser.parseDict(text)
        } catch let error as Malformed {
            throw FormatError(path, "malformed header: \(error.message)")
        }
        guard case let .string(descr)? = dict["descr"] else {
            if dict["descr"] != nil { throw FormatError(path, "structured dtype (descr is not a string) is not supported") }
            throw FormatError(path, "header has no 'descr'")
        }
        guard case let .bool(fortran)? = dict["fortran_order"] else { throw FormatError(path, "header has no 'fortran_order'") }
        guard !fortran else {
            throw FormatError(path, "fortran_order is True; only C-order arrays are supported (save np.ascontiguousarray(a))")
        }
        guard case let .tuple(items)? = dict["shape"] else { throw FormatError(path, "header has no 'shape' tuple") }
        var shape: [Int] = []
        for item in items {
            guard case let .int(n) = item, n >= 0 else { throw FormatError(path, "shape \(items) holds something other than non-negative integers") }
            shape.append(n)
        }
        let type = try elementType(descr, path: path)
        guard let count = elementCount(shape), let bytes = byteCount(shape, itemSize: type.size) else {
            throw FormatError(path, "shape \(shape) is too large (its size overflows)")
        }
        let dataStart = headerStart + headerLength
        let available = file.count - dataStart
        if available < bytes {
            throw FormatError(path, "header says shape \(shape) of '\(descr)' (\(bytes) bytes) but only \(available) data bytes follow; truncated?")
        }
        if available > bytes {
            throw FormatError(path, "\(available - bytes) trailing bytes after the \(bytes) bytes of data that shape \(shape) of '\(descr)' needs")
        }
        return Header(type: type, shape: shape, count: count, byteCount: bytes, dataStart: dataStart)
    }

    /// A NumPy type string ('<f4', '|u1', …) → element type; big-endian, object, string and
    /// other kinds are errors.
    static func elementType(_ descr: String, path: String) throws -> ElementType {
        var chars = Array(descr)
        var order: Character = "="
        if let first = chars.first, "<>|=".contains(first) { order = first; chars.removeFirst() }
        if chars.first == "O" { throw FormatError(path, "object arrays (dtype '\(descr)') are not supported") }
        guard let kind = chars.first, let size = Int(String(chars.dropFirst())) else {
            throw FormatError(path, "unsupported dtype '\(descr)'")
        }
        let type: ElementType?
        switch (kind, size) {
        case ("f", 2): type = .float16
        case ("f", 4): type = .float32
        case ("f", 8): type = .float64
        case ("i", 1): type = .int8
        case ("i", 2): type = .int16
        case ("i", 4): type = .int32
        case ("i", 8): type = .int64
        case ("u", 1): type = .uint8
        case ("u", 2): type = .uint16
        case ("u", 4): type = .uint32
        case ("u", 8): type = .uint64
        case ("b", 1): type = .bool
        default: type = nil
        }
        guard let type else { throw FormatError(path, "unsupported dtype '\(descr)'") }
        if order == ">" && size > 1 {
            throw FormatError(path, "big-endian dtype '\(descr)' is not supported (save it as '<\(kind)\(size)')")
        }
        return type
    }
}

/// The values a .npy header dict can hold.
indirect enum PyValue: Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case none
    case tuple([PyValue])
    case list([PyValue])
    case dict([String: PyValue])
}

/// Parses the Python literal in a .npy header: a dict of string keys whose values are strings,
/// integers, True/False/None, tuples, lists or dicts.
struct PyLiteralParser {
    private let bytes: [UInt8]
    private var position = 0
    private var depth = 0

    static func parseDict(_ bytes: [UInt8]) throws -> [String: PyValue] {
        var parser = PyLiteralParser(bytes: bytes)
        parser.skipSpace()
        guard case let .dict(d) = try parser.parseValue() else { throw Malformed("header is not a dict") }
        parser.skipSpace()
        guard parser.position == bytes.count else { throw Malformed("unexpected text after the header dict") }
        return d
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[position]) { position += 1 }
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func parseValue() throws -> PyValue {
        skipSpace()
        guard let c = peek() else { throw Malformed("unexpected end of header") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "{"): return try parseDictBody()
        case UInt8(ascii: "("): return .tuple(try parseSequence(close: UInt8(ascii: ")")))
        case UInt8(ascii: "["): return .list(try parseSequence(close: UInt8(ascii: "]")))
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseInt()
        default:
            let start = position
            while let c = peek(), (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) { position += 1 }
            switch String(decoding: bytes[start..<position], as: UTF8.self) {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default: throw Malformed("unexpected text at byte \(start)")
            }
        }
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= 32 else { throw Malformed("nesting too deep") }
    }

    private mutating func parseDictBody() throws -> PyValue {
        try enter()
        defer { depth -= 1 }
        position += 1
        var result: [String: PyValue] = [:]
        while true {
            skipSpace()
            if peek() == UInt8(ascii: "}") { position += 1; return .dict(result) }
            guard case let .string(key) = try parseValue() else { throw Malformed("dict key is not a string") }
            skipSpace()
            guard peek() == UInt8(ascii: ":") else { throw Malformed("expected ':' after key '\(key)'") }
            position += 1
            guard result[key] == nil else { throw Malformed("duplicate key '\(key)'") }
            result[key] = try parseValue()
            skipSpace()
            if peek() == UInt8(ascii: ",") { position += 1; continue }
            guard peek() == UInt8(ascii: "}") else { throw Malformed("expected ',' or '}' in dict") }
        }
    }

    private mutating func parseSequence(close: UInt8) throws -> [PyValue] {
        try enter()
        defer { depth -= 1 }
        position += 1
        var items: [PyValue] = []
        while true {
            skipSpace()
            if peek() == close { position += 1; return items }
            items.append(try parseValue())
            skipSpace()
            if peek() == UInt8(ascii: ",") { position += 1; continue }
            guard peek() == close else { throw Malformed("expected ',' or closing bracket") }
        }
    }

    private mutating func parseInt() throws -> PyValue {
        let start = position
        if peek() == UInt8(ascii: "-") { position += 1 }
        while let c = peek(), c >= 0x30, c <= 0x39 { position += 1 }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if peek() == UInt8(ascii: "L") { position += 1 }  // Python 2 long suffix
        guard let n = Int(text) else { throw Malformed("integer \(text) is out of range") }
        return .int(n)
    }

    private mutating func parseString() throws -> String {
        let quote = bytes[position]
        position += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw Malformed("unterminated string") }
            position += 1
            if c == quote { return String(decoding: out, as: UTF8.self) }
            if c == UInt8(ascii: "\\") {
                guard let e = peek() else { throw Malformed("unterminated string") }
                position += 1
                out.append(e)
            } else {
                out.append(c)
            }
        }
    }
}

/// A .npy file seen as a weight file holding one variable, named after the file.
public final class NPYReader: WeightReader {
    public let path: String
    public let variables: [TensorInfo]
    private let file: FileBytes
    private let header: NPY.Header

    public init(path: String) throws {
        self.path = path
        file = try FileBytes.load(path)
        header = try NPY.parseHeader(file)
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        variables = [TensorInfo(name: name, dtype: header.type.name, shape: header.shape, byteCount: header.byteCount)]
    }

    public func tensor(named name: String) throws -> Tensor {
        guard name == variables[0].name else { throw variableNotFound(name, in: path, names: [variables[0].name]) }
        let values = try file.withBytes(at: header.dataStart, count: header.byteCount, what: "array data") {
            header.type.decode($0, count: header.count)
        }
        return Tensor(shape: header.shape, scalars: values)
    }
}
