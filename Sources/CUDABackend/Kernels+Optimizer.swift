extension Kernels {
    /// The optimizer update over a flat buffer, alone or with the next batch's gather in the same launch.
    static let optimizer = #"""
// The optimizer's values for a launch. h (optimizer_update's parameter, set in a recorded step's node before each
// replay): learning rate, momentum, weight decay, beta1, beta2, epsilon,
// 1 - beta1^t, 1 - beta2^t. kind: 0 sgd, 1 adam, 2 adamw. The bias corrections are folded into two per-launch factors.
struct OptimizerValues {
    float lr, momentum, weight_decay, beta1, beta2, epsilon, step_size, inv_root_c2;
    int kind, nesterov;
    bool first_state, second_state;   // whether the state has a first slot (momentum, or Adam's m) and a second (v)
};

__device__ __forceinline__ OptimizerValues optimizer_values(const float* h, int kind, int nesterov) {
    OptimizerValues o;
    o.lr = h[0]; o.momentum = h[1]; o.weight_decay = h[2]; o.beta1 = h[3]; o.beta2 = h[4]; o.epsilon = h[5];
    o.step_size = h[0] / h[6];
    o.inv_root_c2 = 1.f / sqrtf(h[7]);
    o.kind = kind; o.nesterov = nesterov;
    o.first_state = kind != 0 || o.momentum > 0.f;
    o.second_state = kind != 0;
    return o;
}

// One parameter's new value from its gradient d; s1 and s2 (its state slots, as loaded) become the new state.
__device__ __forceinline__ float updated_parameter(const OptimizerValues& o, float param, float d, float& s1, float& s2) {
    if (o.kind == 0) {
        float e = o.weight_decay * param + d;
        if (o.momentum > 0.f) {
            float b = o.momentum * s1 + e;
            s1 = b;
            e = o.nesterov ? o.momentum * b + e : b;
        }
        return -o.lr * e + param;
    }
    float q = param, e = d;
    if (o.kind == 2) q *= 1.f - o.lr * o.weight_decay; else e = o.weight_decay * q + e;
    float m = o.beta1 * s1 + (1.f - o.beta1) * e;
    float v = o.beta2 * s2 + (1.f - o.beta2) * e * e;
    s1 = m;
    s2 = v;
    // lr * (m / c1) / (sqrt(v / c2) + epsilon), with a fast division (a few ulps from the host's rounding, well
    // inside mlp check's tolerance): three IEEE divisions and a square root made the update issue-bound.
    return q - o.step_size * __fdividef(m, __fsqrt_rn(v) * o.inv_root_c2 + o.epsilon);
}

// The update of `count` parameters. State: momentum, or the two moments at state and state + stride (stride = count
// for the whole buffer, the whole buffer's count for one layer's part of it). Each thread takes UPDATE_UNROLL
// elements a block apart, all their loads issued before the first is used (one element per thread left each thread
// waiting on memory for each).
#define UPDATE_UNROLL 4
// The step's values by value (optimizer_values's h), so that a recorded step sets them in the graph before each
// replay instead of copying them to the device in a node of their own.
struct OptimizerArguments { float h[8]; };
// The update of the blocks `block` of `blocks` take (UPDATE_UNROLL elements a thread, blocks apart).
// With `mirror` (not null), each new value is also written rounded to bf16 there, at the same index: the copy the
// bf16 products read (`--precision bf16`), kept current by the update that changes the values.
__device__ __forceinline__ void update_range(float* p, const float* g, float* state, long count, long stride, const OptimizerValues& o,
                                             unsigned short* mirror, long block, long blocks) {
    long step = blocks * blockDim.x * UPDATE_UNROLL;
    for (long base = block * (long)blockDim.x * UPDATE_UNROLL + threadIdx.x; base < count; base += step) {
        float param[UPDATE_UNROLL], d[UPDATE_UNROLL], s1[UPDATE_UNROLL], s2[UPDATE_UNROLL];
#pragma unroll
        for (int j = 0; j < UPDATE_UNROLL; j++) {
            long i = base + (long)j * blockDim.x;
            bool in = i < count;
            param[j] = in ? p[i] : 0.f;
            d[j] = in ? g[i] : 0.f;
            s1[j] = in && o.first_state ? state[i] : 0.f;
            s2[j] = in && o.second_state ? state[stride + i] : 0.f;
        }
#pragma unroll
        for (int j = 0; j < UPDATE_UNROLL; j++) {
            long i = base + (long)j * blockDim.x;
            if (i >= count) break;
            float updated = updated_parameter(o, param[j], d[j], s1[j], s2[j]);
            p[i] = updated;
            if (mirror) mirror[i] = bf16_bits(updated);
            if (o.first_state) state[i] = s1[j];
            if (o.second_state) state[stride + i] = s2[j];
        }
    }
}

__global__ void optimizer_update(float* p, const float* g, float* state, long count, long stride, int kind, int nesterov, const OptimizerArguments values,
                                 unsigned short* mirror) {
    update_range(p, g, state, count, stride, optimizer_values(values.h, kind, nesterov), mirror, blockIdx.x, gridDim.x);
}

// optimizer_update in its first update_blocks blocks, and in the rest, gather_blocks a row, gather_batch_inline of
// the next step's batch: the step's last launch gathers what the next step starts from, so that the next step's
// recording starts with its first product. The batch's buffers must have no reader left in this step. Its parameters
// take 3,992 bytes: within the 4 KB that drivers before CUDA 12.1 allow.
__global__ void optimizer_update_gather(float* p, const float* g, float* state, long count, long stride, int kind, int nesterov,
                                        const OptimizerArguments values, unsigned short* mirror, int update_blocks,
                                        float* inputs, int* labels, const void* samples, int float_values, const int* source_labels,
                                        int features, float scale, float shift, int gather_blocks, InlineIndices indices) {
    if ((int)blockIdx.x < update_blocks) {
        update_range(p, g, state, count, stride, optimizer_values(values.h, kind, nesterov), mirror, blockIdx.x, update_blocks);
    } else {
        int b = blockIdx.x - update_blocks, r = b / gather_blocks;
        gather_row(inputs, labels, samples, float_values, source_labels, r, indices.v[r], features, scale, shift, b % gather_blocks, gather_blocks);
    }
}
"""#
}
