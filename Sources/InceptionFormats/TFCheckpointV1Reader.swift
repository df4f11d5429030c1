import InceptionCore

/// Reads a TensorFlow V1 checkpoint: one LevelDB-format table of `SavedTensorSlices` messages.
///
/// The entry with the empty key holds the metadata (each variable's name, shape, dtype and
/// slices); every other entry holds one slice of one variable (`SavedSlice`: name, slice extents,
/// and a `TensorProto` whose numbers are in `tensor_content` or a repeated field such as
/// `float_val`). Unpartitioned variables have a single whole slice; partitioned ones are
/// assembled here from their slices.
///
/// Opening reads every block once (verifying its checksum) to index where each slice lies; a
/// tensor is decoded when asked for (its block is read and verified again).
public final class TFCheckpointV1Reader: WeightReader {
    public let path: String
    public let variables: [TensorInfo]
    private let table: LevelDBTable
    private let metas: [String: SavedSliceMeta]
    private let locations: [String: [SliceLocation]]

    private struct SliceLocation: Sendable {
        let extents: [SliceExtent]
        let blockIndex: Int
        let value: Range<Int>
    }

    public init(path: String) throws {
        self.path = path
        let table = try LevelDBTable(file: try FileBytes.load(path))
        var metaList: [SavedSliceMeta]? = nil
        var locations: [String: [SliceLocation]] = [:]
        try table.forEachEntry { key, block, blockIndex, value in
            do {
                let message = try SavedTensorSlices(block.contents, value)
                if key.isEmpty {
                    guard let meta = message.meta else { throw Malformed("holds no SavedTensorSliceMeta") }
                    metaList = meta
                } else {
                    guard let data = message.data else { throw Malformed("holds no SavedSlice") }
                    let slice = try SavedSlice(block.contents, data)
                    locations[slice.name, default: []].append(
                        SliceLocation(extents: slice.slice ?? [], blockIndex: blockIndex, value: value))
                }
            } catch let error as Malformed {
                throw FormatError(path, "table entry \(describeKey(key)) in data block \(blockIndex): \(error.message)")
            }
        }
        guard let metaList else {
            throw FormatError(path, "no metadata entry (empty key) in the table; not a TensorFlow V1 checkpoint")
        }
        var metas: [String: SavedSliceMeta] = [:]
        for meta in metaList {
            guard metas[meta.name] == nil else { throw FormatError(path, "metadata lists variable \"\(meta.name)\" twice") }
            guard elementCount(meta.shape) != nil else {
                throw FormatError(path, "variable \"\(meta.name)\" has an invalid shape \(meta.shape)")
            }
            metas[meta.name] = meta
        }
        self.table = table
        self.metas = metas
        self.locations = locations
        variables = metaList.map { meta in
            TensorInfo(name: meta.name, dtype: meta.dtype.name, shape: meta.shape,
                       byteCount: byteCount(meta.shape, itemSize: meta.dtype.fixedSize ?? 0) ?? 0)
        }.sorted { $0.name < $1.name }
    }

    public func tensor(named name: String) throws -> Tensor {
        guard let meta = metas[name] else {
            throw variableNotFound(name, in: path, names: variables.map(\.name))
        }
        guard meta.dtype.elementType != nil else {
            throw FormatError(path, "variable \"\(name)\" has dtype \(meta.dtype.name), which cannot be converted to float32")
        }
        let slices = locations[name] ?? []
        guard !slices.isEmpty else { throw FormatError(path, "variable \"\(name)\" is listed but its data is missing") }
        let count = elementCount(meta.shape)!  // validated at open
        var assembler = SliceAssembler(shape: meta.shape, count: count)
        for location in slices {
            let value = try table.value(blockIndex: location.blockIndex, range: location.value)
            do {
                let box = try resolveSlice(location.extents, fullShape: meta.shape)
                guard let data = try SavedTensorSlices(value, 0..<value.count).data,
                      let proto = try SavedSlice(value, data).data else {
                    throw Malformed("slice \(describeSlice(location.extents)) holds no TensorProto")
                }
                let (dtype, values) = try decodeTensorProto(value, proto, count: elementCount(box.lengths)!,
                                                            defaultType: meta.dtype)
                guard dtype == meta.dtype else {
                    throw Malformed("slice data is \(dtype.name) but the metadata says \(meta.dtype.name)")
                }
                if slices.count == 1 && box.lengths == meta.shape {
                    return Tensor(shape: meta.shape, scalars: values)  // the usual case: one whole slice
                }
                try assembler.place(starts: box.starts, lengths: box.lengths, values)
            } catch let error as Malformed {
                throw FormatError(path, "variable \"\(name)\": \(error.message)")
            }
        }
        guard assembler.isComplete else {
            throw FormatError(path, "variable \"\(name)\": its slices do not cover the whole shape \(meta.shape)")
        }
        return Tensor(shape: meta.shape, scalars: assembler.values)
    }
}
