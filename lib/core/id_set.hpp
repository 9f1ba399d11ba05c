// A set of tensor ids for the tape: which tensors it watches, which gradients
// a pass keeps. Open addressing with linear probing in a power-of-two table
// whose first 16 slots need no allocation: a tape of a training step holds a
// few dozen ids, and std::unordered_set would allocate a node for each.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <gradtape/tensor.hpp>

namespace gradtape::detail {

class id_set {
public:
    [[nodiscard]] bool contains(tensor_id id) const
    {
        const std::span<const tensor_id> table = slots();
        for (std::size_t i = home(id, table.size());; i = (i + 1) & (table.size() - 1)) {
            if (table[i] == id) {
                return true;
            }
            if (table[i] == empty) {
                return false;
            }
        }
    }

    // Returns whether id was new.
    bool insert(tensor_id id)
    {
        if (2 * (count_ + 1) > slots().size()) {
            grow();
        }
        const std::span<tensor_id> table = slots();
        std::size_t i = home(id, table.size());
        for (; table[i] != empty; i = (i + 1) & (table.size() - 1)) {
            if (table[i] == id) {
                return false;
            }
        }
        table[i] = id;
        ++count_;
        return true;
    }

    void clear()
    {
        inline_slots_.fill(empty);
        heap_slots_.clear();
        count_ = 0;
    }

    [[nodiscard]] std::size_t size() const { return count_; }

private:
    // Ids start at 2^32 (tensor.cpp), so 0 marks a free slot.
    static constexpr tensor_id empty = 0;

    static std::size_t home(tensor_id id, std::size_t capacity)
    {
        // Ids of one thread are consecutive: the multiplication (Fibonacci
        // hashing) spreads them, folding keeps its high bits in play.
        const std::uint64_t mixed = id * 0x9E3779B97F4A7C15ULL;
        return std::size_t(mixed ^ (mixed >> 32)) & (capacity - 1);
    }

    [[nodiscard]] std::span<const tensor_id> slots() const
    {
        return heap_slots_.empty() ? std::span<const tensor_id>(inline_slots_) : std::span(heap_slots_);
    }
    [[nodiscard]] std::span<tensor_id> slots()
    {
        return heap_slots_.empty() ? std::span<tensor_id>(inline_slots_) : std::span(heap_slots_);
    }

    void grow()
    {
        std::vector<tensor_id> old(slots().begin(), slots().end());
        heap_slots_.assign(old.size() * 2, empty);
        inline_slots_.fill(empty);
        count_ = 0;
        for (tensor_id id : old) {
            if (id != empty) {
                insert(id);
            }
        }
    }

    std::array<tensor_id, 16> inline_slots_{};
    std::vector<tensor_id> heap_slots_;
    std::size_t count_ = 0;
};

}  // namespace gradtape::detail
