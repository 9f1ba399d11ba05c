// A prefetching loader whose background thread cannot allocate: the failure
// must reach the loop that reads the batches, as an exception, and not end
// the program (std::terminate) on the thread that met it. Every operator new
// on a thread other than main's fails while `failing` is set.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>

#include <gradtape/gradtape.hpp>

namespace {

std::atomic<bool> failing{false};
const std::thread::id main_thread = std::this_thread::get_id();

void* allocate(std::size_t size)
{
    if (failing.load() && std::this_thread::get_id() != main_thread) {
        throw std::bad_alloc();
    }
    if (void* memory = std::malloc(size == 0 ? 1 : size)) {
        return memory;
    }
    throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t size)
{
    return allocate(size);
}
void* operator new[](std::size_t size)
{
    return allocate(size);
}
void operator delete(void* memory) noexcept
{
    std::free(memory);
}
void operator delete[](void* memory) noexcept
{
    std::free(memory);
}
void operator delete(void* memory, std::size_t) noexcept
{
    std::free(memory);
}
void operator delete[](void* memory, std::size_t) noexcept
{
    std::free(memory);
}

int main()
{
    namespace gt = gradtape;
    const gt::Tensor data = gt::ones<float>({40, 3});
    gt::minibatches<float> batches({data}, {}, {.batch_size = 4, .prefetch = 2});
    std::size_t seen = 0;
    bool handed_over = false;
    failing = true;
    try {
        for (const auto& batch : batches) {
            seen += batch.tensors[0].shape()[0];
        }
    } catch (const std::bad_alloc&) {
        handed_over = true;
    }
    failing = false;
    // With allocation back, the next epoch reads every row.
    std::size_t rows = 0;
    for (const auto& batch : batches) {
        rows += batch.tensors[0].shape()[0];
    }
    std::printf("the failure %s the reading loop after %zu rows; the next epoch read %zu rows\n",
                handed_over ? "reached" : "did not reach", seen, rows);
    return handed_over && rows == 40 ? 0 : 1;
}
