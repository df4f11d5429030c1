/* Big float buffers on transparent huge pages where the kernel offers them. */
#define _GNU_SOURCE
#include "inception_kernels.h"
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define IK_HUGE_PAGE ((size_t)2 << 20)

float *ik_alloc_floats(ptrdiff_t count) {
    if (count < 1) count = 1;
    const size_t bytes = (((size_t)count * sizeof(float)) + 63) & ~(size_t)63;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= IK_HUGE_PAGE) {
        void *p = NULL;
        const size_t rounded = (bytes + IK_HUGE_PAGE - 1) & ~(IK_HUGE_PAGE - 1);
        if (posix_memalign(&p, IK_HUGE_PAGE, rounded) != 0) return NULL;
        madvise(p, rounded, MADV_HUGEPAGE);
        return p;
    }
#endif
    return aligned_alloc(64, bytes);
}

void ik_free_floats(float *p) { free(p); }
