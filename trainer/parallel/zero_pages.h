// zero_pages: "free after use" for the host buffers of the sharded state
// (ZeRO-2 gradients, ZeRO-3 parameters on the cpu backend). The model
// addresses its weights and gradients at fixed offsets of one flat buffer;
// the parts a rank does not own are needed only for a while (a layer's
// weights around its forward / backward, a gradient bucket until it is
// reduce-scattered). zero_pages_release() zeroes a range and hands the
// whole pages inside it back to the kernel (madvise MADV_DONTNEED on
// private anonymous memory: they read back as zeros and take no memory
// until written again). Its meaning is exactly memset(p, 0, bytes), so
// correctness never depends on it, only the resident set does.
#pragma once

#include <stddef.h>

void zero_pages_release(void *p, size_t bytes);
