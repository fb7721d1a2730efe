import MLPCore
import MNIST

/// The cpu backend's kernels for one instruction set, as plain functions: what a `CPUKernelsAVX512`-style
/// module exports after specialising the generic kernels for its ISA.
public struct KernelSet: Sendable {
    /// "avx512", "avx2", "baseline".
    public var name: String
    /// Floats per vector register.
    public var vectorWidth: Int
    public var gemm: @Sendable (GEMMArguments, GEMMWorkspace) -> Void
    /// `sparseGEMM`: a product that skips the depth steps where a tile of op(A)'s rows is all zeros (with its
    /// tiles' steps listed beforehand by `listSparseTiles` when the lists are given).
    public var sparseGEMM: @Sendable (GEMMArguments, GEMMWorkspace, SparseTileLists?) -> Void
    /// `listSparseTiles`.
    public var listSparseTiles: @Sendable (GEMMArguments, Range<Int>, SparseTileLists, GEMMWorkspace) -> Void
    public var biasActivation: @Sendable (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Range<Int>, Int, Activation) -> Void
    public var activationBackward: @Sendable (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int, Range<Int>, Activation) -> Void
    public var optimizer: @Sendable (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Range<Int>, OptimizerStep) -> Void
    public var gather: @Sendable (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Int32>, UnsafeRawPointer, SampleValueType, UnsafePointer<Int32>, UnsafePointer<Int32>, Range<Int>, Int, Normalization) -> Void
    /// `outputLayerRows` for a range of rows; returns their loss and correct count.
    public var outputLayer: @Sendable (OutputLayerArguments, Range<Int>) -> (loss: Float, correct: Float)

    /// The kernels of `ISA`. Call this from a module compiled for that ISA, so that the generic code is
    /// specialised there.
    @inlinable
    public static func make<ISA: KernelISA>(_ isa: ISA.Type, name: String) -> KernelSet {
        KernelSet(
            name: name,
            vectorWidth: ISA.Vector.scalarCount,
            gemm: { packedGEMM(ISA.self, $0, $1) },
            sparseGEMM: { CPUKernels.sparseGEMM(ISA.self, $0, $1, lists: $2) },
            listSparseTiles: { CPUKernels.listSparseTiles(ISA.self, $0, tiles: $1, into: $2, $3) },
            biasActivation: { biasActivationRows(ISA.self, values: $0, bias: $1, rows: $2, columns: $3, activation: $4) },
            activationBackward: { activationBackwardColumns(ISA.self, gradient: $0, biasGradient: $1, outputs: $2, rows: $3, columns: $4, columnRange: $5, activation: $6) },
            optimizer: { optimizerRange(ISA.self, parameters: $0, gradients: $1, state: $2, stateStride: $3, range: $4, step: $5) },
            gather: { gatherRows(ISA.self, inputs: $0, labels: $1, values: $2, valueType: $3, sourceLabels: $4, indices: $5, rows: $6, features: $7, normalization: $8) },
            outputLayer: { a, rows in
                outputLayerRows(ISA.self, outputs: a.outputs, gradient: a.gradient, inputGradient: a.inputGradient, inputs: a.inputs,
                                transposedWeights: a.transposedWeights, bias: a.bias, labels: a.labels, rows: rows,
                                inputSize: a.inputSize, outputSize: a.outputSize, loss: a.loss, gradientScale: a.gradientScale,
                                inputActivation: a.inputActivation)
            })
    }

    @inlinable
    public init(name: String, vectorWidth: Int, gemm: @escaping @Sendable (GEMMArguments, GEMMWorkspace) -> Void, sparseGEMM: @escaping @Sendable (GEMMArguments, GEMMWorkspace, SparseTileLists?) -> Void, listSparseTiles: @escaping @Sendable (GEMMArguments, Range<Int>, SparseTileLists, GEMMWorkspace) -> Void, biasActivation: @escaping @Sendable (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Range<Int>, Int, Activation) -> Void, activationBackward: @escaping @Sendable (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int, Range<Int>, Activation) -> Void, optimizer: @escaping @Sendable (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Range<Int>, OptimizerStep) -> Void, gather: @escaping @Sendable (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Int32>, UnsafeRawPointer, SampleValueType, UnsafePointer<Int32>, UnsafePointer<Int32>, Range<Int>, Int, Normalization) -> Void, outputLayer: @escaping @Sendable (OutputLayerArguments, Range<Int>) -> (loss: Float, correct: Float)) {
        self.name = name
        self.vectorWidth = vectorWidth
        self.gemm = gemm
        self.sparseGEMM = sparseGEMM
        self.listSparseTiles = listSparseTiles
        self.biasActivation = biasActivation
        self.activationBackward = activationBackward
        self.optimizer = optimizer
        self.gather = gather
        self.outputLayer = outputLayer
    }

    /// The baseline kernels (any x86-64 or arm64 CPU).
    public static let baseline = KernelSet.make(BaselineISA.self, name: "baseline")
}
