// The count behind a scoped switch of one thread (stop_recording,
// check_numerics): each guard raises its thread's count when made and lowers
// it when released. A guard keeps the count it raised, so that one released on
// another thread lowers the count of the thread that made it, never the
// releasing thread's; that is also why the count is atomic.
#pragma once

#include <atomic>
#include <memory>

namespace gradtape::detail {

struct guard_count {
    std::atomic<int> value{0};
};

// This thread's count as its own ops read it: a null pointer until the first
// guard, so that a thread which never made one pays a single test.
inline bool raised(const std::shared_ptr<guard_count>& count)
{
    return count && count->value.load(std::memory_order_relaxed) > 0;
}

// Raises this thread's count (made on first use) and returns it for the guard to keep.
inline std::shared_ptr<guard_count> raise(std::shared_ptr<guard_count>& count)
{
    if (!count) {
        count = std::make_shared<guard_count>();
    }
    count->value.fetch_add(1, std::memory_order_relaxed);
    return count;
}

inline void lower(const std::shared_ptr<guard_count>& count)
{
    count->value.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace gradtape::detail
