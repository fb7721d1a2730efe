/// The cuda backend's kernels, in CUDA C, compiled by NVRTC for the device's compute capability when the backend
/// starts. Each mirrors an operation of `Backend` (see its documentation for the definitions).
enum Kernels {
    static let source = #"""
extern "C" {

// Activation codes: 0 relu, 1 tanh, 2 sigmoid, 3 identity (the order of Activation.allCases).
__device__ __forceinline__ float activate(float z, int a) {
    switch (a) {
    case 0: return z > 0.f ? z : 0.f;
    case 1: return tanhf(z);
    case 2: return 1.f / (1.f + expf(-z));
    default: return z;
    }
}

__device__ __forceinline__ float derivative(float y, int a) {
    switch (a) {
    case 0: return y > 0.f ? 1.f : 0.f;
    case 1: return 1.f - y * y;
    case 2: return y * (1.f - y);
    default: return 1.f;
    }
}

// inputs[r, f] = pixels[indices[r], f] * scale + shift (rounded twice, as on the host: no fused multiply-add).
__global__ void gather_batch(float* inputs, int* labels, const unsigned char* pixels, const unsigned char* source_labels,
                             const int* indices, int batch, int features, float scale, float shift) {
    int r = blockIdx.y;
    long sample = indices[r];
    for (int f = blockIdx.x * blockDim.x + threadIdx.x; f < features; f += gridDim.x * blockDim.x) {
        inputs[(long)r * features + f] = __fadd_rn(__fmul_rn((float)pixels[sample * features + f], scale), shift);
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) labels[r] = source_labels[sample];
}

// values[r, c] = f(values[r, c] + bias[c])
__global__ void bias_activation(float* values, const float* bias, long count, int columns, int activation) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x) {
        values[i] = activate(values[i] + bias[i % columns], activation);
    }
}

// Block (32 columns, 16 row groups): gradient[r, c] *= f'(outputs[r, c]); bias_gradient[c] = sum over rows.
// A warp reads 32 consecutive columns of a row (coalesced); each of the 16 row groups sums its rows, then one
// thread per column adds the 16 partial sums in a fixed order (the same result every run).
__global__ void activation_backward(float* gradient, float* bias_gradient, const float* outputs, int rows, int columns, int activation) {
    __shared__ float partial[16][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float sum = 0.f;
    if (c < columns) {
        for (int r = threadIdx.y; r < rows; r += 16) {
            long i = (long)r * columns + c;
            float d = gradient[i] * derivative(outputs[i], activation);
            gradient[i] = d;
            sum += d;
        }
    }
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < columns) {
        float total = 0.f;
        for (int k = 0; k < 16; k++) total += partial[k][threadIdx.x];
        bias_gradient[c] = total;
    }
}

// One thread per row: loss (0 softmax cross-entropy, 1 squared error), its gradient times scale, the argmax.
__global__ void loss_rows(float* gradient, float* metrics, int* predictions, const float* outputs, const int* labels,
                          int rows, int columns, int loss, float scale) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* z = outputs + (long)r * columns;
    int label = labels[r];
    int best = 0;
    for (int c = 1; c < columns; c++) if (z[c] > z[best]) best = c;
    float row_loss = 0.f;
    if (loss == 0) {
        float m = z[best], sum = 0.f;
        for (int c = 0; c < columns; c++) sum += expf(z[c] - m);
        row_loss = m + logf(sum) - z[label];
        if (gradient) {
            for (int c = 0; c < columns; c++) gradient[(long)r * columns + c] = expf(z[c] - m) / sum * scale;
            gradient[(long)r * columns + label] -= scale;
        }
    } else {
        for (int c = 0; c < columns; c++) {
            float d = z[c] - (c == label ? 1.f : 0.f);
            row_loss += d * d;
            if (gradient) gradient[(long)r * columns + c] = scale * 2.f * d;
        }
    }
    if (predictions) predictions[r] = best;
    atomicAdd(&metrics[0], row_loss);
    if (best == label) atomicAdd(&metrics[1], 1.f);
}

// kind: 0 sgd, 1 adam, 2 adamw. State: momentum, or the two moments at state and state + count.
// h: learning rate, momentum, weight decay, beta1, beta2, epsilon, 1 - beta1^t, 1 - beta2^t (in device memory, so
// that a recorded step reads each step's values).
__global__ void optimizer_update(float* p, const float* g, float* state, long count, int kind, int nesterov, const float* h) {
    float lr = h[0], momentum = h[1], weight_decay = h[2], beta1 = h[3], beta2 = h[4], epsilon = h[5], c1 = h[6], c2 = h[7];
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x) {
        float param = p[i];
        float d = g[i];
        if (kind == 0) {
            d = weight_decay * param + d;
            if (momentum > 0.f) {
                float b = momentum * state[i] + d;
                state[i] = b;
                d = nesterov ? momentum * b + d : b;
            }
            p[i] = -lr * d + param;
        } else {
            if (kind == 2) param *= 1.f - lr * weight_decay; else d = weight_decay * param + d;
            float m = beta1 * state[i] + (1.f - beta1) * d;
            float v = beta2 * state[count + i] + (1.f - beta2) * d * d;
            state[i] = m;
            state[count + i] = v;
            p[i] = param - lr * (m / c1) / (sqrtf(v / c2) + epsilon);
        }
    }
}

}
"""#
}
