// The training module: `import InceptionTraining` brings the whole library (tensors, the model,
// weights, images) along with gradients, optimizers, the trainer, data sets and run checkpoints.
@_exported import Inception
