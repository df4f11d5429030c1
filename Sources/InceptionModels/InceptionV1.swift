import InceptionCore

/// Inception V1 as TF-slim's `nets/inception_v1.py` defines it, one line per endpoint.
///
/// Output sizes at 224x224 input are in the comments. Every Mixed block concatenates
/// Branch_0 (1x1) / Branch_1 (1x1 → 3x3) / Branch_2 (1x1 → 3x3) / Branch_3 (pool → 1x1).
public enum InceptionV1 {
    /// The variable scope of every variable: `InceptionV1/Mixed_4c/Branch_1/Conv2d_0b_3x3/weights`.
    public static let scope = "InceptionV1"
    /// slim's `inception_v1.default_image_size`.
    public static let defaultImageSize = 224

    /// The root block: the stem that takes the 224x224x3 image down to 28x28x192.
    public static let rootBlock: [Layer] = [
        .conv("Conv2d_1a_7x7", 64, 7, stride: 2),       // 112x112x64
        .maxPool("MaxPool_2a_3x3", 3, stride: 2),        // 56x56x64
        .conv("Conv2d_2b_1x1", 64, 1),                   // 56x56x64
        .conv("Conv2d_2c_3x3", 192, 3),                  // 56x56x192
        .maxPool("MaxPool_3a_3x3", 3, stride: 2),        // 28x28x192
    ]

    /// The nine Inception modules and the pools between them.
    public static let inceptionBlocks: [Layer] = [
        //      name        B0    B1          B2         B3
        .mixed("Mixed_3b", 64, (96, 128), (16, 32), 32),    // 28x28x256
        .mixed("Mixed_3c", 128, (128, 192), (32, 96), 64),  // 28x28x480
        .maxPool("MaxPool_4a_3x3", 3, stride: 2),           // 14x14x480
        .mixed("Mixed_4b", 192, (96, 208), (16, 48), 64),   // 14x14x512
        .mixed("Mixed_4c", 160, (112, 224), (24, 64), 64),  // 14x14x512
        .mixed("Mixed_4d", 128, (128, 256), (24, 64), 64),  // 14x14x512
        .mixed("Mixed_4e", 112, (144, 288), (32, 64), 64),  // 14x14x528
        .mixed("Mixed_4f", 256, (160, 320), (32, 128), 128), // 14x14x832
        .maxPool("MaxPool_5a_2x2", 2, stride: 2),           // 7x7x832
        .mixed("Mixed_5b", 256, (160, 320), (32, 128), 128, branch2Name: "Conv2d_0a_3x3"), // 7x7x832 (slim's scope quirk)
        .mixed("Mixed_5c", 384, (192, 384), (48, 128), 128), // 7x7x1024
    ]

    /// The 16 endpoint names of the base network, in order.
    public static let baseEndpoints: [String] = (rootBlock + inceptionBlocks).map(\.name)

    /// The head (scope `Logits`): `AvgPool_0a_7x7` (7x7 VALID) or a global mean (`global_pool`),
    /// then `Dropout_0b`, the 1x1 `Conv2d_0c_1x1` with biases to the classes, `SpatialSqueeze`,
    /// and the softmax `Predictions`.
    public static let avgPoolWindow = Window2D(7, stride: 1, padding: .valid)
    public static let logitsScope = "Logits/Conv2d_0c_1x1"
}

extension InceptionV1 {
    /// slim's network as data (no auxiliary heads: slim's Inception V1 has none).
    public static let network = Network(
        architecture: .inceptionV1, scope: scope, rootBlock: rootBlock, inceptionBlocks: inceptionBlocks,
        headPoolWindow: avgPoolWindow, logitsScope: logitsScope, auxiliaryHeads: [])
}
