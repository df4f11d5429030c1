/// A value on the restricted pickle machine's stack.
///
/// Values are flat: tuples, lists, dicts, storages and tensors live in the machine's arenas and
/// are referred to by index. So no value contains another, nothing recurses when a value is built,
/// inspected or freed, and a hostile pickle that nests containers a million deep cannot exhaust
/// the call stack (it is refused by the nesting limit long before that anyway).
enum PickleValue: Sendable {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(Int)
    case list(Int)
    case dict(Int)
    case global(PickleGlobal)
    case storage(Int)
    case tensor(Int)
}

/// A dict (plain or OrderedDict) in the machine's arena, keeping insertion order.
struct PickleDict: Sendable {
    enum Key: Hashable, Sendable {
        case none
        case int(Int64)
        case float(UInt64)
        case string(String)
    }

    var keys: [PickleValue] = []
    var values: [PickleValue] = []
    var index: [Key: Int] = [:]
    var isOrdered: Bool

    var count: Int { keys.count }
}

/// A storage named by a persistent id `('storage', storage_type, key, location, numel)`.
struct PickleStorage: Sendable {
    /// The record name under `data/` in the archive.
    let key: String
    /// The element type of a legacy typed storage; nil for `torch.storage.UntypedStorage`, whose
    /// `numel` counts bytes and whose tensors bring their own dtype.
    let dtype: TorchDType?
    /// The device it was saved from ("cpu", "cuda:0"): the bytes are the same either way.
    let location: String
    /// Elements of `dtype` (bytes for an untyped storage).
    let numel: Int

    var byteCount: Int? {
        let (bytes, overflow) = numel.multipliedReportingOverflow(by: dtype?.size ?? 1)
        return overflow ? nil : bytes
    }
}

/// A tensor view of a storage, as `_rebuild_tensor_v2` describes it (offset and strides in
/// elements).
struct PickleTensor: Sendable {
    let storage: Int
    let dtype: TorchDType
    let offset: Int
    let shape: [Int]
    let stride: [Int]
}

/// A failure while running a pickle: the message is complete (it names the byte and opcode, or
/// says which callable was refused); the reader prefixes the file's path.
struct PickleError: Error, Sendable {
    let message: String
}

/// A pickle interpreter that builds only what a PyTorch state dict is made of, and never imports
/// or calls anything.
///
/// Python's pickle format is a small stack machine whose GLOBAL and REDUCE opcodes import any
/// name and call it with any arguments, which is how a malicious `.pth` file runs
/// `os.system(...)` under `torch.load`. This machine implements the data opcodes of protocols
/// 0–5 that carry no code (ints, floats, strings, tuples, lists, dicts, the memo, marks, frames)
/// and accepts a GLOBAL only if it names one of the handful of things torch.save writes for a
/// state dict (see `PickleGlobal.resolve`): `collections.OrderedDict`, the tensor and parameter
/// rebuild functions of `torch._utils`, storage classes and dtypes. Those are interpreted here —
/// an OrderedDict call makes an empty dict, a rebuild call records a strided view of a storage.
/// Any other name (`os.system`, `builtins.eval`, `subprocess.Popen`, …) is refused the moment
/// it is read, before anything could use it. Opcodes that construct arbitrary objects (INST, OBJ,
/// NEWOBJ, EXT*) and text persistent ids are refused too. Sizes, stack depth, mark depth,
/// container nesting and the memo are bounded.
struct PickleMachine {
    struct Limits: Sendable {
        var maxStack = 1_000_000
        var maxMarkDepth = 1_000
        var maxNesting = 1_000
        var maxObjects = 2_000_000
        var maxMemo = 2_000_000
        var maxRank = 64
    }

    let bytes: [UInt8]
    /// The record's name, for messages ("archive/data.pkl").
    let name: String
    let limits: Limits

    private(set) var tuples: [[PickleValue]] = []
    private(set) var lists: [[PickleValue]] = []
    private(set) var dicts: [PickleDict] = []
    private(set) var storages: [PickleStorage] = []
    private(set) var tensors: [PickleTensor] = []
    private var tupleDepth: [Int] = []
    private var listDepth: [Int] = []
    private var dictDepth: [Int] = []
    private var storageIndex: [String: Int] = [:]

    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [UInt32: PickleValue] = [:]
    private var position = 0
    private var opcodeStart = 0
    private var opcode: UInt8 = 0

    /// The position after the STOP opcode once `run` has returned (pickles can follow each other,
    /// as in the legacy torch.save format).
    var endPosition: Int { position }

    init(bytes: [UInt8], name: String, start: Int = 0, limits: Limits = Limits()) {
        self.bytes = bytes
        self.name = name
        self.limits = limits
        position = min(max(0, start), bytes.count)
    }

    // MARK: Errors

    /// A refusal: the pickle asks for something a state dict never needs.
    private func refuse(_ qualifiedName: String) -> PickleError {
        PickleError(message: "refuses to load: the pickle references \(qualifiedName), which a state_dict never needs (only tensors and ordered dicts are allowed)")
    }

    /// A malformed or unsupported pickle, located by byte and opcode.
    private func bad(_ detail: String) -> PickleError {
        PickleError(message: "pickle \(name), byte \(opcodeStart) (opcode \(Self.describe(opcode: opcode))): \(detail)")
    }

    static func describe(opcode: UInt8) -> String {
        let hex = String(opcode, radix: 16)
        let code = "0x" + (hex.count < 2 ? "0" + hex : hex)
        if let name = opcodeNames[opcode] { return "\(code) \(name)" }
        return code
    }

    static let opcodeNames: [UInt8: String] = [
        0x28: "MARK", 0x2e: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT",
        0x49: "INT", 0x4a: "BININT", 0x4b: "BININT1", 0x4c: "LONG", 0x4d: "BININT2", 0x4e: "NONE",
        0x50: "PERSID", 0x51: "BINPERSID", 0x52: "REDUCE", 0x53: "STRING", 0x54: "BINSTRING",
        0x55: "SHORT_BINSTRING", 0x56: "UNICODE", 0x58: "BINUNICODE", 0x61: "APPEND", 0x62: "BUILD",
        0x63: "GLOBAL", 0x64: "DICT", 0x7d: "EMPTY_DICT", 0x65: "APPENDS", 0x67: "GET",
        0x68: "BINGET", 0x69: "INST", 0x6a: "LONG_BINGET", 0x6c: "LIST", 0x5d: "EMPTY_LIST",
        0x6f: "OBJ", 0x70: "PUT", 0x71: "BINPUT", 0x72: "LONG_BINPUT", 0x73: "SETITEM",
        0x74: "TUPLE", 0x29: "EMPTY_TUPLE", 0x75: "SETITEMS", 0x47: "BINFLOAT", 0x80: "PROTO",
        0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1", 0x86: "TUPLE2",
        0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8a: "LONG1", 0x8b: "LONG4",
        0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x8c: "SHORT_BINUNICODE", 0x8d: "BINUNICODE8",
        0x8e: "BINBYTES8", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET",
        0x92: "NEWOBJ_EX", 0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME",
        0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
    ]

    // MARK: Reading operands

    private mutating func read(_ count: Int) throws -> Range<Int> {
        guard count >= 0, count <= bytes.count - position else {
            throw bad("needs \(count) bytes of operand but the pickle has \(bytes.count - position) left (truncated)")
        }
        defer { position += count }
        return position..<(position + count)
    }

    private mutating func readByte() throws -> UInt8 { bytes[try read(1).lowerBound] }

    private mutating func readUInt(_ count: Int) throws -> UInt64 {
        let r = try read(count)
        var v: UInt64 = 0
        for i in r.reversed() { v = (v << 8) | UInt64(bytes[i]) }
        return v
    }

    /// A length operand, which must fit in what is left of the pickle.
    private mutating func readLength(_ count: Int) throws -> Int {
        let n = try readUInt(count)
        guard n <= UInt64(bytes.count - position) else {
            throw bad("a length of \(n) bytes runs past the end of the pickle (\(bytes.count - position) bytes left)")
        }
        return Int(n)
    }

    private mutating func readUTF8(_ count: Int) throws -> String {
        let r = try read(count)
        guard let s = String(validating: bytes[r], as: UTF8.self) else { throw bad("string is not valid UTF-8") }
        return s
    }

    /// A newline-terminated text operand (GLOBAL's module and name), at most 256 bytes.
    private mutating func readLine() throws -> String {
        let start = position
        while position < bytes.count, bytes[position] != 0x0a {
            position += 1
            if position - start > 256 { throw bad("text operand longer than 256 bytes") }
        }
        guard position < bytes.count else { throw bad("text operand has no newline (truncated)") }
        let r = start..<position
        position += 1
        guard let s = String(validating: bytes[r], as: UTF8.self) else { throw bad("text operand is not valid UTF-8") }
        return s
    }

    // MARK: The stack

    private mutating func push(_ value: PickleValue) throws {
        guard stack.count < limits.maxStack else {
            throw bad("refuses to load: the stack grows past \(limits.maxStack) entries (a state_dict needs a few)")
        }
        stack.append(value)
    }

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0) else { throw bad("stack underflow") }
        return stack.removeLast()
    }

    private func top() throws -> PickleValue {
        guard let last = stack.last, stack.count > (marks.last ?? 0) else { throw bad("stack underflow") }
        return last
    }

    private mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw bad("no MARK to pop to") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private var objectCount: Int { tuples.count + lists.count + dicts.count + storages.count + tensors.count }

    private func checkObjects() throws {
        guard objectCount < limits.maxObjects else {
            throw bad("refuses to load: the pickle builds more than \(limits.maxObjects) objects")
        }
    }

    private func depth(_ value: PickleValue) -> Int {
        switch value {
        case .tuple(let i): return tupleDepth[i]
        case .list(let i): return listDepth[i]
        case .dict(let i): return dictDepth[i]
        default: return 0
        }
    }

    private func checkNesting(_ depth: Int) throws {
        guard depth <= limits.maxNesting else {
            throw bad("refuses to load: containers nest more than \(limits.maxNesting) deep (a state_dict nests a few)")
        }
    }

    private mutating func makeTuple(_ items: [PickleValue]) throws -> PickleValue {
        try checkObjects()
        let d = 1 + (items.map(depth).max() ?? 0)
        try checkNesting(d)
        tuples.append(items)
        tupleDepth.append(d)
        return .tuple(tuples.count - 1)
    }

    private mutating func makeDict(ordered: Bool) throws -> PickleValue {
        try checkObjects()
        dicts.append(PickleDict(isOrdered: ordered))
        dictDepth.append(1)
        return .dict(dicts.count - 1)
    }

    private func dictKey(_ value: PickleValue) throws -> PickleDict.Key {
        switch value {
        case .none: return .none
        case .bool(let b): return .int(b ? 1 : 0)
        case .int(let i): return .int(i)
        case .float(let f):
            if let i = Int64(exactly: f) { return .int(i) }
            return .float(f.bitPattern)
        case .string(let s): return .string(s)
        default: throw bad("a dictionary key that is \(describe(value)) is not supported (state_dict keys are strings)")
        }
    }

    private mutating func setItems(_ items: [PickleValue], into target: PickleValue) throws {
        guard case .dict(let d) = target else { throw bad("SETITEM target is \(describe(target)), not a dict") }
        var i = 0
        var deepest = dictDepth[d]
        while i + 1 < items.count {
            let key = try dictKey(items[i])
            let value = items[i + 1]
            deepest = max(deepest, 1 + depth(value))
            try checkNesting(deepest)
            if let existing = dicts[d].index[key] {
                dicts[d].values[existing] = value
            } else {
                guard dicts[d].count < limits.maxObjects else { throw bad("dict grows past \(limits.maxObjects) entries") }
                dicts[d].index[key] = dicts[d].keys.count
                dicts[d].keys.append(items[i])
                dicts[d].values.append(value)
            }
            i += 2
        }
        dictDepth[d] = deepest
    }

    private mutating func append(_ items: [PickleValue], to target: PickleValue) throws {
        guard case .list(let l) = target else { throw bad("APPEND target is \(describe(target)), not a list") }
        guard lists[l].count <= limits.maxObjects - items.count else { throw bad("list grows past \(limits.maxObjects) items") }
        var deepest = listDepth[l]
        for item in items { deepest = max(deepest, 1 + depth(item)) }
        try checkNesting(deepest)
        lists[l].append(contentsOf: items)
        listDepth[l] = deepest
    }

    /// A short description of a value for messages ("a string", "a tuple of 3 items", …).
    func describe(_ value: PickleValue) -> String {
        switch value {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return "the integer \(i)"
        case .float(let f): return "the float \(f)"
        case .string(let s): return "the string \"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\""
        case .bytes(let b): return "\(b.count) bytes"
        case .tuple(let i): return "a tuple of \(tuples[i].count) items"
        case .list(let i): return "a list of \(lists[i].count) items"
        case .dict(let i): return "a dict of \(dicts[i].count) entries"
        case .global(let g): return g.qualifiedName
        case .storage(let i): return "storage \"\(storages[i].key)\""
        case .tensor: return "a tensor"
        }
    }

    // MARK: Running

    /// Runs the pickle to its STOP opcode and returns the value it leaves.
    mutating func run() throws -> PickleValue {
        while true {
            opcodeStart = position
            guard position < bytes.count else {
                opcode = 0
                throw PickleError(message: "pickle \(name) ends at byte \(bytes.count) without a STOP opcode (truncated)")
            }
            opcode = bytes[position]
            position += 1
            switch opcode {
            case 0x80:  // PROTO
                let version = try readByte()
                guard version <= 5 else { throw bad("pickle protocol \(version) is newer than 5") }
            case 0x95:  // FRAME: a length prefix for the next opcodes; nothing to do.
                _ = try readUInt(8)
            case 0x2e:  // STOP
                let result = try pop()
                return result
            case 0x28:  // MARK
                guard marks.count < limits.maxMarkDepth else {
                    throw bad("refuses to load: MARKs nest more than \(limits.maxMarkDepth) deep (a state_dict needs a few)")
                }
                marks.append(stack.count)
            case 0x30:  // POP
                if let mark = marks.last, mark == stack.count {
                    _ = try popMark()  // Python's pickle pops a mark here
                } else {
                    _ = try pop()
                }
            case 0x31:  // POP_MARK
                _ = try popMark()
            case 0x32:  // DUP
                try push(try top())
            case 0x4e: try push(.none)
            case 0x88: try push(.bool(true))
            case 0x89: try push(.bool(false))
            case 0x4a:  // BININT
                try push(.int(Int64(Int32(truncatingIfNeeded: try readUInt(4)))))
            case 0x4b:  // BININT1
                try push(.int(Int64(try readByte())))
            case 0x4d:  // BININT2
                try push(.int(Int64(try readUInt(2))))
            case 0x8a, 0x8b:  // LONG1, LONG4
                let count = opcode == 0x8a ? Int(try readByte()) : Int(Int32(truncatingIfNeeded: try readUInt(4)))
                guard count >= 0 else { throw bad("negative length \(count)") }
                guard count <= 8 else { throw bad("an integer of \(count) bytes is too large (at most 8 are supported)") }
                let r = try read(count)
                var v: UInt64 = 0
                for i in r.reversed() { v = (v << 8) | UInt64(bytes[i]) }
                if count > 0 && count < 8 && bytes[r.upperBound - 1] & 0x80 != 0 {
                    v |= ~UInt64(0) << UInt64(8 * count)  // sign-extend
                }
                try push(.int(Int64(bitPattern: v)))
            case 0x47:  // BINFLOAT (big-endian)
                let r = try read(8)
                var v: UInt64 = 0
                for i in r { v = (v << 8) | UInt64(bytes[i]) }
                try push(.float(Double(bitPattern: v)))
            case 0x58:  // BINUNICODE
                try push(.string(try readUTF8(try readLength(4))))
            case 0x8c:  // SHORT_BINUNICODE
                try push(.string(try readUTF8(try readLength(1))))
            case 0x8d:  // BINUNICODE8
                try push(.string(try readUTF8(try readLength(8))))
            case 0x55, 0x54:  // SHORT_BINSTRING, BINSTRING: Python 2 str, read as Latin-1 text
                let count = opcode == 0x55 ? try readLength(1) : try readLength(4)
                let r = try read(count)
                try push(.string(String(bytes[r].map { Character(Unicode.Scalar($0)) })))
            case 0x43, 0x42, 0x8e:  // SHORT_BINBYTES, BINBYTES, BINBYTES8
                let count = try readLength(opcode == 0x43 ? 1 : opcode == 0x42 ? 4 : 8)
                try push(.bytes(Array(bytes[try read(count)])))
            case 0x29:  // EMPTY_TUPLE
                try push(try makeTuple([]))
            case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
                let n = Int(opcode - 0x84)
                var items: [PickleValue] = []
                for _ in 0..<n { items.append(try pop()) }
                try push(try makeTuple(items.reversed()))
            case 0x74:  // TUPLE
                try push(try makeTuple(try popMark()))
            case 0x5d:  // EMPTY_LIST
                try checkObjects()
                lists.append([])
                listDepth.append(1)
                try push(.list(lists.count - 1))
            case 0x7d:  // EMPTY_DICT
                try push(try makeDict(ordered: false))
            case 0x61:  // APPEND
                let item = try pop()
                try append([item], to: try top())
            case 0x65:  // APPENDS
                let items = try popMark()
                try append(items, to: try top())
            case 0x73:  // SETITEM
                let value = try pop()
                let key = try pop()
                try setItems([key, value], into: try top())
            case 0x75:  // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0 else { throw bad("SETITEMS with an odd number (\(items.count)) of keys and values") }
                try setItems(items, into: try top())
            case 0x71:  // BINPUT
                try put(UInt32(try readByte()))
            case 0x72:  // LONG_BINPUT
                try put(UInt32(try readUInt(4)))
            case 0x94:  // MEMOIZE
                try put(UInt32(truncatingIfNeeded: memo.count))
            case 0x68:  // BINGET
                try get(UInt32(try readByte()))
            case 0x6a:  // LONG_BINGET
                try get(UInt32(try readUInt(4)))
            case 0x63:  // GLOBAL
                let module = try readLine()
                let name = try readLine()
                try push(try global(module: module, name: name))
            case 0x93:  // STACK_GLOBAL
                let nameValue = try pop()
                let moduleValue = try pop()
                guard case .string(let module) = moduleValue, case .string(let name) = nameValue else {
                    throw bad("STACK_GLOBAL needs two strings, got \(describe(moduleValue)) and \(describe(nameValue))")
                }
                try push(try global(module: module, name: name))
            case 0x69:  // INST module\nname\n: imports and calls; refuse by name.
                let module = try readLine()
                let name = try readLine()
                throw refuse("\(module).\(name)")
            case 0x52:  // REDUCE
                let args = try pop()
                let callable = try pop()
                try push(try reduce(callable, args))
            case 0x62:  // BUILD
                let state = try pop()
                let target = try top()
                guard case .dict = target else {
                    throw bad("BUILD (setting object state) on \(describe(target)) is not supported; a state_dict only sets attributes of its OrderedDict")
                }
                _ = state  // OrderedDict attributes such as _metadata (module versions): not needed.
            case 0x51:  // BINPERSID
                let id = try pop()
                try push(try persistentLoad(id))
            case 0x50:
                throw bad("text persistent ids (PERSID) are not used by torch.save; refusing")
            case 0x6f, 0x81, 0x92:  // OBJ, NEWOBJ, NEWOBJ_EX
                throw bad("refuses to load: the pickle constructs an object of a class, which a state_dict never needs")
            case 0x82, 0x83, 0x84:
                throw bad("refuses to load: the pickle uses the copyreg extension registry, which a state_dict never needs")
            default:
                throw bad("unsupported opcode; a state_dict written by torch.save does not use it")
            }
        }
    }

    private mutating func put(_ index: UInt32) throws {
        guard memo.count < limits.maxMemo || memo[index] != nil else {
            throw bad("refuses to load: the memo grows past \(limits.maxMemo) entries")
        }
        memo[index] = try top()
    }

    private mutating func get(_ index: UInt32) throws {
        guard let value = memo[index] else { throw bad("memo entry \(index) was never stored") }
        try push(value)
    }

    private func global(module: String, name: String) throws -> PickleValue {
        guard let g = PickleGlobal.resolve(module: module, name: name) else { throw refuse("\(module).\(name)") }
        return .global(g)
    }

    // MARK: Calls

    private func int(_ value: PickleValue, _ what: String) throws -> Int {
        guard case .int(let i) = value, let n = Int(exactly: i) else {
            throw bad("\(what) is \(describe(value)), not an integer")
        }
        return n
    }

    private func ints(_ value: PickleValue, _ what: String) throws -> [Int] {
        guard case .tuple(let t) = value else { throw bad("\(what) is \(describe(value)), not a tuple") }
        guard tuples[t].count <= limits.maxRank else { throw bad("\(what) has \(tuples[t].count) dimensions, more than \(limits.maxRank)") }
        return try tuples[t].map { try int($0, "an entry of \(what)") }
    }

    private mutating func reduce(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let function) = callable else {
            throw bad("REDUCE calls \(describe(callable)), which is not callable")
        }
        guard case .tuple(let t) = args else {
            throw bad("REDUCE arguments for \(function.qualifiedName) are \(describe(args)), not a tuple")
        }
        let arguments = tuples[t]
        func arity(_ counts: ClosedRange<Int>) throws {
            guard counts.contains(arguments.count) else {
                throw bad("\(function.qualifiedName) called with \(arguments.count) arguments (expected \(counts.lowerBound == counts.upperBound ? "\(counts.lowerBound)" : "\(counts.lowerBound)–\(counts.upperBound)"))")
            }
        }
        switch function {
        case .orderedDict:
            guard arguments.isEmpty else {
                throw bad("collections.OrderedDict called with \(arguments.count) arguments; torch.save calls it with none")
            }
            return try makeDict(ordered: true)
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3:
            return try rebuildTensor(function, arguments)
        case .rebuildParameter, .rebuildParameterWithState:
            try arity(function == .rebuildParameter ? 3...3 : 4...4)
            guard case .tensor = arguments[0] else {
                throw bad("\(function.qualifiedName) wraps \(describe(arguments[0])), not a tensor")
            }
            return arguments[0]
        case .rebuildFromTypeV2:
            try arity(4...4)
            guard case .global(let inner) = arguments[0], inner.isTensorRebuild else {
                throw bad("torch._tensor._rebuild_from_type_v2 rebuilds with \(describe(arguments[0])), not a tensor rebuild function")
            }
            guard case .global(.tensorClass) = arguments[1] else {
                throw bad("torch._tensor._rebuild_from_type_v2 makes a \(describe(arguments[1])); only torch.Tensor and torch.nn.parameter.Parameter are allowed")
            }
            guard case .tuple(let innerArgs) = arguments[2] else {
                throw bad("torch._tensor._rebuild_from_type_v2 arguments are \(describe(arguments[2])), not a tuple")
            }
            return try rebuildTensor(inner, tuples[innerArgs])
        case .tensorClass, .storageClass, .untypedStorage, .dtype:
            throw bad("REDUCE calls \(function.qualifiedName), which a state_dict never calls")
        }
    }

    private mutating func rebuildTensor(_ function: PickleGlobal, _ arguments: [PickleValue]) throws -> PickleValue {
        let name = function.qualifiedName
        let counts: ClosedRange<Int>
        switch function {
        case .rebuildTensor: counts = 4...4
        case .rebuildTensorV2: counts = 6...7
        default: counts = 7...8
        }
        guard counts.contains(arguments.count) else {
            throw bad("\(name) called with \(arguments.count) arguments (expected \(counts.lowerBound == counts.upperBound ? "\(counts.lowerBound)" : "\(counts.lowerBound)–\(counts.upperBound)"))")
        }
        guard case .storage(let s) = arguments[0] else {
            throw bad("\(name) is given \(describe(arguments[0])) where a storage belongs")
        }
        let storage = storages[s]
        let offset = try int(arguments[1], "the storage offset")
        let shape = try ints(arguments[2], "the size")
        let stride = try ints(arguments[3], "the stride")
        let metadataIndex: Int?
        let dtype: TorchDType
        if function == .rebuildTensorV3 {
            guard case .global(.dtype(let d)) = arguments[6] else {
                throw bad("\(name) is given \(describe(arguments[6])) where a dtype belongs")
            }
            guard storage.dtype == nil else {
                throw bad("\(name) is given typed storage \"\(storage.key)\"; it takes a torch.storage.UntypedStorage")
            }
            dtype = d
            metadataIndex = arguments.count == 8 ? 7 : nil
        } else {
            guard let d = storage.dtype else {
                throw bad("\(name) is given untyped storage \"\(storage.key)\" without a dtype")
            }
            dtype = d
            metadataIndex = arguments.count == 7 ? 6 : nil
        }
        if let m = metadataIndex {
            switch arguments[m] {
            case .none: break
            case .dict(let d) where dicts[d].count == 0: break
            default:
                throw bad("\(name) carries tensor metadata (\(describe(arguments[m]))), such as conjugate or negative bits, which this reader does not apply")
            }
        }
        guard shape.count == stride.count else {
            throw bad("\(name): size \(shape) and stride \(stride) have different lengths")
        }
        guard offset >= 0 else { throw bad("\(name): negative storage offset \(offset)") }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw bad("\(name): negative extent in size \(shape)") }
        guard stride.allSatisfy({ $0 >= 0 }) else { throw bad("\(name): negative stride in \(stride)") }
        guard let count = elementCount(shape) else { throw bad("\(name): size \(shape) is too large") }

        // The storage's length in elements of this dtype.
        let storageElements: Int
        if storage.dtype == nil {
            guard storage.numel % dtype.size == 0 else {
                throw bad("untyped storage \"\(storage.key)\" of \(storage.numel) bytes is not a whole number of \(dtype.name) elements")
            }
            storageElements = storage.numel / dtype.size
        } else {
            storageElements = storage.numel
        }
        if count > 0 {
            // The largest element index the view touches: offset + Σ (size_i − 1)·stride_i.
            var last = offset
            for (extent, step) in zip(shape, stride) {
                let (span, o1) = (extent - 1).multipliedReportingOverflow(by: step)
                let (sum, o2) = last.addingReportingOverflow(span)
                guard !o1, !o2 else { throw bad("\(name): size \(shape) with stride \(stride) overflows") }
                last = sum
            }
            guard last < storageElements else {
                throw bad("tensor of size \(shape), stride \(stride) at offset \(offset) reaches element \(last) of storage \"\(storage.key)\", which holds \(storageElements) \(dtype.name) elements")
            }
        }
        try checkObjects()
        tensors.append(PickleTensor(storage: s, dtype: dtype, offset: offset, shape: shape, stride: stride))
        return .tensor(tensors.count - 1)
    }

    /// BINPERSID: torch.save's `('storage', storage_type, key, location, numel)`; the legacy
    /// format adds a sixth field, `view_metadata`, which is None except for storage views (written
    /// only by PyTorch before 0.4 and not supported).
    private mutating func persistentLoad(_ id: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = id else { throw bad("persistent id is \(describe(id)), not a tuple") }
        let fields = tuples[t]
        guard fields.count == 5 || fields.count == 6 else {
            throw bad("persistent id has \(fields.count) fields; torch.save writes ('storage', type, key, location, numel)")
        }
        if fields.count == 6 {
            guard case .none = fields[5] else {
                throw bad("persistent id describes a storage view (\(describe(fields[5]))), which this reader does not support")
            }
        }
        let tag: String
        switch fields[0] {
        case .string(let s): tag = s
        case .bytes(let b): tag = String(decoding: b, as: UTF8.self)
        default: tag = describe(fields[0])
        }
        guard tag == "storage" else { throw bad("persistent id of kind \"\(tag)\"; only \"storage\" is allowed") }
        let dtype: TorchDType?
        switch fields[1] {
        case .global(.storageClass(_, let d)): dtype = d
        case .global(.untypedStorage): dtype = nil
        default: throw bad("persistent id names \(describe(fields[1])) where a storage type belongs")
        }
        guard case .string(let key) = fields[2] else { throw bad("storage key is \(describe(fields[2])), not a string") }
        guard !key.isEmpty, key.utf8.count <= 64, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") }),
              key != ".", key != ".." else {
            throw bad("storage key \"\(key)\" is not a plain record name")
        }
        guard case .string(let location) = fields[3] else { throw bad("storage location is \(describe(fields[3])), not a string") }
        let numel = try int(fields[4], "the storage size")
        guard numel >= 0 else { throw bad("storage \"\(key)\" has negative size \(numel)") }
        let storage = PickleStorage(key: key, dtype: dtype, location: location, numel: numel)
        guard storage.byteCount != nil else { throw bad("storage \"\(key)\" size \(numel) overflows") }
        if let existing = storageIndex[key] {
            let other = storages[existing]
            guard other.dtype == dtype, other.numel == numel else {
                throw bad("storage \"\(key)\" is described twice, differently (\(other.dtype?.name ?? "untyped") × \(other.numel), then \(dtype?.name ?? "untyped") × \(numel))")
            }
            return .storage(existing)
        }
        try checkObjects()
        storages.append(storage)
        storageIndex[key] = storages.count - 1
        return .storage(storages.count - 1)
    }
}
