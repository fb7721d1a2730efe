@testable import CUDABackend
import MNIST
import Testing

/// Where `MLP_CUDA_BACKWARD_BLOCKS` cuts a layer's weights (`BlockedLayer`): every row in exactly one block, blocks
/// in order, each but the last a whole multiple of 32 rows (empty ones only at the end) (so that every block's operands keep the matrices'
/// alignment). No GPU needed.
@Suite struct BlockedBackwardTests {
    @Test func theBlocksCoverTheRowsOnceInAlignedPieces() {
        var g = SeededGenerator(seed: 5)
        var sizes = [4096, 2048, 1000, 4097, 65]
        for _ in 0..<40 { sizes.append(Int.random(in: 64...9_000, using: &g)) }
        for inputSize in sizes {
            for blocks in 2...7 {
                let layer = BlockedLayer(weights: 0x1000, inputSize: inputSize, outputSize: 37, blocks: blocks)
                #expect(layer.start(ofBlock: 0) == 0)
                #expect(layer.start(ofBlock: blocks) == inputSize, "\(inputSize) rows in \(blocks) blocks")
                for j in 0..<blocks {
                    let r0 = layer.start(ofBlock: j), r1 = layer.start(ofBlock: j + 1)
                    #expect(r0 <= r1)
                    // (Blocks past the rows, when rounding to 32 leaves some empty, start at the end and are skipped.)
                    if r0 < inputSize { #expect(r0 % 32 == 0, "block \(j) of \(inputSize) rows starts at \(r0)") }
                    if r1 < inputSize { #expect((r1 - r0) % 32 == 0) }
                }
                #expect(layer.parameterCount == inputSize * 37 + 37)
            }
        }
    }
}
