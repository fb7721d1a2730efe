// A CUDA injection library that records when each kernel ran on the GPU, for `run.sh timeline`.
//
// The CUDA driver loads it into any program through CUDA_INJECTION64_PATH and calls InitializeInjection, which
// asks CUPTI for its concurrent-kernel activity records: each kernel's start and end on the GPU's clock, its stream,
// and the graph and graph node it was launched from. No events are added to the program's streams (the
// `MLP_CUDA_TRACE` mode adds one per operation, ~2 µs each), so the gaps between the kernels of a replayed step
// are the step's own, less what CUPTI's bookkeeping costs (the mode prints the step's time with and without it).
// This machine has no Nsight Systems; CUPTI comes with the toolkit.
//
// At exit it writes one line per kernel to MLP_TIMELINE_OUT (timeline.txt by default):
//   start_ns end_ns stream graph_id graph_node_id grid_x grid_y grid_z block_x name
// and then one line per other kind of record seen, counted: "# kind K: N records".
//
// Built on the GPU machine by run.sh: gcc -shared -fPIC timeline.c -I$CUDA/include -I$CUPTI/include -L$CUPTI/lib64 -lcupti
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>

static FILE *output;
static unsigned long long otherKinds[64];

static void CUPTIAPI bufferRequested(uint8_t **buffer, size_t *size, size_t *maxRecords) {
    *size = 16 << 20;
    *buffer = aligned_alloc(8, *size);
    *maxRecords = 0;  // as many as fit
}

static void CUPTIAPI bufferCompleted(CUcontext context, uint32_t streamId, uint8_t *buffer, size_t size, size_t validSize) {
    (void)context; (void)streamId; (void)size;
    CUpti_Activity *record = NULL;
    while (cuptiActivityGetNextRecord(buffer, validSize, &record) == CUPTI_SUCCESS) {
        if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || record->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            // Version 9 of the record: the fields read here sit at the same offsets in every later version
            // (new fields are appended), and CUPTI 12 and 13 both declare it.
            const CUpti_ActivityKernel9 *kernel = (const CUpti_ActivityKernel9 *)record;
            fprintf(output, "%llu %llu %u %u %llu %d %d %d %d %s\n",
                    (unsigned long long)kernel->start, (unsigned long long)kernel->end, kernel->streamId,
                    kernel->graphId, (unsigned long long)kernel->graphNodeId, kernel->gridX, kernel->gridY,
                    kernel->gridZ, kernel->blockX, kernel->name ? kernel->name : "?");
        } else if ((unsigned)record->kind < 64) {
            otherKinds[record->kind] += 1;
        }
    }
    free(buffer);
}

static void finish(void) {
    cuptiActivityFlushAll(1);
    for (int kind = 0; kind < 64; ++kind) {
        if (otherKinds[kind]) fprintf(output, "# kind %d: %llu records\n", kind, otherKinds[kind]);
    }
    fclose(output);
}

int InitializeInjection(void) {
    const char *path = getenv("MLP_TIMELINE_OUT");
    output = fopen(path ? path : "timeline.txt", "w");
    if (!output) return 0;
    if (cuptiActivityRegisterCallbacks(bufferRequested, bufferCompleted) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
        fprintf(output, "# CUPTI refused the kernel activity\n");
        fclose(output);
        return 0;
    }
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY);
    atexit(finish);
    return 1;
}
