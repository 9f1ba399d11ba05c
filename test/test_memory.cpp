// The caching allocator behind every xt::xarray: reuse, the figures
// memory_info gives, the limit and empty_cache, blocks that cross threads.
// The sizes below are whole size classes (multiples of 64 bytes up to 256,
// then four classes per doubling), so that the counts are exact.
#include <cstdint>
#include <sstream>
#include <thread>
#include <vector>

#include "support.hpp"

namespace gt = gradtape;
using Catch::Matchers::Contains;
using Catch::Matchers::Matches;

namespace {

// Restores the process's cache limit when a test that changes it ends.
struct limit_restorer {
    std::size_t saved = gt::memory_cache_limit();
    limit_restorer() = default;
    limit_restorer(const limit_restorer&) = delete;
    limit_restorer& operator=(const limit_restorer&) = delete;
    ~limit_restorer() { gt::set_memory_cache_limit(std::int64_t(saved)); }
};

}  // namespace

TEST_CASE("a freed tensor's storage serves the next tensor of its size class", "[memory]")
{
    const float* first = nullptr;
    {
        const gt::Tensor ones = gt::ones<float>({1024});
        first = ones.value().data();
    }
    const gt::memory_stats before = gt::memory_info();
    const gt::Tensor again = gt::zeros<float>({1000});  // 4000 bytes: the 4096-byte class
    const gt::memory_stats after = gt::memory_info();
    REQUIRE(again.value().data() == first);
    REQUIRE(after.allocations == before.allocations + 1);
    REQUIRE(after.cache_hits == before.cache_hits + 1);
    REQUIRE(reinterpret_cast<std::uintptr_t>(first) % 64 == 0);
}

TEST_CASE("memory_info counts the bytes tensors hold, their peak, and the bytes cached", "[memory]")
{
    gt::reset_peak_memory();
    const gt::memory_stats start = gt::memory_info();
    REQUIRE(start.peak_bytes == start.current_bytes);
    {
        const gt::Tensor64 a = gt::ones<double>({512});            // 4 KiB
        const gt::Tensor64 b = gt::ones<double>({16, 80});         // 10 KiB
        const gt::memory_stats held = gt::memory_info();
        REQUIRE(held.current_bytes == start.current_bytes + 4096 + 10240);
        REQUIRE(held.peak_bytes == held.current_bytes);
    }
    const gt::memory_stats freed = gt::memory_info();
    REQUIRE(freed.current_bytes == start.current_bytes);
    REQUIRE(freed.peak_bytes == start.current_bytes + 4096 + 10240);
    REQUIRE(freed.cached_bytes >= 4096 + 10240);
    REQUIRE(freed.allocations >= 2);

    gt::reset_peak_memory();
    REQUIRE(gt::memory_info().peak_bytes == freed.current_bytes);
}

TEST_CASE("memory_info prints as one line of sizes with units", "[memory]")
{
    gt::memory_stats stats;
    stats.current_bytes = 12 << 20;
    stats.peak_bytes = (40 << 20) + (512 << 10);
    stats.cached_bytes = 512;
    stats.cache_limit_bytes = std::size_t{4} << 30;
    stats.allocations = 1234567;
    stats.cache_hits = 1234000;
    std::ostringstream out;
    out << stats;
    REQUIRE(out.str() == "tensor memory: 12.0 MiB in use (peak 40.5 MiB), 512 B cached (limit 4.0 GiB); "
                         "1,234,567 allocations, 100.0% from the cache");
    std::ostringstream none;
    none << gt::memory_stats{};
    REQUIRE(none.str() == "tensor memory: 0 B in use (peak 0 B), 0 B cached (limit 0 B); 0 allocations");
}

TEST_CASE("empty_cache hands cached blocks back: the next tensor of their size is a new block", "[memory]")
{
    { const gt::Tensor held = gt::ones<float>({3 << 10}); }  // 12 KiB
    gt::empty_cache();
    const gt::memory_stats before = gt::memory_info();
    const gt::Tensor fresh = gt::ones<float>({3 << 10});
    REQUIRE(gt::memory_info().cache_hits == before.cache_hits);
}

TEST_CASE("the cache limit bounds what is kept, not what is used", "[memory]")
{
    const limit_restorer restore;
    REQUIRE_THROWS_AS(gt::set_memory_cache_limit(-1), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::set_memory_cache_limit(-1),
                        Matches("set_memory_cache_limit: the limit must be at least 0 bytes, got -1"));

    gt::set_memory_cache_limit(0);
    REQUIRE(gt::memory_cache_limit() == 0);
    REQUIRE(gt::memory_info().cache_limit_bytes == 0);
    const std::size_t cached = gt::memory_info().cached_bytes;
    {
        const gt::Tensor used = gt::ones<float>({1 << 20});  // 4 MiB, over the limit: allocated, then freed
        REQUIRE(gt::memory_info().cached_bytes <= cached);
    }
    REQUIRE(gt::memory_info().cached_bytes <= cached);

    gt::set_memory_cache_limit(std::int64_t{64} << 20);
    REQUIRE(gt::memory_cache_limit() == std::size_t{64} << 20);
    { const gt::Tensor kept = gt::ones<float>({1 << 20}); }
    const gt::memory_stats before = gt::memory_info();
    REQUIRE(before.cached_bytes >= std::size_t{4} << 20);
    const gt::Tensor reused = gt::ones<float>({1 << 20});
    REQUIRE(gt::memory_info().cache_hits == before.cache_hits + 1);
}

TEST_CASE("large tensors start on a 2 MiB boundary and are reused whole", "[memory]")
{
    const float* first = nullptr;
    {
        const gt::Tensor large = gt::ones<float>({33 << 18});  // 33 MiB
        first = large.value().data();
        REQUIRE(reinterpret_cast<std::uintptr_t>(first) % (2 << 20) == 0);
    }
    const gt::Tensor next = gt::zeros<float>({33 << 18});
    REQUIRE(next.value().data() == first);
}

TEST_CASE("tensors made on one thread and freed on another are counted and reused", "[memory][threads]")
{
    const std::size_t before = gt::memory_info().current_bytes;
    std::vector<gt::Tensor> made(8);
    std::thread maker([&] {
        for (auto& tensor : made) {
            tensor = gt::ones<float>({256, 64});  // 64 KiB each
        }
    });
    maker.join();
    REQUIRE(gt::memory_info().current_bytes == before + 8 * (64 << 10));
    std::vector<std::thread> freers;
    for (auto& tensor : made) {
        freers.emplace_back([&tensor] {
            const gt::Tensor sum = gt::reduce_sum(tensor);
            tensor = gt::Tensor();
            REQUIRE(sum.value()() == 256 * 64);
        });
    }
    for (auto& thread : freers) {
        thread.join();
    }
    REQUIRE(gt::memory_info().current_bytes == before);
}

// Run by meson with GRADTAPE_MEMORY_CACHE_LIMIT set (test/meson.build).
TEST_CASE("GRADTAPE_MEMORY_CACHE_LIMIT=1.5MiB sets the limit", "[.memory_limit_valid]")
{
    REQUIRE(gt::memory_cache_limit() == 1572864);
}

TEST_CASE("GRADTAPE_MEMORY_CACHE_LIMIT that is not a byte count is refused, naming it", "[.memory_limit_invalid]")
{
    REQUIRE_THROWS_AS(gt::ones<float>({4}), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::ones<float>({4}), Contains("GRADTAPE_MEMORY_CACHE_LIMIT: '12 parsecs' is not a byte count"));
}
