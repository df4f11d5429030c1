import InceptionCore

/// The paper's GoogLeNet and torchvision's, as data, beside slim's `InceptionV1`.
///
/// Scopes and endpoint names follow slim's, so the three networks read alike and a feature
/// endpoint means the same block in each; the torchvision names map onto these in
/// `Inception.TorchvisionNames`. The table (channels, 224x224 sizes) is the paper's Table 1.
public enum GoogLeNet {
    public static let scope = "GoogLeNet"

    /// "Going deeper with convolutions" as Caffe's bvlc_googlenet builds it: real 5x5 convolutions
    /// in Branch_2, LRN (size 5, alpha 1e-4, beta 0.75) after the first pool and after Conv2d_2c_3x3,
    /// convolutions with biases (no batch norm), Caffe's explicit padding and ceil-mode pooling
    /// (a 3x3 stride-2 pool before Mixed_5b where slim has 2x2).
    public static let paper = Network(
        architecture: .googlenet, scope: scope,
        rootBlock: [
            .conv("Conv2d_1a_7x7", 64, 7, stride: 2, padding: .symmetric(3)),            // 112x112x64
            .maxPool("MaxPool_2a_3x3", 3, stride: 2, padding: .symmetricCeil(0)),        // 56x56x64
            .localResponseNorm(name: "LRN_2a", LocalResponseNorm()),                     // 56x56x64
            .conv("Conv2d_2b_1x1", 64, 1, padding: .valid),                              // 56x56x64
            .conv("Conv2d_2c_3x3", 192, 3, padding: .symmetric(1)),                      // 56x56x192
            .localResponseNorm(name: "LRN_2d", LocalResponseNorm()),                     // 56x56x192
            .maxPool("MaxPool_3a_3x3", 3, stride: 2, padding: .symmetricCeil(0)),        // 28x28x192
        ],
        inceptionBlocks: blocks(branch2Kernel: 5, lastPool: .maxPool("MaxPool_5a_3x3", 3, stride: 2, padding: .symmetricCeil(0))),
        headPoolWindow: Window2D(7, stride: 1, padding: .valid),
        logitsScope: "Logits/Conv2d_0c_1x1",
        auxiliaryHeads: ["4b", "4e"].map { block in
            AuxiliaryHead(name: "AuxLogits_\(block)", endpoint: "Mixed_\(block)", layers: [
                .avgPool(name: "AvgPool_1a_5x5", window: Window2D(5, stride: 3, padding: .valid)),  // 4x4x512|528
                .conv("Conv2d_1b_1x1", 128, 1, padding: .valid),                                   // 4x4x128
                .fullyConnected(name: "Conv2d_2a_4x4", outputChannels: 1024,                      // 1x1x1024
                                window: Window2D(4, stride: 1, padding: .valid)),
            ], logitsName: "Conv2d_2b_1x1")
        })

    /// torchvision's `googlenet`: slim's layer sizes (3x3 in Branch_2, 2x2 pool before Mixed_5b),
    /// PyTorch's explicit padding and ceil-mode max pools, batch norm with a learned scale
    /// (epsilon 0.001), a global average pool, auxiliary heads on a 4x4 adaptive average pool.
    public static let torchvision = Network(
        architecture: .googlenetTorchvision, scope: scope,
        rootBlock: [
            .conv("Conv2d_1a_7x7", 64, 7, stride: 2, padding: .symmetric(3)),            // 112x112x64
            .maxPool("MaxPool_2a_3x3", 3, stride: 2, padding: .symmetricCeil(0)),        // 56x56x64
            .conv("Conv2d_2b_1x1", 64, 1, padding: .valid),                              // 56x56x64
            .conv("Conv2d_2c_3x3", 192, 3, padding: .symmetric(1)),                      // 56x56x192
            .maxPool("MaxPool_3a_3x3", 3, stride: 2, padding: .symmetricCeil(0)),        // 28x28x192
        ],
        inceptionBlocks: blocks(branch2Kernel: 3, lastPool: .maxPool("MaxPool_5a_2x2", 2, stride: 2, padding: .symmetricCeil(0))),
        headPoolWindow: Window2D(7, stride: 1, padding: .valid),
        logitsScope: "Logits/Conv2d_0c_1x1",
        auxiliaryHeads: ["4b", "4e"].map { block in
            AuxiliaryHead(name: "AuxLogits_\(block)", endpoint: "Mixed_\(block)", layers: [
                .adaptiveAvgPool(name: "AdaptiveAvgPool_1a_4x4", outputHeight: 4, outputWidth: 4),  // 4x4x512|528
                .conv("Conv2d_1b_1x1", 128, 1, padding: .valid),                                   // 4x4x128
                .fullyConnected(name: "Conv2d_2a_4x4", outputChannels: 1024,                      // 1x1x1024
                                window: Window2D(4, stride: 1, padding: .valid)),
            ], logitsName: "Conv2d_2b_1x1")
        })

    /// The nine modules with PyTorch/Caffe padding; only Branch_2's kernel and the pool before
    /// Mixed_5b differ between the paper and torchvision.
    private static func blocks(branch2Kernel k: Int, lastPool: Layer) -> [Layer] {
        [
            //      name        B0    B1          B2         B3
            .mixed("Mixed_3b", 64, (96, 128), (16, 32), 32, branch2Kernel: k, explicitPadding: true),     // 28x28x256
            .mixed("Mixed_3c", 128, (128, 192), (32, 96), 64, branch2Kernel: k, explicitPadding: true),   // 28x28x480
            .maxPool("MaxPool_4a_3x3", 3, stride: 2, padding: .symmetricCeil(0)),                        // 14x14x480
            .mixed("Mixed_4b", 192, (96, 208), (16, 48), 64, branch2Kernel: k, explicitPadding: true),    // 14x14x512
            .mixed("Mixed_4c", 160, (112, 224), (24, 64), 64, branch2Kernel: k, explicitPadding: true),   // 14x14x512
            .mixed("Mixed_4d", 128, (128, 256), (24, 64), 64, branch2Kernel: k, explicitPadding: true),   // 14x14x512
            .mixed("Mixed_4e", 112, (144, 288), (32, 64), 64, branch2Kernel: k, explicitPadding: true),   // 14x14x528
            .mixed("Mixed_4f", 256, (160, 320), (32, 128), 128, branch2Kernel: k, explicitPadding: true), // 14x14x832
            lastPool,                                                                                    // 7x7x832
            .mixed("Mixed_5b", 256, (160, 320), (32, 128), 128, branch2Kernel: k, explicitPadding: true), // 7x7x832
            .mixed("Mixed_5c", 384, (192, 384), (48, 128), 128, branch2Kernel: k, explicitPadding: true), // 7x7x1024
        ]
    }
}
