#include "gateway/app/GatewayApp.h"

#include <malloc.h>

#include <iostream>

namespace {

// glibc gives each busy thread its own heap and hands memory back to the kernel as soon as the top
// of a heap is free, only to grow it again on the next request: an mprotect(2) every few requests
// under load. A fixed trim threshold keeps up to 32 MiB of free top memory per heap (it also turns
// off glibc's sliding mmap threshold, so set that too: blocks of 1 MiB and more are mmap'ed).
const bool kMallocTuned = [] {
    mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    return true;
}();

}  // namespace

POCO_SERVER_MAIN(idem::app::GatewayApp)
