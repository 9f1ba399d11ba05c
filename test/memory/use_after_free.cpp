// Reads a tensor's storage after the tensor is gone. The block is in the
// cache, not freed, so AddressSanitizer can only report the read because the
// allocator poisons cached blocks: use_after_free.py expects that report.
#include <cstdio>

#include <gradtape/gradtape.hpp>

int main()
{
    const float* storage = nullptr;
    {
        const gradtape::Tensor gone = gradtape::ones<float>({1024});
        storage = gone.value().data();
    }
    std::printf("read %g\n", double(storage[3]));
    return 0;
}
