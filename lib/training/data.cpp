#include <gradtape/data.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include <gradtape/ops.hpp>
#include <gradtape/random.hpp>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"

namespace gradtape {
namespace detail {

// Gathers the batches of one pass over `order` on a thread of its own, at
// most `depth` ahead of the one handed out. A failure on that thread, in a
// batch or in queueing it, ends the gathering and is handed out, after the
// batches gathered before it, in place of the next one.
template <dtype T>
class prefetcher {
public:
    prefetcher(const minibatches<T>& owner, std::vector<std::int64_t> order, std::size_t first, std::size_t depth)
        : owner_(owner), order_(std::move(order)), depth_(depth), worker_([this, first] { run(first); })
    {
    }
    prefetcher(const prefetcher&) = delete;
    prefetcher& operator=(const prefetcher&) = delete;
    ~prefetcher()
    {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        changed_.notify_all();
        worker_.join();
    }

    minibatch<T> next()
    {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return !ready_.empty() || failure_; });
        if (ready_.empty()) {
            std::rethrow_exception(failure_);
        }
        minibatch<T> batch = std::move(ready_.front());
        ready_.pop_front();
        lock.unlock();
        changed_.notify_all();
        return batch;
    }

private:
    void run(std::size_t first)
    {
        try {
            for (std::size_t position = first; position < owner_.last_position();
                 position += owner_.options_.batch_size) {
                {
                    std::unique_lock lock(mutex_);
                    changed_.wait(lock, [this] { return stopping_ || ready_.size() < depth_; });
                    if (stopping_) {
                        return;
                    }
                }
                minibatch<T> made = owner_.batch_at(order_, position);
                {
                    const std::lock_guard lock(mutex_);
                    ready_.push_back(std::move(made));
                }
                changed_.notify_all();
            }
        } catch (...) {
            {
                const std::lock_guard lock(mutex_);
                failure_ = std::current_exception();
            }
            changed_.notify_all();
        }
    }

    const minibatches<T>& owner_;
    const std::vector<std::int64_t> order_;
    const std::size_t depth_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<minibatch<T>> ready_;
    std::exception_ptr failure_;
    bool stopping_ = false;
    // Last: it starts once everything it reads exists.
    std::thread worker_;
};

}  // namespace detail

template <dtype T>
minibatches<T>::minibatches(std::vector<basic_tensor<T>> tensors, std::vector<xt::xarray<std::int64_t>> labels,
                            minibatch_options options, source_location site)
    : tensors_(std::move(tensors)), labels_(std::move(labels)), options_(options)
{
    if (tensors_.empty() && labels_.empty()) {
        detail::fail<argument_error>("minibatches", site, "needs at least one tensor or label array");
    }
    if (options_.batch_size == 0) {
        detail::fail<argument_error>("minibatches", site, "batch_size must be at least 1");
    }
    if (options_.shard >= options_.shards) {
        detail::fail<argument_error>("minibatches", site,
                                     "shard " + std::to_string(options_.shard) + " is not one of the " +
                                         std::to_string(options_.shards) + " shards");
    }
    const auto rows_of = [](const shape_type& shape) { return shape.empty() ? std::size_t{0} : shape[0]; };
    rows_ = tensors_.empty() ? rows_of(labels_.front().shape()) : rows_of(tensors_.front().shape());
    const auto check = [&](const shape_type& shape) {
        if (shape.empty() || shape[0] != rows_) {
            detail::fail<shape_error>("minibatches", site,
                                      "every tensor and label array needs " + std::to_string(rows_) +
                                          " rows; one has shape " + detail::format_shape(shape));
        }
    };
    for (const auto& tensor : tensors_) {
        check(tensor.shape());
    }
    for (const auto& label : labels_) {
        check(label.shape());
    }
}

template <dtype T>
std::size_t minibatches<T>::size() const
{
    // Not (rows + batch_size - 1) / batch_size, which overflows for a batch_size near SIZE_MAX.
    const std::size_t whole = rows_ / options_.batch_size;
    return options_.drop_remainder || rows_ % options_.batch_size == 0 ? whole : whole + 1;
}

template <dtype T>
std::size_t minibatches<T>::last_position() const
{
    return size() * options_.batch_size;
}

template <dtype T>
typename minibatches<T>::iterator minibatches<T>::begin() const
{
    std::vector<std::int64_t> order(rows_);
    std::iota(order.begin(), order.end(), 0);
    if (options_.shuffle) {
        // Fisher-Yates with this thread's seeded generator, through random_uniform.
        const basic_tensor<double> draws = random_uniform<double>({std::max<std::size_t>(rows_, 1)});
        for (std::size_t i = rows_; i > 1; --i) {
            const auto j = std::min(std::size_t(draws.value()(i - 1) * double(i)), i - 1);
            std::swap(order[i - 1], order[j]);
        }
    }
    return iterator(this, std::move(order), size() == 0 ? last_position() : 0);
}

template <dtype T>
typename minibatches<T>::iterator minibatches<T>::end() const
{
    return iterator(this, {}, last_position());
}

template <dtype T>
minibatches<T>::iterator::iterator(const minibatches* owner, std::vector<std::int64_t> order, std::size_t position)
    : owner_(owner), order_(std::move(order)), position_(position)
{
    if (!order_.empty() && position_ < owner_->last_position()) {
        if (owner_->options_.prefetch > 0) {
            prefetcher_ = std::make_unique<detail::prefetcher<T>>(*owner_, order_, position_, owner_->options_.prefetch);
        }
        load();
    }
}

template <dtype T>
minibatches<T>::iterator::~iterator() = default;
template <dtype T>
minibatches<T>::iterator::iterator(iterator&&) noexcept = default;
template <dtype T>
typename minibatches<T>::iterator& minibatches<T>::iterator::operator=(iterator&&) noexcept = default;

template <dtype T>
typename minibatches<T>::iterator& minibatches<T>::iterator::operator++()
{
    position_ += owner_->options_.batch_size;
    if (position_ >= owner_->last_position()) {
        position_ = owner_->last_position();
    } else {
        load();
    }
    return *this;
}

template <dtype T>
void minibatches<T>::iterator::load()
{
    current_ = prefetcher_ ? prefetcher_->next() : owner_->batch_at(order_, position_);
}

template <dtype T>
minibatch<T> minibatches<T>::batch_at(const std::vector<std::int64_t>& order, std::size_t position) const
{
    minibatch<T> batch;
    const std::size_t whole = std::min(options_.batch_size, rows_ - position);
    // In 128 bits: whole * shard may not fit in 64.
    const auto part = [&](std::size_t k) {
        return std::size_t((unsigned __int128)whole * k / options_.shards);
    };
    const std::size_t first = position + part(options_.shard);
    const std::size_t count = position + part(options_.shard + 1) - first;
    batch.rows = xt::xarray<std::int64_t>::from_shape({count});
    std::copy_n(order.begin() + std::ptrdiff_t(first), count, batch.rows.begin());
    // Row by row, as plain copies: a batch is data, never recorded.
    const auto pick = [&]<class E>(const xt::xarray<E>& all) {
        shape_type shape = all.shape();
        shape[0] = count;
        auto picked = xt::xarray<E>::from_shape(shape);
        const std::size_t row_size = all.size() / rows_;
        for (std::size_t i = 0; i < count; ++i) {
            std::copy_n(all.data() + std::size_t(batch.rows(i)) * row_size, row_size, picked.data() + i * row_size);
        }
        return picked;
    };
    for (const auto& tensor : tensors_) {
        batch.tensors.emplace_back(pick(tensor.value()));
    }
    for (const auto& label : labels_) {
        batch.labels.push_back(pick(label));
    }
    return batch;
}

#define GRADTAPE_INSTANTIATE(T) template class minibatches<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
