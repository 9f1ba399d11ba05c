#include "kernels/threads.hpp"

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace gradtape::detail {

std::atomic<std::size_t>& threads_started()
{
    static std::atomic<std::size_t> started{0};
    return started;
}

namespace {

// Threads that wait for a job, one call at a time; grown to the most
// workers a call has asked for, joined at exit.
class thread_pool {
public:
    thread_pool() = default;
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool()
    {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
    }

    bool run(std::size_t workers, void (*job)(void*, std::size_t), void* context)
    {
        const std::unique_lock one_call(calling_, std::try_to_lock);
        if (!one_call.owns_lock()) {
            return false;
        }
        {
            const std::lock_guard lock(mutex_);
            while (threads_.size() + 1 < workers) {
                threads_.emplace_back([this, index = threads_.size() + 1, seen = generation_] { serve(index, seen); });
            }
            job_ = job;
            context_ = context;
            workers_ = workers;
            pending_ = workers - 1;
            ++generation_;
        }
        wake_.notify_all();
        job(context, 0);
        std::unique_lock lock(mutex_);
        done_.wait(lock, [this] { return pending_ == 0; });
        return true;
    }

private:
    void serve(std::size_t index, std::uint64_t seen)
    {
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
            if (stopping_) {
                return;
            }
            seen = generation_;
            if (index < workers_) {
                const auto job = job_;
                void* const context = context_;
                lock.unlock();
                job(context, index);
                lock.lock();
                if (--pending_ == 0) {
                    done_.notify_one();
                }
            }
        }
    }

    std::mutex calling_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    void (*job_)(void*, std::size_t) = nullptr;
    void* context_ = nullptr;
    std::size_t workers_ = 0;
    std::size_t pending_ = 0;
    std::uint64_t generation_ = 0;
    bool stopping_ = false;
    // Last, so that the threads are joined before the state they read goes.
    std::vector<std::jthread> threads_;
};

}  // namespace

bool run_on_pool(std::size_t workers, void (*job)(void*, std::size_t), void* context)
{
    static thread_pool pool;
    return pool.run(workers, job, context);
}

}  // namespace gradtape::detail
