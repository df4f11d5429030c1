/// How a window treats the border: TensorFlow's two schemes, and the explicit symmetric padding of
/// PyTorch and Caffe (for the original GoogLeNet and torchvision's).
public enum Padding: Sendable, Hashable {
    /// Output size ceil(input / stride); the zero (or, for max pooling, ignored) border is split
    /// with the smaller half *before* and the larger half *after*, as TensorFlow does. For a 7x7
    /// stride-2 window on 224 pixels that is 2 before and 3 after: a symmetric pad of 3 shifts the
    /// sampling grid by one pixel, the classic cause of failed ports of TF weights.
    case same
    /// No padding: output size ceil((input − kernel + 1) / stride).
    case valid
    /// `p` on each side; output floor((input + 2p − kernel) / stride) + 1 (PyTorch and Caffe
    /// convolutions, PyTorch pooling).
    case symmetric(Int)
    /// `p` on each side with ceil rounding: output ceil((input + 2p − kernel) / stride) + 1, less one
    /// if the last window would start in the padding (PyTorch's `ceil_mode=True`, Caffe pooling).
    /// The extra border after the input never contributes (max pooling ignores it).
    case symmetricCeil(Int)
}

/// The placement of a 2-D sliding window (convolution kernel or pooling window) over an NHWC input.
public struct Window2D: Sendable, Equatable {
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideHeight: Int
    public var strideWidth: Int
    public var padding: Padding

    public init(kernel: (Int, Int), stride: (Int, Int) = (1, 1), padding: Padding = .same) {
        precondition(kernel.0 > 0 && kernel.1 > 0 && stride.0 > 0 && stride.1 > 0)
        kernelHeight = kernel.0; kernelWidth = kernel.1
        strideHeight = stride.0; strideWidth = stride.1
        self.padding = padding
    }

    /// A square window.
    public init(_ kernel: Int, stride: Int = 1, padding: Padding = .same) {
        self.init(kernel: (kernel, kernel), stride: (stride, stride), padding: padding)
    }

    /// 1x1, stride 1, no padding (SAME and VALID add none to a 1x1 window): over NHWC pixels, a
    /// plain matrix product of each pixel's channel row with the weights.
    public var isPointwise: Bool {
        guard kernelHeight == 1 && kernelWidth == 1 && strideHeight == 1 && strideWidth == 1 else { return false }
        switch padding {
        case .same, .valid: return true
        case .symmetric(let p), .symmetricCeil(let p): return p == 0
        }
    }

    /// The output extent and the padding before, along one axis, per TF's rules;
    /// nil when a VALID window does not fit.
    public static func placement(input: Int, kernel: Int, stride: Int, padding: Padding)
        -> (output: Int, padBefore: Int)?
    {
        switch padding {
        case .same:
            let output = (input + stride - 1) / stride
            let total = max((output - 1) * stride + kernel - input, 0)
            return (output, total / 2)
        case .valid:
            guard input >= kernel else { return nil }
            return ((input - kernel) / stride + 1, 0)
        case .symmetric(let p):
            guard input + 2 * p >= kernel else { return nil }
            return ((input + 2 * p - kernel) / stride + 1, p)
        case .symmetricCeil(let p):
            guard input + 2 * p >= kernel else { return nil }
            var output = (input + 2 * p - kernel + stride - 1) / stride + 1
            if (output - 1) * stride >= input + p { output -= 1 }
            return (output, p)
        }
    }

    /// The geometry of this window over an input of the given spatial size; nil if it does not fit.
    public func geometry(inputHeight: Int, inputWidth: Int) -> WindowGeometry? {
        guard let h = Self.placement(input: inputHeight, kernel: kernelHeight, stride: strideHeight, padding: padding),
              let w = Self.placement(input: inputWidth, kernel: kernelWidth, stride: strideWidth, padding: padding)
        else { return nil }
        return WindowGeometry(window: self, inputHeight: inputHeight, inputWidth: inputWidth,
                              outputHeight: h.output, outputWidth: w.output,
                              padTop: h.padBefore, padLeft: w.padBefore)
    }
}

/// A window placed over a concrete input size.
public struct WindowGeometry: Sendable, Equatable {
    public let window: Window2D
    public let inputHeight: Int, inputWidth: Int
    public let outputHeight: Int, outputWidth: Int
    /// Padding before the first row / column (the rest of the padding goes after the last).
    public let padTop: Int, padLeft: Int
}
