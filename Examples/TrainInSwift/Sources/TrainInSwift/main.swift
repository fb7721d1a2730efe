import CPUBackend
import Foundation
import MLPCore
import MNIST

// MNIST (the repository's Data/mnist, or $MLP_DATA_DIR), a 784-128-10 network, Adam, three epochs on the CPU.
let mnist = try Dataset.load(directory: DatasetLocator.locate(.mnist))
let configuration = try TrainingConfiguration(
    network: NetworkSpec(layerSizes: [784, 128, 10]), optimizer: .adam(learningRate: 1e-3),
    schedule: LearningRateSchedule(base: 1e-3), epochs: 3, batchSize: 128, seed: 1)
let trainer = try Trainer(configuration: configuration, backend: CPUBackend(), training: mnist.train, evaluation: mnist.test)
for epoch in try trainer.run() {
    print("epoch \(epoch.epoch): train loss \(epoch.trainLoss), test accuracy \(epoch.testAccuracy ?? 0)")
}
try Checkpoint(trainer: trainer).write(to: URL(fileURLWithPath: "example.safetensors"))
print("wrote example.safetensors (mlp eval --checkpoint example.safetensors)")
