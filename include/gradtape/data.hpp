// Minibatches over row-aligned data, shuffled from this thread's seeded
// generator, optionally gathered ahead on a background thread.
//
//   gradtape::minibatches<float> batches({points}, {labels}, {.batch_size = 32, .prefetch = 2});
//   for (int epoch = 0; epoch < 10; ++epoch) {
//       for (const auto& batch : batches) {          // each pass draws a new order
//           auto loss = step(batch.tensors[0], batch.labels[0]);
//       }
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "source_location.hpp"
#include "tensor.hpp"

namespace gradtape {

/// How minibatches cuts a data set.
struct minibatch_options {
    std::size_t batch_size = 32;  ///< Rows per batch (the whole batch, across shards).
    bool shuffle = true;          ///< A new order each epoch, from this thread's generator.
    /// Leave out a last batch smaller than batch_size.
    bool drop_remainder = false;
    /// How many batches a background thread gathers ahead of the one in use
    /// (0: each is gathered when the loop reaches it). The order is drawn on
    /// the calling thread either way, so the batches are the same at any depth.
    std::size_t prefetch = 0;
    /// Data-parallel training: each of `shards` processes takes its own part of
    /// every batch (shard k: rows k/shards to (k+1)/shards of it), all drawing
    /// the same order from the same seed; batch_size is the whole batch.
    std::size_t shards = 1;
    std::size_t shard = 0;  ///< This process's part, below shards.
};

namespace detail {
template <dtype T>
class prefetcher;
}  // namespace detail

/// One batch: the same rows of every tensor and label array.
template <dtype T>
struct minibatch {
    std::vector<basic_tensor<T>> tensors;           ///< Rows of each tensor, in the batch's order.
    std::vector<xt::xarray<std::int64_t>> labels;    ///< Rows of each label array, likewise.
    xt::xarray<std::int64_t> rows;                    ///< Which rows of the data set.
};

/// The batches of an epoch, as a range: `for (const auto& batch : minibatches(...))`.
template <dtype T>
class minibatches {
public:
    /// Every tensor and label array must have the same number of rows (first
    /// dimension); shard must be below shards.
    minibatches(std::vector<basic_tensor<T>> tensors, std::vector<xt::xarray<std::int64_t>> labels = {},
                minibatch_options options = {}, source_location site = source_location::current());

    /// An input iterator over an epoch's batches; it owns the prefetch thread, if any.
    class iterator {
    public:
        iterator(const iterator&) = delete;
        iterator& operator=(const iterator&) = delete;
        /// Takes over the epoch and its prefetch thread.
        iterator(iterator&&) noexcept;
        /// Takes over the epoch and its prefetch thread.
        iterator& operator=(iterator&&) noexcept;
        ~iterator();
        using value_type = minibatch<T>;         ///< A batch.
        using difference_type = std::ptrdiff_t;  ///< For std::input_iterator.
        /// The current batch, valid until the iterator moves.
        const minibatch<T>& operator*() const { return current_; }
        /// The current batch's members.
        const minibatch<T>* operator->() const { return &current_; }
        /// Moves to the next batch.
        iterator& operator++();
        /// Whether both are at the same batch of the epoch.
        bool operator==(const iterator& other) const { return position_ == other.position_; }

    private:
        friend class minibatches;
        iterator(const minibatches* owner, std::vector<std::int64_t> order, std::size_t position);
        void load();

        const minibatches* owner_;
        std::vector<std::int64_t> order_;
        std::size_t position_;
        minibatch<T> current_;
        std::unique_ptr<detail::prefetcher<T>> prefetcher_;
    };

    /// Starts an epoch: with shuffle on, a new order drawn from this thread's generator.
    [[nodiscard]] iterator begin() const;
    /// Past the epoch's last batch.
    [[nodiscard]] iterator end() const;
    /// Batches per epoch.
    [[nodiscard]] std::size_t size() const;
    /// Rows of the data set.
    [[nodiscard]] std::size_t rows() const noexcept { return rows_; }

private:
    friend class detail::prefetcher<T>;
    [[nodiscard]] std::size_t last_position() const;
    /// The batch starting at `position` of `order`.
    [[nodiscard]] minibatch<T> batch_at(const std::vector<std::int64_t>& order, std::size_t position) const;

    std::vector<basic_tensor<T>> tensors_;
    std::vector<xt::xarray<std::int64_t>> labels_;
    minibatch_options options_;
    std::size_t rows_ = 0;
};

}  // namespace gradtape
