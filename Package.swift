// swift-tools-version:6.0
import PackageDescription

// One target per layer of the system; data flows bytes → tensors → model → results.
let package = Package(
    name: "Inception",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Inception", targets: ["Inception"]),
        .executable(name: "inception", targets: ["InceptionCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // Register-blocked GEMM micro-kernels with run-time CPU dispatch (C: target attributes).
        .target(name: "CInceptionKernels"),
        // libjpeg-turbo / libpng calls with setjmp error capture.
        .target(
            name: "CInceptionImage",
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png")]
        ),
        // Tensor, operations, threading.
        .target(name: "InceptionCore", dependencies: ["CInceptionKernels"]),
        // Inception V1 (and variants) as data: layers, branches, variable names, counts.
        .target(name: "InceptionModels", dependencies: ["InceptionCore"]),
        // Checkpoint and array formats: TF V1/V2 bundles, safetensors, .npy.
        .target(name: "InceptionFormats", dependencies: ["InceptionCore"]),
        // Image decoding and slim's preprocessing, labels.
        .target(name: "InceptionImages", dependencies: ["InceptionCore", "CInceptionImage"],
                resources: [.process("Resources")]),
        // The public library: ties weights, images and models together.
        .target(name: "Inception", dependencies: [
            "InceptionCore", "InceptionModels", "InceptionFormats", "InceptionImages",
            .product(name: "Crypto", package: "swift-crypto"),  // SHA-256 of downloaded weights
        ]),
        // Gradients, optimizers, data sets and augmentation, the training loop, run checkpoints.
        .target(name: "InceptionTraining", dependencies: ["Inception"]),
        // HTTP serving: batching queue, endpoints, metrics, web page.
        .target(name: "InceptionServer", dependencies: [
            "Inception",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(
            name: "InceptionCLI",
            dependencies: ["Inception", "InceptionTraining", "InceptionServer",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "InceptionCoreTests", dependencies: ["InceptionCore"]),
        .testTarget(name: "InceptionModelsTests", dependencies: ["InceptionModels"]),
        .testTarget(name: "InceptionFormatsTests", dependencies: ["InceptionFormats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "InceptionImagesTests", dependencies: ["InceptionImages"], resources: [.copy("Fixtures")]),
        .testTarget(name: "InceptionTests", dependencies: ["Inception"], resources: [.copy("Fixtures")]),
        .testTarget(name: "InceptionTrainingTests", dependencies: ["InceptionTraining", "Inception"], resources: [.copy("Fixtures")]),
        .testTarget(name: "InceptionServerTests", dependencies: ["InceptionServer",
                                                                 .product(name: "HummingbirdTesting", package: "hummingbird")]),
    ]
)
