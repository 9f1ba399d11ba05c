// Tensor memory: every xt::xarray value (each tensor's, and any xt::xarray
// the program makes) takes its storage from gradtape's caching allocator,
// which keeps freed blocks for reuse instead of handing them back to the
// system, so that a training loop allocates from the system only in its first
// step.
//
//   std::cout << gradtape::memory_info() << '\n';
//   // tensor memory: 212.0 MiB in use (peak 318.5 MiB), 96.0 MiB cached
//   // (limit 4.0 GiB); 1,204,113 allocations, 99.9% from the cache
//
//   gradtape::set_memory_cache_limit(512 << 20);   // or GRADTAPE_MEMORY_CACHE_LIMIT=512MiB
//   gradtape::empty_cache();                        // hand every cached block back
//
// The allocator is xtensor's default (XTENSOR_DEFAULT_ALLOCATOR), so that
// xt::xarray<T> is the same type in the library and in the program: include
// a gradtape header before any xtensor header (the compiler says so otherwise).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <new>

#if defined(XTENSOR_CONFIG_HPP) && !defined(GRADTAPE_TENSOR_ALLOCATOR)
#error "gradtape: include a gradtape header before any xtensor header (xt::xarray must use gradtape's allocator)"
#endif

namespace gradtape {

namespace detail {

// Blocks of `bytes` (rounded up to the block's size class), aligned to 64
// bytes; std::bad_alloc when the system refuses one even after the cache was
// emptied (ops turn that into a gradtape::memory_error naming themselves).
[[nodiscard]] void* allocate_storage(std::size_t bytes);
void deallocate_storage(void* block, std::size_t bytes) noexcept;

}  // namespace detail

/// The allocator of xt::xarray's storage in every program that uses gradtape.
template <class T>
struct tensor_allocator {
    using value_type = T;  ///< The element type.

    tensor_allocator() noexcept = default;
    /// Every tensor_allocator shares the one cache.
    template <class U>
    tensor_allocator(const tensor_allocator<U>&) noexcept
    {
    }

    /// Storage for count elements, from the cache when it holds a block of that size class.
    [[nodiscard]] T* allocate(std::size_t count)
    {
        if (count > std::numeric_limits<std::size_t>::max() / sizeof(T)) {
            throw std::bad_array_new_length();
        }
        return static_cast<T*>(detail::allocate_storage(count * sizeof(T)));
    }
    /// Returns a block to the cache (or to the system past the cache's limit).
    void deallocate(T* block, std::size_t count) noexcept { detail::deallocate_storage(block, count * sizeof(T)); }

    /// Always equal: one allocator frees what another allocated.
    template <class U>
    friend bool operator==(const tensor_allocator&, const tensor_allocator<U>&) noexcept
    {
        return true;
    }
};

/// Tensor storage as torch.cuda.memory_stats and
/// tf.config.experimental.get_memory_info report it, for the whole process.
/// Bytes are those of the blocks handed out, each rounded up to its size class
/// (at most a quarter more than asked for). Figures are exact while one thread
/// allocates; with several, each thread's latest 1 MiB of change may be
/// missing from `peak_bytes`.
struct memory_stats {
    std::size_t current_bytes = 0;      ///< Held by live xt::xarray values.
    std::size_t peak_bytes = 0;         ///< The most current_bytes has been since start or reset_peak_memory().
    std::size_t cached_bytes = 0;       ///< Freed, kept for reuse.
    std::size_t cache_limit_bytes = 0;  ///< The most the cache keeps.
    std::uint64_t allocations = 0;      ///< Blocks handed out.
    std::uint64_t cache_hits = 0;       ///< Of those, blocks the cache had kept.
};

/// The process's tensor storage now.
[[nodiscard]] memory_stats memory_info();
/// "tensor memory: 12.0 MiB in use (peak 40.5 MiB), 8.0 MiB cached (limit 4.0 GiB); 1,234 allocations, 97.2% from the cache"
std::ostream& operator<<(std::ostream& out, const memory_stats& stats);

/// Starts the peak over from the bytes in use now.
void reset_peak_memory();
/// Hands every cached block back to the system: this thread's and the shared
/// cache at once, other threads' at their next allocation.
void empty_cache();
/// The most the cache keeps, in bytes; 0 turns caching off. The limit bounds
/// what is kept, not what is used: a larger request is still allocated, and
/// freed to the system. Negative limits throw argument_error. The default is
/// the smaller of 4 GiB and a quarter of physical memory, or the value of
/// GRADTAPE_MEMORY_CACHE_LIMIT: bytes, optionally with a unit (512MiB, 2GiB,
/// 1.5GB).
void set_memory_cache_limit(std::int64_t bytes);
/// The cache's limit now, in bytes.
[[nodiscard]] std::size_t memory_cache_limit();

}  // namespace gradtape

#define GRADTAPE_TENSOR_ALLOCATOR
#define XTENSOR_DEFAULT_ALLOCATOR(T) ::gradtape::tensor_allocator<T>
