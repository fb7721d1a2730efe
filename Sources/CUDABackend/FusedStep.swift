import Foundation
import MLPCore
import MNIST

/// A small network's whole training step as one cooperative kernel (`fused_train_step`, see `FusedStepKernel`):
/// the backend's `FusedTrainingStep`. It holds the kernel's descriptor of the network (uploaded once) and the
/// scratch the kernel needs beside the network's own buffers.
final class CUDAFusedStep: FusedTrainingStep {
    let backend: CUDABackend
    /// `FusedStepKernel.descriptorWords` words: the `FusedStep` struct of the kernel's source.
    let descriptor: DevicePointer<UInt64>
    /// Each layer's gradient with respect to its pre-activation values, `[maxBatch, outputs]`: the kernel keeps three
    /// layers' alive at once, more than the network's two scratch buffers.
    let layerGradients: [DevicePointer<Float>]
    /// `[2 × maxBatch]` each row's loss and correctness; `[2]` the grid barrier's count and generation.
    let rowStatistics: DevicePointer<Float>, barrier: DevicePointer<UInt32>
    /// With `MLP_CUDA_FUSED_TIMELINE=1`: the kernel's phases and barriers timed on the device (`FUSED_TIMELINE`),
    /// summed over launches and written to standard error when the step is freed.
    let timeline: DevicePointer<Float>?
    let maxBatch: Int

    /// Whether the kernel can run this network: at most `FusedStepKernel.maximumLayers` layers and
    /// `maximumOutputs` outputs.
    static func canRun(_ spec: NetworkSpec) -> Bool {
        spec.layerCount <= FusedStepKernel.maximumLayers && spec.outputSize <= FusedStepKernel.maximumOutputs
    }

    init(backend: CUDABackend, buffers b: FusedStepBuffers) throws {
        self.backend = backend
        maxBatch = b.maxBatch
        let spec = b.spec
        var gradients = [DevicePointer<Float>]()
        for l in 0..<spec.layerCount {
            gradients.append(try backend.allocate(Float.self, count: b.maxBatch * spec.layerSizes[l + 1]))
        }
        layerGradients = gradients
        rowStatistics = try backend.allocate(Float.self, count: 2 * b.maxBatch)
        barrier = try backend.allocate(UInt32.self, count: 2)
        timeline = backend.fusedStepTimeline ? try backend.allocate(Float.self, count: FusedStepKernel.timelineFloats) : nil
        let kind = UInt64(CUDABackend.kernelCode(of: b.optimizer.kind))
        var words: [UInt64] = [
            UInt64(spec.layerCount), spec.loss == .softmaxCrossEntropy ? 0 : 1,
            kind, b.optimizer.nesterov ? 1 : 0, UInt64(b.layout.count),
            UInt64(b.parameters.address), UInt64(b.gradients.address), UInt64(b.optimizerState.address),
            UInt64(b.inputs.address), UInt64(b.labels.address), UInt64(b.trainingMetrics.address),
            UInt64(rowStatistics.address), UInt64(barrier.address), UInt64(timeline?.address ?? 0),
        ]
        for l in 0..<FusedStepKernel.maximumLayers {
            guard l < spec.layerCount else {
                words += [UInt64](repeating: 0, count: 6)
                continue
            }
            let layer = b.layout.layers[l]
            words += [
                UInt64(layer.weightOffset), UInt64(layer.inputs), UInt64(layer.outputs),
                UInt64(Activation.allCases.firstIndex(of: spec.activation(ofLayer: l))!),
                UInt64(b.activations[l].address), UInt64(gradients[l].address),
            ]
        }
        precondition(words.count == FusedStepKernel.descriptorWords)
        descriptor = try backend.allocate(copying: words)
    }

    deinit {
        if let timeline {
            let t = backend.download(timeline, count: FusedStepKernel.timelineFloats)
            let launches = max(Double(t[FusedStepKernel.timelineFloats - 3]), 1)
            var parts = [String]()
            for phase in 0..<(FusedStepKernel.timelineFloats - 4) / 2 where t[2 * phase] > 0 || t[2 * phase + 1] > 0 {
                parts.append(String(format: "phase %d %.2f + barrier %.2f", phase, Double(t[2 * phase]) / launches / 1e3, Double(t[2 * phase + 1]) / launches / 1e3))
            }
            FileHandle.standardError.write(Data("fused step timeline, µs a launch over \(Int(launches)) launches: \(parts.joined(separator: ", "))\n".utf8))
            backend.free(timeline)
        }
        for p in layerGradients + [rowStatistics] { backend.free(p) }
        backend.free(barrier)
        backend.free(descriptor)
    }

    func run(_ data: ResidentDataset, batch: UnsafeBufferPointer<Int32>, normalization: Normalization, step: OptimizerStep) {
        precondition(batch.count >= 1 && batch.count <= maxBatch, "batch of \(batch.count) rows for a network sized for \(maxBatch)")
        backend.enqueueFusedStep(
            descriptor: descriptor, pixels: data.pixels, sourceLabels: data.labels, indices: batch,
            features: data.featureCount, normalization: normalization, step: step)
    }
}

extension CUDABackend {
    /// The fused step for networks `CUDAFusedStep.canRun`, on a device that launches cooperatively, where asked for
    /// (`preferred`, or `MLP_CUDA_FUSED_STEP=1` for every network). Not the default: on an H200 it was slower than
    /// the step op by op at every workload (small-128 86 µs against 55, latency-128 42–47 against 38; see
    /// Benchmarks/RESULTS.md).
    public func makeFusedStep(_ buffers: FusedStepBuffers, preferred: Bool?) throws -> (any FusedTrainingStep)? {
        guard launchesCooperatively, CUDAFusedStep.canRun(buffers.spec), preferred ?? fusedStepSwitch ?? false else { return nil }
        try loadFusedStepKernel()
        return try CUDAFusedStep(backend: self, buffers: buffers)
    }
}
