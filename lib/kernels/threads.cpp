#include "kernels/threads.hpp"

namespace gradtape::detail {

std::atomic<std::size_t>& threads_started()
{
    static std::atomic<std::size_t> started{0};
    return started;
}

}  // namespace gradtape::detail
