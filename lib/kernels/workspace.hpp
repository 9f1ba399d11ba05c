// Scratch memory for kernels (im2col columns, Winograd planes, a thread's
// sums): taken from blocks the calling thread keeps, in the order a kernel
// asks for it, and given back when the kernel's workspace ends. A kernel run
// again on the same shapes (the next training step, a capture's replay)
// finds the blocks it needs and allocates nothing.
#pragma once

#include <cstddef>

namespace gradtape::detail {

class workspace {
public:
    workspace() noexcept;
    ~workspace();
    workspace(const workspace&) = delete;
    workspace& operator=(const workspace&) = delete;

    // Room for `count` values, aligned to a cache line, its contents undefined;
    // valid until this workspace ends.
    template <class T>
    [[nodiscard]] T* take(std::size_t count)
    {
        return static_cast<T*>(take_bytes(count * sizeof(T)));
    }

private:
    void* take_bytes(std::size_t bytes);

    // Where this workspace began among the thread's blocks.
    std::size_t block_;
    std::size_t offset_;
};

}  // namespace gradtape::detail
