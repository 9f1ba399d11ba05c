#include "allocation_meter.hpp"

#include <gradtape/memory.hpp>

#include <atomic>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)

namespace allocation_meter {
bool active()
{
    return false;
}
void reset() {}
std::size_t peak_growth()
{
    return 0;
}
std::uint64_t blocks()
{
    return 0;
}
}  // namespace allocation_meter

#else

#include <cerrno>
#include <cstdlib>

#include <malloc.h>

// glibc's own allocator, under the names it exports for exactly this use.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {

// Signed: glibc frees, through free, a few blocks it allocated without malloc.
std::atomic<std::ptrdiff_t> held{0};
std::atomic<std::ptrdiff_t> peak{0};
std::atomic<std::ptrdiff_t> base{0};
std::atomic<std::uint64_t> handed_out{0};

void* counted(void* memory)
{
    if (memory != nullptr) {
        handed_out.fetch_add(1, std::memory_order_relaxed);
        const auto size = std::ptrdiff_t(malloc_usable_size(memory));
        const std::ptrdiff_t now = held.fetch_add(size) + size;
        for (std::ptrdiff_t seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
        }
    }
    return memory;
}

void uncount(void* memory)
{
    if (memory != nullptr) {
        held.fetch_sub(std::ptrdiff_t(malloc_usable_size(memory)));
    }
}

}  // namespace

extern "C" {

void* malloc(std::size_t size)
{
    return counted(__libc_malloc(size));
}

void* calloc(std::size_t count, std::size_t size)
{
    return counted(__libc_calloc(count, size));
}

void* realloc(void* memory, std::size_t size)
{
    uncount(memory);
    void* moved = __libc_realloc(memory, size);
    if (moved == nullptr && size != 0) {
        counted(memory);
        return nullptr;
    }
    return counted(moved);
}

void free(void* memory)
{
    uncount(memory);
    __libc_free(memory);
}

void* memalign(std::size_t alignment, std::size_t size)
{
    return counted(__libc_memalign(alignment, size));
}

void* aligned_alloc(std::size_t alignment, std::size_t size)
{
    return counted(__libc_memalign(alignment, size));
}

int posix_memalign(void** out, std::size_t alignment, std::size_t size)
{
    void* memory = counted(__libc_memalign(alignment, size));
    if (memory == nullptr) {
        return ENOMEM;
    }
    *out = memory;
    return 0;
}

}  // extern "C"

namespace allocation_meter {

bool active()
{
    return true;
}

// Tensor storage above 256 KiB is mapped by gradtape's allocator, not taken
// from malloc: its own count of bytes in use is added. Smaller blocks are
// then counted twice, which errs towards a failure, never away from one.
std::size_t tensor_base = 0;

void reset()
{
    base = held.load();
    peak = base.load();
    gradtape::reset_peak_memory();
    tensor_base = gradtape::memory_info().current_bytes;
}

std::uint64_t blocks()
{
    return handed_out.load();
}

std::size_t peak_growth()
{
    const std::ptrdiff_t growth = peak.load() - base.load();
    return (growth > 0 ? std::size_t(growth) : 0) + (gradtape::memory_info().peak_bytes - tensor_base);
}

}  // namespace allocation_meter

#endif
