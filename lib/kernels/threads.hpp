// The library's own threads within one op: as many as OpenBLAS is given
// (OPENBLAS_NUM_THREADS, or openblas_set_num_threads), for kernels whose
// BLAS products are too short for OpenBLAS's threads to pay.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

#include "kernels/arithmetic.hpp"
#include "kernels/gemm.hpp"
#include "kernels/workspace.hpp"

namespace gradtape::detail {

// How many workers on_threads has run besides the callers', over the
// process's life: what a test reads to see that work was shared.
std::atomic<std::size_t>& threads_started();

// Runs job(context, worker) for workers 1..workers - 1 on the library's
// threads, made once and kept, while the caller runs worker 0; returns once
// all have finished. False, with nothing run, when another call is using
// them (a second thread's, or a job's own): the caller then starts threads
// of its own.
bool run_on_pool(std::size_t workers, void (*job)(void*, std::size_t), void* context);

// Calls work(worker) for workers 0..workers - 1, each on a thread of its
// own, worker 0 on this one. An exception on any thread is rethrown here once
// all have finished.
template <class Work>
void on_threads(std::size_t workers, Work work)
{
    if (workers <= 1) {
        work(std::size_t{0});
        return;
    }
    std::vector<std::exception_ptr> failures(workers);
    auto run = [&](std::size_t worker) {
        try {
            work(worker);
        } catch (...) {
            failures[worker] = std::current_exception();
        }
    };
    threads_started().fetch_add(workers - 1, std::memory_order_relaxed);
    const auto job = [](void* context, std::size_t worker) { (*static_cast<decltype(run)*>(context))(worker); };
    if (!run_on_pool(workers, job, &run)) {
        std::vector<std::jthread> threads;
        for (std::size_t worker = 1; worker < workers; ++worker) {
            threads.emplace_back(run, worker);
        }
        run(0);
    }
    for (const std::exception_ptr& failure : failures) {
        if (failure) {
            std::rethrow_exception(failure);
        }
    }
}

// Calls work(worker, first, last) for contiguous shares [first, last) of
// `count` items (images), one share per worker, each on a thread of its own.
template <class Work>
void deal(std::size_t count, std::size_t workers, Work work)
{
    on_threads(workers, [&](std::size_t worker) { work(worker, count * worker / workers, count * (worker + 1) / workers); });
}

// A sum over images on several threads: worker 0 adds into `total`, the
// others into sums of their own, which add_up adds into `total` in thread
// order, so that a given thread count always gives the same result.
template <class T>
struct thread_sums {
    T* total;
    std::size_t size;
    std::size_t workers;
    workspace room;
    // The sums of workers 1.., one after another, taken from this thread's workspace.
    T* others;

    thread_sums(T* into, std::size_t count, std::size_t threads)
        : total(into), size(count), workers(threads), others(room.take<T>((threads - 1) * count))
    {
        std::fill_n(others, (workers - 1) * size, T(0));
    }
    [[nodiscard]] T* of(std::size_t worker) { return worker == 0 ? total : others + (worker - 1) * size; }
    void add_up()
    {
        for (std::size_t worker = 1; worker < workers; ++worker) {
            arithmetic_same(arithmetic::add, total, of(worker), total, size);
        }
    }
};

}  // namespace gradtape::detail
