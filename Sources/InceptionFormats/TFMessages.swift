/// The TensorFlow protocol-buffer messages the checkpoint readers need, decoded from the wire
/// format with `ProtoReader`. Field numbers are those of tensorflow/core/framework/{types,
/// tensor, tensor_shape, tensor_slice}.proto, core/protobuf/tensor_bundle.proto and
/// core/util/saved_tensor_slice.proto.

/// A TensorFlow `DataType` enum value.
struct TFDataType: Sendable, Equatable {
    let code: Int

    init(_ code: Int) {
        // Reference types (DT_FLOAT_REF = 101, …) carry the base type plus 100.
        self.code = code > 100 && code < 200 ? code - 100 : code
    }

    /// The element type this module converts from, or nil for types it cannot turn into Float.
    var elementType: ElementType? {
        switch code {
        case 1: return .float32
        case 2: return .float64
        case 3: return .int32
        case 4: return .uint8
        case 5: return .int16
        case 6: return .int8
        case 9: return .int64
        case 10: return .bool
        case 14: return .bfloat16
        case 17: return .uint16
        case 19: return .float16
        case 22: return .uint32
        case 23: return .uint64
        default: return nil
        }
    }

    /// The name used in listings ("float32", "string", "resource", …).
    var name: String {
        if let elementType { return elementType.name }
        switch code {
        case 0: return "invalid"
        case 7: return "string"
        case 8: return "complex64"
        case 11: return "qint8"
        case 12: return "quint8"
        case 13: return "qint32"
        case 15: return "qint16"
        case 16: return "quint16"
        case 18: return "complex128"
        case 20: return "resource"
        case 21: return "variant"
        case 24: return "float8_e5m2"
        case 25: return "float8_e4m3fn"
        default: return "dtype \(code)"
        }
    }

    /// Bytes per element for fixed-size types (including those not convertible), nil otherwise.
    var fixedSize: Int? {
        if let elementType { return elementType.size }
        switch code {
        case 8: return 8
        case 11, 12, 24, 25: return 1
        case 13: return 4
        case 15, 16: return 2
        case 18: return 16
        default: return nil
        }
    }
}

/// A shape from a `TensorShapeProto` {dim = 2 (repeated Dim {size = 1, name = 2}), unknown_rank = 3}.
func decodeTensorShape(_ bytes: [UInt8], _ range: Range<Int>) throws -> [Int] {
    var reader = ProtoReader(bytes, range: range)
    var dims: [Int] = []
    var unknownRank = false
    while let (field, wire) = try reader.nextField() {
        switch field {
        case 2:
            try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "TensorShapeProto")
            var dim = ProtoReader(bytes, range: try reader.readLengthDelimited())
            var size: Int64 = 0
            while let (f, w) = try dim.nextField() {
                if f == 1 {
                    try ProtoReader.expect(w, .varint, field: f, in: "TensorShapeProto.Dim")
                    size = Int64(bitPattern: try dim.readVarint())
                } else {
                    try dim.skip(w)
                }
            }
            guard size >= 0 else { throw Malformed("shape has an unknown or negative dimension (\(size))") }
            dims.append(Int(size))
        case 3:
            unknownRank = try reader.readVarint() != 0
        default:
            try reader.skip(wire)
        }
    }
    if unknownRank { throw Malformed("shape has unknown rank") }
    return dims
}

/// One axis of a `TensorSliceProto` {extent = 1 (repeated Extent {start = 1, length = 2})}.
/// A missing length means the slice covers the whole axis.
struct SliceExtent: Sendable, Equatable {
    var start: Int
    var length: Int?
}

func decodeTensorSlice(_ bytes: [UInt8], _ range: Range<Int>) throws -> [SliceExtent] {
    var reader = ProtoReader(bytes, range: range)
    var extents: [SliceExtent] = []
    while let (field, wire) = try reader.nextField() {
        guard field == 1 else { try reader.skip(wire); continue }
        try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "TensorSliceProto")
        var inner = ProtoReader(bytes, range: try reader.readLengthDelimited())
        var extent = SliceExtent(start: 0, length: nil)
        while let (f, w) = try inner.nextField() {
            switch f {
            case 1:
                try ProtoReader.expect(w, .varint, field: f, in: "TensorSliceProto.Extent")
                extent.start = Int(Int64(bitPattern: try inner.readVarint()))
            case 2:
                try ProtoReader.expect(w, .varint, field: f, in: "TensorSliceProto.Extent")
                extent.length = Int(Int64(bitPattern: try inner.readVarint()))
            default:
                try inner.skip(w)
            }
        }
        guard extent.start >= 0, (extent.length ?? 0) >= 0 else {
            throw Malformed("slice extent with negative start or length")
        }
        extents.append(extent)
    }
    return extents
}

/// `BundleHeaderProto` {num_shards = 1, endianness = 2 (0 little, 1 big), version = 3}.
struct BundleHeader {
    var numShards = 0
    var bigEndian = false

    init(_ bytes: [UInt8], _ range: Range<Int>) throws {
        var reader = ProtoReader(bytes, range: range)
        while let (field, wire) = try reader.nextField() {
            switch field {
            case 1:
                try ProtoReader.expect(wire, .varint, field: field, in: "BundleHeaderProto")
                numShards = Int(Int32(truncatingIfNeeded: try reader.readVarint()))
            case 2:
                try ProtoReader.expect(wire, .varint, field: field, in: "BundleHeaderProto")
                bigEndian = try reader.readVarint() != 0
            default:
                try reader.skip(wire)
            }
        }
    }
}

/// `BundleEntryProto` {dtype = 1, shape = 2, shard_id = 3, offset = 4, size = 5,
/// crc32c = 6 (fixed32, masked), slices = 7 (repeated TensorSliceProto)}.
struct BundleEntry: Sendable {
    var dtype = TFDataType(0)
    var shape: [Int] = []
    var shardID = 0
    var offset: Int64 = 0
    var size: Int64 = 0
    var maskedCRC: UInt32? = nil
    var slices: [[SliceExtent]] = []

    init(_ bytes: [UInt8], _ range: Range<Int>) throws {
        var reader = ProtoReader(bytes, range: range)
        while let (field, wire) = try reader.nextField() {
            switch field {
            case 1:
                try ProtoReader.expect(wire, .varint, field: field, in: "BundleEntryProto")
                dtype = TFDataType(Int(truncatingIfNeeded: try reader.readVarint()))
            case 2:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "BundleEntryProto")
                shape = try decodeTensorShape(bytes, try reader.readLengthDelimited())
            case 3:
                try ProtoReader.expect(wire, .varint, field: field, in: "BundleEntryProto")
                shardID = Int(Int32(truncatingIfNeeded: try reader.readVarint()))
            case 4:
                try ProtoReader.expect(wire, .varint, field: field, in: "BundleEntryProto")
                offset = Int64(bitPattern: try reader.readVarint())
            case 5:
                try ProtoReader.expect(wire, .varint, field: field, in: "BundleEntryProto")
                size = Int64(bitPattern: try reader.readVarint())
            case 6:
                try ProtoReader.expect(wire, .fixed32, field: field, in: "BundleEntryProto")
                maskedCRC = try reader.readFixed32()
            case 7:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "BundleEntryProto")
                slices.append(try decodeTensorSlice(bytes, try reader.readLengthDelimited()))
            default:
                try reader.skip(wire)
            }
        }
    }
}

/// `SavedSliceMeta` {name = 1, shape = 2, type = 3, slice = 4 (repeated)}.
struct SavedSliceMeta: Sendable {
    var name = ""
    var shape: [Int] = []
    var dtype = TFDataType(0)
    var slices: [[SliceExtent]] = []

    init(_ bytes: [UInt8], _ range: Range<Int>) throws {
        var reader = ProtoReader(bytes, range: range)
        while let (field, wire) = try reader.nextField() {
            switch field {
            case 1:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "SavedSliceMeta")
                name = try reader.readString()
            case 2:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "SavedSliceMeta")
                shape = try decodeTensorShape(bytes, try reader.readLengthDelimited())
            case 3:
                try ProtoReader.expect(wire, .varint, field: field, in: "SavedSliceMeta")
                dtype = TFDataType(Int(truncatingIfNeeded: try reader.readVarint()))
            case 4:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "SavedSliceMeta")
                slices.append(try decodeTensorSlice(bytes, try reader.readLengthDelimited()))
            default:
                try reader.skip(wire)
            }
        }
    }
}

/// `SavedTensorSlices` {meta = 1 (SavedTensorSliceMeta {tensor = 1 (repeated SavedSliceMeta),
/// versions = 2}), data = 2 (SavedSlice)}: the value of every entry in a V1 checkpoint table.
struct SavedTensorSlices {
    var meta: [SavedSliceMeta]? = nil
    /// The SavedSlice message's range in the value bytes.
    var data: Range<Int>? = nil

    init(_ bytes: [UInt8], _ range: Range<Int>) throws {
        var reader = ProtoReader(bytes, range: range)
        while let (field, wire) = try reader.nextField() {
            switch field {
            case 1:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "SavedTensorSlices")
                var metaReader = ProtoReader(bytes, range: try reader.readLengthDelimited())
                var tensors: [SavedSliceMeta] = meta ?? []
                while let (f, w) = try metaReader.nextField() {
                    if f == 1 {
                        try ProtoReader.expect(w, .lengthDelimited, field: f, in: "SavedTensorSliceMeta")
                        tensors.append(try SavedSliceMeta(bytes, try metaReader.readLengthDelimited()))
                    } else {
                        try metaReader.skip(w)
                    }
                }
                meta = tensors
            case 2:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "SavedTensorSlices")
                data = try reader.readLengthDelimited()
            default:
                try reader.skip(wire)
            }
        }
    }
}

/// `SavedSlice` {name = 1, slice = 2 (TensorSliceProto), data = 3 (TensorProto)}.
struct SavedSlice {
    var name = ""
    var slice: [SliceExtent]? = nil
    var data: Range<Int>? = nil

    init(_ bytes: [UInt8], _ range: Range<Int>) throws {
        var reader = ProtoReader(bytes, range: range)
        while let (field, wire) = try reader.nextField() {
            switch field {
            case 1:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "SavedSlice")
                name = try reader.readString()
            case 2:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "SavedSlice")
                slice = try decodeTensorSlice(bytes, try reader.readLengthDelimited())
            case 3:
                try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "SavedSlice")
                data = try reader.readLengthDelimited()
            default:
                try reader.skip(wire)
            }
        }
    }
}

/// Decodes the numbers of a `TensorProto` {dtype = 1, tensor_shape = 2, tensor_content = 4
/// (raw little-endian bytes), float_val = 5, double_val = 6, int_val = 7 (int32, also int16,
/// int8, uint8, uint16), int64_val = 10, bool_val = 11, half_val = 13 (the 16 bits of a half or
/// bfloat16 in an int32), uint32_val = 16, uint64_val = 17} into `count` Floats.
///
/// The values come from `tensor_content` when present, else from the repeated field for the
/// dtype; either way there must be exactly `count` of them. V1 checkpoints leave the proto's dtype
/// unset (the metadata has it), so `defaultType` is used when the field is absent. Returns the
/// dtype used.
func decodeTensorProto(_ bytes: [UInt8], _ range: Range<Int>, count: Int,
                       defaultType: TFDataType = TFDataType(0)) throws -> (TFDataType, [Float]) {
    var reader = ProtoReader(bytes, range: range)
    var dtype = defaultType
    var content: Range<Int>? = nil
    var floats: [UInt8] = []   // float_val elements, little-endian
    var doubles: [UInt8] = []  // double_val elements, little-endian
    var varints: [Int: [UInt64]] = [:]  // int_val, int64_val, bool_val, half_val, uint32_val, uint64_val
    while let (field, wire) = try reader.nextField() {
        switch field {
        case 1:
            try ProtoReader.expect(wire, .varint, field: field, in: "TensorProto")
            dtype = TFDataType(Int(truncatingIfNeeded: try reader.readVarint()))
        case 4:
            try ProtoReader.expect(wire, .lengthDelimited, field: field, in: "TensorProto")
            content = try reader.readLengthDelimited()
        case 5:
            try reader.readRepeatedFixed(wire, width: 4, into: &floats)
        case 6:
            try reader.readRepeatedFixed(wire, width: 8, into: &doubles)
        case 7, 10, 11, 13, 16, 17:
            var values = varints[field] ?? []
            try reader.readRepeatedVarints(wire, into: &values)
            varints[field] = values
        default:
            try reader.skip(wire)  // tensor_shape (the caller knows the shape), strings, …
        }
    }
    guard let type = dtype.elementType else {
        throw Malformed("TensorProto has dtype \(dtype.name), which cannot be converted to float32")
    }
    if let content {
        let (expected, overflow) = count.multipliedReportingOverflow(by: type.size)
        guard !overflow, content.count == expected else {
            throw Malformed("tensor_content holds \(content.count) bytes, expected \(count) × \(type.size) for \(type.name)")
        }
        let values = bytes.withUnsafeBytes { type.decode(UnsafeRawBufferPointer(rebasing: $0[content]), count: count) }
        return (dtype, values)
    }
    func check(_ n: Int, _ field: String) throws {
        guard n == count else { throw Malformed("TensorProto \(field) holds \(n) values, expected \(count)") }
    }
    switch type {
    case .float32:
        try check(floats.count / 4, "float_val")
        return (dtype, floats.withUnsafeBytes { ElementType.float32.decode($0, count: count) })
    case .float64:
        try check(doubles.count / 8, "double_val")
        return (dtype, doubles.withUnsafeBytes { ElementType.float64.decode($0, count: count) })
    case .float16, .bfloat16:
        // Written to half_val; accept int_val too, which some writers used.
        let values = varints[13] ?? varints[7] ?? []
        try check(values.count, "half_val")
        return (dtype, values.map {
            let bits = UInt16(truncatingIfNeeded: $0)
            return type == .float16 ? floatFromHalf(bits) : floatFromBFloat16(bits)
        })
    case .int8, .uint8, .int16, .uint16, .int32:
        let values = varints[7] ?? []
        try check(values.count, "int_val")
        return (dtype, values.map { Float(Int32(truncatingIfNeeded: $0)) })
    case .int64:
        let values = varints[10] ?? []
        try check(values.count, "int64_val")
        return (dtype, values.map { Float(Int64(bitPattern: $0)) })
    case .bool:
        let values = varints[11] ?? []
        try check(values.count, "bool_val")
        return (dtype, values.map { $0 != 0 ? 1 : 0 })
    case .uint32:
        let values = varints[16] ?? []
        try check(values.count, "uint32_val")
        return (dtype, values.map { Float(UInt32(truncatingIfNeeded: $0)) })
    case .uint64:
        let values = varints[17] ?? []
        try check(values.count, "uint64_val")
        return (dtype, values.map { Float($0) })
    }
}
