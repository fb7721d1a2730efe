#ifndef MLP_ALLOCATION_COUNTER_H
#define MLP_ALLOCATION_COUNTER_H
// Counts heap allocations made by the threads that opted in, for the test that a warmed-up training step
// allocates nothing. The test binary's malloc family forwards to glibc's and counts on the way.

/// Starts (1) or stops (0) counting allocations made by the calling thread.
void mlp_count_allocations_on_this_thread(int enabled);
/// Allocations counted since the last reset.
long mlp_allocation_count(void);
void mlp_reset_allocation_count(void);
/// With 1, the next counted allocation executes a trap instruction (for finding where it comes from).
void mlp_trap(int on);
#endif
