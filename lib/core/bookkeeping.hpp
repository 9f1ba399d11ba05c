// The library's own small objects (tensor nodes, tape records) come from the
// same per-thread caches as tensor storage, uncounted in memory_info's bytes
// in use: an op's bookkeeping then costs no call into malloc and no lock.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace gradtape::detail {

[[nodiscard]] void* allocate_bookkeeping(std::size_t bytes);
void deallocate_bookkeeping(void* block, std::size_t bytes) noexcept;

template <class T>
struct bookkeeping_allocator {
    using value_type = T;

    bookkeeping_allocator() noexcept = default;
    template <class U>
    bookkeeping_allocator(const bookkeeping_allocator<U>&) noexcept
    {
    }

    [[nodiscard]] T* allocate(std::size_t count) { return static_cast<T*>(allocate_bookkeeping(count * sizeof(T))); }
    void deallocate(T* block, std::size_t count) noexcept { deallocate_bookkeeping(block, count * sizeof(T)); }

    template <class U>
    friend bool operator==(const bookkeeping_allocator&, const bookkeeping_allocator<U>&) noexcept
    {
        return true;
    }
};

// std::make_shared, with the object and its reference counts in one block of the cache.
template <class T, class... Args>
std::shared_ptr<T> make_bookkept(Args&&... args)
{
    return std::allocate_shared<T>(bookkeeping_allocator<T>(), std::forward<Args>(args)...);
}

}  // namespace gradtape::detail
