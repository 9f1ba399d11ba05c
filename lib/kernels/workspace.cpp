#include "kernels/workspace.hpp"

#include <algorithm>
#include <memory>
#include <new>
#include <vector>

namespace gradtape::detail {

namespace {

constexpr std::size_t line = 64;

struct block {
    struct release {
        void operator()(std::byte* bytes) const { ::operator delete[](bytes, std::align_val_t(line)); }
    };
    std::unique_ptr<std::byte[], release> bytes;
    std::size_t size;
};

// This thread's blocks, and where the next take begins: a stack that
// workspaces push onto and pop from in order.
struct thread_blocks {
    std::vector<block> blocks;
    std::size_t current = 0;
    std::size_t offset = 0;
};

thread_local thread_blocks here;

}  // namespace

workspace::workspace() noexcept : block_(here.current), offset_(here.offset) {}

workspace::~workspace()
{
    here.current = block_;
    here.offset = offset_;
}

void* workspace::take_bytes(std::size_t bytes)
{
    bytes = (std::max<std::size_t>(bytes, 1) + line - 1) / line * line;
    while (here.current < here.blocks.size()) {
        block& at = here.blocks[here.current];
        if (here.offset + bytes <= at.size) {
            std::byte* taken = at.bytes.get() + here.offset;
            here.offset += bytes;
            return taken;
        }
        ++here.current;
        here.offset = 0;
    }
    // Past the last block: a new one, at least twice the last, so that a
    // kernel's needs are met by a few blocks after its first run.
    const std::size_t size = std::max({bytes, here.blocks.empty() ? std::size_t{1} << 20 : 2 * here.blocks.back().size});
    here.blocks.push_back({std::unique_ptr<std::byte[], block::release>(
                               static_cast<std::byte*>(::operator new[](size, std::align_val_t(line)))),
                           size});
    here.current = here.blocks.size() - 1;
    here.offset = bytes;
    return here.blocks.back().bytes.get();
}

}  // namespace gradtape::detail
