// Interposes the malloc family in the test executable (its definitions win over the C library's for the whole
// process) and forwards every call to glibc's own entry points, counting the calls made by threads that opted in.
#define _GNU_SOURCE
#include "AllocationCounter.h"
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

#if defined(__linux__) && defined(__GLIBC__)
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static _Thread_local int counting;
static atomic_long allocations;
int trap_on_allocation;

static inline void note(void) {
    if (counting) { atomic_fetch_add(&allocations, 1); if (trap_on_allocation) __builtin_trap(); }
}

void *malloc(size_t size) { note(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { note(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { note(); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    note();
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void free(void *pointer) { __libc_free(pointer); }

void mlp_count_allocations_on_this_thread(int enabled) { counting = enabled; }
long mlp_allocation_count(void) { return atomic_load(&allocations); }
void mlp_reset_allocation_count(void) { atomic_store(&allocations, 0); }
void mlp_trap(int on) { trap_on_allocation = on; }
#else
void mlp_count_allocations_on_this_thread(int enabled) { (void)enabled; }
long mlp_allocation_count(void) { return -1; }
void mlp_reset_allocation_count(void) {}
#endif
