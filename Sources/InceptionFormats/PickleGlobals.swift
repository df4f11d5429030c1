/// The element types PyTorch stores, with their sizes and the `ElementType` they convert through.
struct TorchDType: Sendable, Equatable {
    /// NumPy-style name used in listings: "float32", "float16", "int64", "complex64", ….
    let name: String
    /// Bytes per element.
    let size: Int
    /// How the elements convert to Float; nil for types this module cannot convert (complex, fp8).
    let element: ElementType?

    init(_ element: ElementType) {
        name = element.name
        size = element.size
        self.element = element
    }

    init(unconvertible name: String, size: Int) {
        self.name = name
        self.size = size
        element = nil
    }

    /// torch's legacy typed-storage class names (what torch.save writes as `torch.FloatStorage`,
    /// …) and the dtypes they hold. Quantized storages are deliberately absent.
    static let storageClasses: [String: TorchDType] = [
        "FloatStorage": TorchDType(.float32),
        "HalfStorage": TorchDType(.float16),
        "BFloat16Storage": TorchDType(.bfloat16),
        "DoubleStorage": TorchDType(.float64),
        "LongStorage": TorchDType(.int64),
        "IntStorage": TorchDType(.int32),
        "ShortStorage": TorchDType(.int16),
        "CharStorage": TorchDType(.int8),
        "ByteStorage": TorchDType(.uint8),
        "BoolStorage": TorchDType(.bool),
        "ComplexFloatStorage": TorchDType(unconvertible: "complex64", size: 8),
        "ComplexDoubleStorage": TorchDType(unconvertible: "complex128", size: 16),
    ]

    /// torch dtype objects as they are pickled (`torch.float32` is written as GLOBAL "torch
    /// float32"); they appear as the last argument of `_rebuild_tensor_v3`.
    static let dtypes: [String: TorchDType] = [
        "float32": TorchDType(.float32), "float16": TorchDType(.float16),
        "bfloat16": TorchDType(.bfloat16), "float64": TorchDType(.float64),
        "int64": TorchDType(.int64), "int32": TorchDType(.int32), "int16": TorchDType(.int16),
        "int8": TorchDType(.int8), "uint8": TorchDType(.uint8), "bool": TorchDType(.bool),
        "uint16": TorchDType(.uint16), "uint32": TorchDType(.uint32), "uint64": TorchDType(.uint64),
        "complex64": TorchDType(unconvertible: "complex64", size: 8),
        "complex128": TorchDType(unconvertible: "complex128", size: 16),
        "complex32": TorchDType(unconvertible: "complex32", size: 4),
        "float8_e4m3fn": TorchDType(unconvertible: "float8_e4m3fn", size: 1),
        "float8_e5m2": TorchDType(unconvertible: "float8_e5m2", size: 1),
        "float8_e4m3fnuz": TorchDType(unconvertible: "float8_e4m3fnuz", size: 1),
        "float8_e5m2fnuz": TorchDType(unconvertible: "float8_e5m2fnuz", size: 1),
    ]
}

/// The only globals (importable names) the restricted pickle machine lets a pickle refer to:
/// what torch.save writes for a state dict. Nothing is ever imported or called; each of these is
/// a marker the machine interprets itself.
enum PickleGlobal: Sendable, Equatable {
    /// collections.OrderedDict (called with no arguments to make an empty ordered dict).
    case orderedDict
    /// torch._utils._rebuild_tensor(storage, offset, size, stride).
    case rebuildTensor
    /// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]).
    case rebuildTensorV2
    /// torch._utils._rebuild_tensor_v3(untyped storage, offset, size, stride, requires_grad, hooks, dtype[, metadata]).
    case rebuildTensorV3
    /// torch._utils._rebuild_parameter(tensor, requires_grad, hooks).
    case rebuildParameter
    /// torch._utils._rebuild_parameter_with_state(tensor, requires_grad, hooks, state).
    case rebuildParameterWithState
    /// torch._tensor._rebuild_from_type_v2(rebuild function, type, args, state).
    case rebuildFromTypeV2
    /// torch.Tensor or torch.nn.parameter.Parameter, as the type argument of _rebuild_from_type_v2.
    case tensorClass(String)
    /// A legacy typed storage class (torch.FloatStorage, …) in a persistent id.
    case storageClass(String, TorchDType)
    /// torch.storage.UntypedStorage in a persistent id (bytes; the dtype comes with the tensor).
    case untypedStorage
    /// A dtype object (torch.float32, …).
    case dtype(TorchDType)

    /// Resolves `module.name` against the allow-list, or nil.
    static func resolve(module: String, name: String) -> PickleGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameterWithState
        case ("torch._tensor", "_rebuild_from_type_v2"): return .rebuildFromTypeV2
        case ("torch", "Tensor"), ("torch._tensor", "Tensor"): return .tensorClass("torch.Tensor")
        case ("torch.nn.parameter", "Parameter"): return .tensorClass("torch.nn.parameter.Parameter")
        case ("torch", "UntypedStorage"), ("torch.storage", "UntypedStorage"): return .untypedStorage
        case ("torch", _), ("torch.storage", _):
            if let dtype = TorchDType.storageClasses[name] { return .storageClass(name, dtype) }
            if module == "torch", let dtype = TorchDType.dtypes[name] { return .dtype(dtype) }
            return nil
        default:
            return nil
        }
    }

    var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensor: return "torch._utils._rebuild_tensor"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildTensorV3: return "torch._utils._rebuild_tensor_v3"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: return "torch._utils._rebuild_parameter_with_state"
        case .rebuildFromTypeV2: return "torch._tensor._rebuild_from_type_v2"
        case .tensorClass(let name): return name
        case .storageClass(let name, _): return "torch." + name
        case .untypedStorage: return "torch.storage.UntypedStorage"
        case .dtype(let dtype): return "torch." + dtype.name
        }
    }

    /// True for the functions that produce a tensor.
    var isTensorRebuild: Bool {
        switch self {
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3: return true
        default: return false
        }
    }
}
