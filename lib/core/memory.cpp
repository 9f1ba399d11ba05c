// The caching allocator behind every xt::xarray (memory.hpp).
//
// Sizes are rounded up to size classes: multiples of 64 bytes up to 256,
// then four classes per doubling (320, 384, 448, 512, 640, ...), so a block
// is at most a quarter larger than asked for and a freed block serves every
// later request of its class, as in jemalloc. Freed blocks of up to 256 KiB
// stay with the thread that freed them, in per-class stacks it alone touches;
// the rest, and what a thread cache has no room for, go to one cache shared
// under a lock, which evicts its least recently freed blocks beyond the limit
// (PyTorch's caching allocator keeps its blocks the same way, per stream).
// Blocks above 256 KiB are mapped on their own, aligned to 2 MiB from that
// size up so that the kernel can back them with transparent huge pages.
//
// What a training loop gains: after its first step every buffer comes from
// the cache, so no step maps fresh memory and pays a page fault per 4 KiB
// written, which made tensors above glibc's mmap threshold (32 MiB) 40 times
// slower to fill than smaller ones.

#include <gradtape/memory.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include <gradtape/error.hpp>

#include "core/diagnostics.hpp"
#include "core/static_tls.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define GRADTAPE_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRADTAPE_ADDRESS_SANITIZER 1
#endif
#endif
#if defined(GRADTAPE_ADDRESS_SANITIZER)
#include <sanitizer/asan_interface.h>
#endif

namespace gradtape {
namespace {

constexpr std::size_t block_alignment = 64;
constexpr std::size_t largest_thread_block = std::size_t{256} << 10;
constexpr std::size_t huge_page = std::size_t{2} << 20;
// Beyond this no system has the memory; the classes above it would overflow.
constexpr std::size_t largest_block = std::size_t{1} << 62;

struct size_class {
    std::size_t index;
    std::size_t bytes;
};

constexpr size_class class_of(std::size_t bytes)
{
    if (bytes <= 256) {
        const std::size_t step = bytes == 0 ? 0 : (bytes - 1) / 64;
        return {step, (step + 1) * 64};
    }
    const auto power = std::size_t(std::bit_width(bytes - 1) - 1);  // 2^power < bytes <= 2^(power + 1)
    const std::size_t base = std::size_t{1} << power;
    const std::size_t step = base / 4;
    const std::size_t quarter = (bytes - 1 - base) / step;
    return {4 + (power - 8) * 4 + quarter, base + (quarter + 1) * step};
}

constexpr std::size_t class_bytes(std::size_t index)
{
    if (index < 4) {
        return (index + 1) * 64;
    }
    const std::size_t base = std::size_t{1} << (8 + (index - 4) / 4);
    return base + ((index - 4) % 4 + 1) * (base / 4);
}

static_assert(class_of(1).bytes == 64 && class_of(256).bytes == 256 && class_of(257).bytes == 320);
static_assert(class_of(512).bytes == 512 && class_of(513).bytes == 640 && class_of(513).index == 8);
static_assert(class_of(4096).bytes == 4096 && class_of(4097).bytes == 5120);
static_assert(class_of(largest_block).bytes == largest_block);
static_assert(class_bytes(class_of(5121).index) == class_of(5121).bytes && class_bytes(3) == 256);

constexpr std::size_t thread_class_count = class_of(largest_thread_block).index + 1;
constexpr std::size_t class_count = class_of(largest_block).index + 1;

// A cached block must not be read or written: AddressSanitizer reports a
// use after free of a tensor's storage even though the memory is not freed.
void poison(void* block, std::size_t bytes)
{
#if defined(GRADTAPE_ADDRESS_SANITIZER)
    ASAN_POISON_MEMORY_REGION(block, bytes);
#else
    (void)block;
    (void)bytes;
#endif
}

void unpoison(void* block, std::size_t bytes)
{
#if defined(GRADTAPE_ADDRESS_SANITIZER)
    ASAN_UNPOISON_MEMORY_REGION(block, bytes);
#else
    (void)block;
    (void)bytes;
#endif
}

// In the kernel's madvise mode only regions that ask get huge pages; in
// always mode every aligned region does, and asking changes nothing.
bool huge_pages_on_request()
{
    static const bool on_request = [] {
        std::ifstream setting("/sys/kernel/mm/transparent_hugepage/enabled");
        std::string modes;
        std::getline(setting, modes);
        return modes.find("[madvise]") != std::string::npos;
    }();
    return on_request;
}

void* map_block(std::size_t bytes)
{
    const std::size_t span = bytes < huge_page ? bytes : bytes + huge_page;
    void* mapped = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) {
        return nullptr;
    }
    if (bytes < huge_page) {
        return mapped;
    }
    // A huge page backs only a 2 MiB-aligned range: map a huge page more and
    // give back what lies before and after the aligned block.
    const auto start = reinterpret_cast<std::uintptr_t>(mapped);
    const std::uintptr_t aligned = (start + huge_page - 1) & ~(huge_page - 1);
    if (aligned != start) {
        munmap(mapped, aligned - start);
    }
    if (start + span != aligned + bytes) {
        munmap(reinterpret_cast<void*>(aligned + bytes), start + span - (aligned + bytes));
    }
    if (huge_pages_on_request()) {
        madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
    }
    return reinterpret_cast<void*>(aligned);
}

void* system_allocate(std::size_t bytes)
{
    return bytes <= largest_thread_block ? std::aligned_alloc(block_alignment, bytes) : map_block(bytes);
}

void system_free(void* block, std::size_t bytes)
{
    unpoison(block, bytes);
    if (bytes <= largest_thread_block) {
        std::free(block);
    } else {
        munmap(block, bytes);
    }
}

// "512MiB", "1.5GB", "4096": bytes as GRADTAPE_MEMORY_CACHE_LIMIT gives them.
std::size_t parse_byte_count(std::string_view text)
{
    const auto refuse = [&] {
        throw argument_error("GRADTAPE_MEMORY_CACHE_LIMIT: '" + std::string(text) +
                             "' is not a byte count (write bytes, or a number with B, KB, MB, GB, TB, KiB, MiB, GiB "
                             "or TiB)");
    };
    std::size_t digits = 0;
    while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
        ++digits;
    }
    if (digits == 0) {
        refuse();
    }
    double number = 0;
    try {
        std::size_t used = 0;
        number = std::stod(std::string(text.substr(0, digits)), &used);
        if (used != digits) {
            refuse();
        }
    } catch (const std::logic_error&) {
        refuse();
    }
    std::string_view unit = text.substr(digits);
    while (!unit.empty() && unit.front() == ' ') {
        unit.remove_prefix(1);
    }
    constexpr std::array<std::pair<std::string_view, double>, 10> units{{{"KB", 1e3},
                                                                         {"MB", 1e6},
                                                                         {"GB", 1e9},
                                                                         {"TB", 1e12},
                                                                         {"KiB", 0x1p10},
                                                                         {"MiB", 0x1p20},
                                                                         {"GiB", 0x1p30},
                                                                         {"TiB", 0x1p40},
                                                                         {"B", 1},
                                                                         {"", 1}}};
    const auto found = std::find_if(units.begin(), units.end(), [&](const auto& u) { return u.first == unit; });
    if (found == units.end()) {
        refuse();
    }
    const double bytes = number * found->second;
    if (!(bytes < 0x1p63)) {
        refuse();
    }
    return std::size_t(bytes);
}

std::size_t default_cache_limit()
{
    if (const char* set = std::getenv("GRADTAPE_MEMORY_CACHE_LIMIT"); set != nullptr && *set != '\0') {
        return parse_byte_count(set);
    }
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_size = sysconf(_SC_PAGE_SIZE);
    constexpr std::size_t most = std::size_t{4} << 30;
    if (pages <= 0 || page_size <= 0) {
        return most;
    }
    return std::min(most, std::size_t(pages) * std::size_t(page_size) / 4);
}

struct cached_block {
    void* address;
    std::uint64_t freed_at;
};

// A thread's own cache. Only its thread touches the stacks; the counters are
// atomics written by that thread alone, so that memory_info can add them up.
struct thread_cache {
    std::array<std::vector<void*>, thread_class_count> stacks;
    std::size_t bytes = 0;
    std::size_t capacity = 0;
    std::uint64_t epoch = 0;
    // Bytes allocated less bytes freed since this thread last added them to
    // the process's count, and the most that has been since.
    std::atomic<std::int64_t> unpublished{0};
    std::atomic<std::int64_t> unpublished_high{0};
    std::atomic<std::uint64_t> allocations{0};
    std::atomic<std::uint64_t> hits{0};
    std::atomic<std::size_t> cached{0};
};

// A thread adds its count of bytes in use to the process's once it has
// changed by this much, which bounds how far off the peak can be.
constexpr std::int64_t publish_step = std::int64_t{1} << 20;

struct process_memory {
    std::mutex cache_mutex;
    std::array<std::vector<cached_block>, class_count> classes;
    std::size_t cached_bytes = 0;
    std::uint64_t clock = 0;

    std::mutex threads_mutex;
    std::vector<thread_cache*> threads;

    std::atomic<std::int64_t> in_use{0};
    std::atomic<std::int64_t> peak{0};
    // Counts of threads that have ended, and of allocations made while a
    // thread had no cache of its own.
    std::atomic<std::uint64_t> allocations{0};
    std::atomic<std::uint64_t> hits{0};
    // Bumped by empty_cache and set_memory_cache_limit: a thread whose cache
    // is of an older epoch empties it at its next allocation.
    std::atomic<std::uint64_t> epoch{0};
    std::atomic<std::size_t> limit{0};
    std::atomic<bool> limit_known{false};
    std::once_flag limit_read;
};

// Initialised before any code runs and never destroyed: tensors in other
// libraries' static objects, and in threads still running at exit, allocate
// and free before and after any constructor or destructor here would run.
union never_destroyed {
    constexpr never_destroyed() : memory() {}
    never_destroyed(const never_destroyed&) = delete;
    never_destroyed& operator=(const never_destroyed&) = delete;
    ~never_destroyed() {}
    process_memory memory;
};
constinit never_destroyed process_state;

process_memory& process()
{
    return process_state.memory;
}

std::size_t cache_limit()
{
    process_memory& memory = process();
    // A limit that does not parse throws here, at each allocation, until the
    // variable is corrected.
    if (!memory.limit_known.load(std::memory_order_acquire)) {
        std::call_once(memory.limit_read, [&] {
            memory.limit.store(default_cache_limit(), std::memory_order_relaxed);
            memory.limit_known.store(true, std::memory_order_release);
        });
    }
    return memory.limit.load(std::memory_order_relaxed);
}

void raise_peak(std::int64_t candidate)
{
    std::atomic<std::int64_t>& peak = process().peak;
    for (std::int64_t seen = peak.load(std::memory_order_relaxed);
         candidate > seen && !peak.compare_exchange_weak(seen, candidate, std::memory_order_relaxed);) {
    }
}

void publish(thread_cache& cache)
{
    const std::int64_t pending = cache.unpublished.load(std::memory_order_relaxed);
    const std::int64_t before = process().in_use.fetch_add(pending, std::memory_order_relaxed);
    raise_peak(before + cache.unpublished_high.load(std::memory_order_relaxed));
    cache.unpublished.store(0, std::memory_order_relaxed);
    cache.unpublished_high.store(0, std::memory_order_relaxed);
}

// Owner-only read-modify-writes: plain loads and stores, no locked instruction.
template <class N>
void add_to(std::atomic<N>& counter, N change)
{
    counter.store(counter.load(std::memory_order_relaxed) + change, std::memory_order_relaxed);
}

void count_in_use(thread_cache* cache, std::int64_t change)
{
    if (cache == nullptr) {
        const std::int64_t now = process().in_use.fetch_add(change, std::memory_order_relaxed) + change;
        raise_peak(now);
        return;
    }
    const std::int64_t pending = cache->unpublished.load(std::memory_order_relaxed) + change;
    cache->unpublished.store(pending, std::memory_order_relaxed);
    if (pending > cache->unpublished_high.load(std::memory_order_relaxed)) {
        cache->unpublished_high.store(pending, std::memory_order_relaxed);
    }
    if (pending >= publish_step || pending <= -publish_step) {
        publish(*cache);
    }
}

// The shared cache's least recently freed blocks go back to the system until
// it holds at most `keep` bytes. Called with cache_mutex held.
void evict_to(process_memory& memory, std::size_t keep)
{
    while (memory.cached_bytes > keep) {
        std::size_t oldest = class_count;
        for (std::size_t i = 0; i < class_count; ++i) {
            if (!memory.classes[i].empty() &&
                (oldest == class_count || memory.classes[i].front().freed_at < memory.classes[oldest].front().freed_at)) {
                oldest = i;
            }
        }
        auto& blocks = memory.classes[oldest];
        const std::size_t bytes = class_bytes(oldest);
        system_free(blocks.front().address, bytes);
        blocks.erase(blocks.begin());
        memory.cached_bytes -= bytes;
    }
}

// Gives a freed block to the shared cache, or to the system when the block
// alone is over the limit.
void give_to_shared(void* block, size_class size)
{
    process_memory& memory = process();
    const std::size_t limit = memory.limit.load(std::memory_order_relaxed);
    if (size.bytes <= limit) {
        const std::lock_guard lock(memory.cache_mutex);
        try {
            memory.classes[size.index].push_back({block, ++memory.clock});
            memory.cached_bytes += size.bytes;
            evict_to(memory, limit);
            return;
        } catch (const std::bad_alloc&) {
            // No room to note the block: it goes back to the system below.
        }
    }
    system_free(block, size.bytes);
}

void* take_from_shared(size_class size)
{
    process_memory& memory = process();
    const std::lock_guard lock(memory.cache_mutex);
    auto& blocks = memory.classes[size.index];
    if (blocks.empty()) {
        return nullptr;
    }
    void* block = blocks.back().address;
    blocks.pop_back();
    memory.cached_bytes -= size.bytes;
    return block;
}

void empty_shared()
{
    process_memory& memory = process();
    const std::lock_guard lock(memory.cache_mutex);
    evict_to(memory, 0);
}

// With `to_shared`, as a thread ends: its blocks serve the threads that remain.
void empty_thread_cache(thread_cache& cache, bool to_shared)
{
    for (std::size_t i = 0; i < thread_class_count; ++i) {
        for (void* block : cache.stacks[i]) {
            if (to_shared) {
                give_to_shared(block, {i, class_bytes(i)});
            } else {
                system_free(block, class_bytes(i));
            }
        }
        cache.stacks[i].clear();
    }
    cache.bytes = 0;
    cache.cached.store(0, std::memory_order_relaxed);
}

// The thread's cache: made at its first allocation, emptied into the shared
// cache when the thread ends. Tensors in thread_local objects destroyed after
// that (a thread's tapes) free their storage through the shared cache.
thread_local thread_cache* this_thread_cache GRADTAPE_STATIC_TLS = nullptr;
thread_local bool this_thread_ended GRADTAPE_STATIC_TLS = false;

struct thread_cache_owner {
    thread_cache_owner() = default;
    thread_cache_owner(const thread_cache_owner&) = delete;
    thread_cache_owner& operator=(const thread_cache_owner&) = delete;
    ~thread_cache_owner()
    {
        thread_cache* cache = this_thread_cache;
        this_thread_cache = nullptr;
        this_thread_ended = true;
        if (cache == nullptr) {
            return;
        }
        empty_thread_cache(*cache, true);
        publish(*cache);
        process_memory& memory = process();
        {
            const std::lock_guard lock(memory.threads_mutex);
            std::erase(memory.threads, cache);
            memory.allocations.fetch_add(cache->allocations.load(std::memory_order_relaxed), std::memory_order_relaxed);
            memory.hits.fetch_add(cache->hits.load(std::memory_order_relaxed), std::memory_order_relaxed);
        }
        delete cache;
    }
};

thread_cache* make_thread_cache()
{
    thread_local thread_cache_owner owner;
    auto cache = std::make_unique<thread_cache>();
    process_memory& memory = process();
    cache->epoch = memory.epoch.load(std::memory_order_relaxed);
    {
        const std::lock_guard lock(memory.threads_mutex);
        memory.threads.push_back(cache.get());
    }
    this_thread_cache = cache.release();
    return this_thread_cache;
}

// A thread cache keeps at most this much: a quarter of the limit, and no
// more than 16 MiB, so that the blocks a thread frees serve the others too.
std::size_t thread_cache_capacity(std::size_t limit)
{
    return std::min(limit / 4, std::size_t{16} << 20);
}

// The system's block, or after a refusal, the system's block once every
// cached block is given back.
void* allocate_from_system(std::size_t bytes)
{
    if (void* block = system_allocate(bytes)) {
        return block;
    }
    empty_cache();
    if (void* block = system_allocate(bytes)) {
        return block;
    }
    detail::last_refused_bytes() = bytes;
    throw std::bad_alloc();
}

// The slow paths below are functions of their own, so that the fast paths,
// inlined into allocate_storage and its kin, save no registers.

// This thread's cache as current_thread_cache gives it, when the fast path
// cannot: made at the thread's first allocation, emptied when empty_cache or
// set_memory_cache_limit was called since its last one; none once the
// thread's destructors have run.
[[gnu::noinline]] thread_cache* refresh_thread_cache()
{
    const std::size_t limit = cache_limit();
    thread_cache* cache = this_thread_cache;
    if (cache == nullptr) {
        if (this_thread_ended) {
            return nullptr;
        }
        cache = make_thread_cache();
    } else {
        empty_thread_cache(*cache, false);
    }
    cache->epoch = process().epoch.load(std::memory_order_relaxed);
    cache->capacity = thread_cache_capacity(limit);
    return cache;
}

thread_cache* current_thread_cache()
{
    thread_cache* cache = this_thread_cache;
    if (cache != nullptr && cache->epoch == process().epoch.load(std::memory_order_relaxed)) [[likely]] {
        return cache;
    }
    return refresh_thread_cache();
}

[[gnu::noinline]] std::pair<void*, bool> take_shared_or_new_block(size_class size)
{
    void* block = take_from_shared(size);
    const bool hit = block != nullptr;
    if (!hit) {
        block = allocate_from_system(size.bytes);
    }
    unpoison(block, size.bytes);
    return {block, hit};
}

// A block of `size` from the thread's cache, the shared cache or the system,
// and whether a cache had it.
std::pair<void*, bool> take_block(thread_cache* cache, size_class size)
{
    if (cache != nullptr && size.index < thread_class_count && !cache->stacks[size.index].empty()) [[likely]] {
        auto& stack = cache->stacks[size.index];
        void* block = stack.back();
        stack.pop_back();
        cache->bytes -= size.bytes;
        cache->cached.store(cache->bytes, std::memory_order_relaxed);
        unpoison(block, size.bytes);
        return {block, true};
    }
    return take_shared_or_new_block(size);
}

[[gnu::noinline]] void keep_block_slowly(void* block, size_class size) noexcept
{
    thread_cache* cache = this_thread_cache;
    if (cache != nullptr && size.index < thread_class_count && cache->bytes + size.bytes <= cache->capacity) {
        try {
            cache->stacks[size.index].push_back(block);
            cache->bytes += size.bytes;
            cache->cached.store(cache->bytes, std::memory_order_relaxed);
            return;
        } catch (const std::bad_alloc&) {
            // The shared cache takes it below.
        }
    }
    give_to_shared(block, size);
}

void keep_block(void* block, size_class size) noexcept
{
    poison(block, size.bytes);
    thread_cache* cache = this_thread_cache;
    if (cache != nullptr && size.index < thread_class_count && cache->bytes + size.bytes <= cache->capacity &&
        cache->stacks[size.index].size() < cache->stacks[size.index].capacity()) [[likely]] {
        cache->stacks[size.index].push_back(block);
        cache->bytes += size.bytes;
        cache->cached.store(cache->bytes, std::memory_order_relaxed);
        return;
    }
    keep_block_slowly(block, size);
}

}  // namespace

namespace detail {

std::size_t& last_refused_bytes()
{
    thread_local std::size_t bytes GRADTAPE_STATIC_TLS = 0;
    return bytes;
}

void* allocate_storage(std::size_t bytes)
{
    if (bytes > largest_block) {
        last_refused_bytes() = bytes;
        throw std::bad_alloc();
    }
    const size_class size = class_of(bytes);
    thread_cache* cache = current_thread_cache();
    const auto [block, hit] = take_block(cache, size);
    count_in_use(cache, std::int64_t(size.bytes));
    if (cache != nullptr) {
        add_to(cache->allocations, std::uint64_t{1});
        add_to(cache->hits, std::uint64_t{hit});
    } else {
        process().allocations.fetch_add(1, std::memory_order_relaxed);
        process().hits.fetch_add(hit, std::memory_order_relaxed);
    }
    return block;
}

void deallocate_storage(void* block, std::size_t bytes) noexcept
{
    if (block != nullptr) {
        count_in_use(this_thread_cache, -std::int64_t(class_of(bytes).bytes));
        keep_block(block, class_of(bytes));
    }
}

void* allocate_bookkeeping(std::size_t bytes)
{
    return take_block(current_thread_cache(), class_of(bytes)).first;
}

void deallocate_bookkeeping(void* block, std::size_t bytes) noexcept
{
    keep_block(block, class_of(bytes));
}

}  // namespace detail

memory_stats memory_info()
{
    process_memory& memory = process();
    memory_stats stats;
    std::int64_t in_use = memory.in_use.load(std::memory_order_relaxed);
    std::int64_t highs = 0;
    std::int64_t unpublished = 0;
    stats.allocations = memory.allocations.load(std::memory_order_relaxed);
    stats.cache_hits = memory.hits.load(std::memory_order_relaxed);
    {
        const std::lock_guard lock(memory.threads_mutex);
        for (const thread_cache* cache : memory.threads) {
            unpublished += cache->unpublished.load(std::memory_order_relaxed);
            highs += cache->unpublished_high.load(std::memory_order_relaxed);
            stats.allocations += cache->allocations.load(std::memory_order_relaxed);
            stats.cache_hits += cache->hits.load(std::memory_order_relaxed);
            stats.cached_bytes += cache->cached.load(std::memory_order_relaxed);
        }
    }
    {
        const std::lock_guard lock(memory.cache_mutex);
        stats.cached_bytes += memory.cached_bytes;
    }
    const std::int64_t current = std::max<std::int64_t>(0, in_use + unpublished);
    stats.current_bytes = std::size_t(current);
    stats.peak_bytes = std::size_t(std::max({memory.peak.load(std::memory_order_relaxed), in_use + highs, current}));
    stats.cache_limit_bytes = cache_limit();
    return stats;
}

void reset_peak_memory()
{
    process_memory& memory = process();
    const std::lock_guard lock(memory.threads_mutex);
    std::int64_t current = memory.in_use.load(std::memory_order_relaxed);
    for (thread_cache* cache : memory.threads) {
        const std::int64_t pending = cache->unpublished.load(std::memory_order_relaxed);
        current += pending;
        cache->unpublished_high.store(std::max<std::int64_t>(pending, 0), std::memory_order_relaxed);
    }
    memory.peak.store(current, std::memory_order_relaxed);
}

void empty_cache()
{
    if (thread_cache* cache = this_thread_cache) {
        empty_thread_cache(*cache, false);
    }
    empty_shared();
    process().epoch.fetch_add(1, std::memory_order_relaxed);
}

void set_memory_cache_limit(std::int64_t bytes)
{
    if (bytes < 0) {
        throw argument_error("set_memory_cache_limit: the limit must be at least 0 bytes, got " +
                             std::to_string(bytes));
    }
    process_memory& memory = process();
    std::call_once(memory.limit_read, [] {});
    memory.limit.store(std::size_t(bytes), std::memory_order_relaxed);
    memory.limit_known.store(true, std::memory_order_release);
    {
        const std::lock_guard lock(memory.cache_mutex);
        evict_to(memory, std::size_t(bytes));
    }
    if (thread_cache* cache = this_thread_cache; cache != nullptr && cache->bytes > thread_cache_capacity(bytes)) {
        empty_thread_cache(*cache, false);
    }
    memory.epoch.fetch_add(1, std::memory_order_relaxed);
}

std::size_t memory_cache_limit()
{
    return cache_limit();
}

std::ostream& operator<<(std::ostream& out, const memory_stats& stats)
{
    using detail::format_bytes;
    out << "tensor memory: " << format_bytes(stats.current_bytes) << " in use (peak " << format_bytes(stats.peak_bytes)
        << "), " << format_bytes(stats.cached_bytes) << " cached (limit " << format_bytes(stats.cache_limit_bytes)
        << "); " << detail::with_thousands(stats.allocations) << (stats.allocations == 1 ? " allocation" : " allocations");
    if (stats.allocations > 0) {
        std::array<char, 16> share{};
        std::snprintf(share.data(), share.size(), "%.1f%%",
                      100.0 * double(stats.cache_hits) / double(stats.allocations));
        out << ", " << share.data() << " from the cache";
    }
    return out;
}

}  // namespace gradtape
