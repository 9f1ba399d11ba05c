// Memory that runs out under an address-space limit (RLIMIT_AS), the way a
// container's limit or a full machine makes it run out:
// - a request the system refuses while the cache holds freed blocks is
//   served once the cache has handed them back;
// - a request that cannot be served even then is a memory_error naming the
//   op, the shape and the bytes, thrown from the forward pass as from the
//   backward pass, and a training step that meets one leaves its variables
//   as they were.
// Sanitizers reserve terabytes of address space for their shadow memory, so
// meson does not run this program under them; it runs it with
// OPENBLAS_NUM_THREADS=1, as OpenBLAS's worker threads map buffers of their
// own at moments of their choosing.
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include <sys/resource.h>

#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

namespace {

void check(bool condition, const char* what)
{
    if (!condition) {
        std::fprintf(stderr, "FAILED: %s\n", what);
        std::exit(1);
    }
}

bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}

// The address space this process has mapped now, from /proc/self/statm.
std::size_t mapped_bytes()
{
    std::FILE* statm = std::fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    check(statm != nullptr && std::fscanf(statm, "%lu", &pages) == 1, "reads /proc/self/statm");
    std::fclose(statm);
    return std::size_t(pages) * 4096;
}

}  // namespace

int main()
{
    // A step before the limit, so that the pools it starts are mapped already.
    // The steps use no matrix product: OpenBLAS, refused a buffer, retries
    // for ever.
    gt::Variable w(gt::ones<float>({64}), "w");
    gt::SGD optimizer(0.1f);
    const gt::Tensor x = gt::ones<float>({8, 64});
    optimizer.minimize([&] { return gt::reduce_sum(x * w); }, {w});

    constexpr std::size_t mib = std::size_t{1} << 20;
    const rlimit limit{mapped_bytes() + 512 * mib, RLIM_INFINITY};
    check(setrlimit(RLIMIT_AS, &limit) == 0, "sets RLIMIT_AS");

    // 320 MiB cached, then 384 MiB asked for: only the cache's blocks given
    // back make room for it.
    {
        const gt::Tensor first = gt::ones<float>({80 * mib});
    }
    const gt::memory_stats cached = gt::memory_info();
    check(cached.cached_bytes >= 320 * mib, "the freed 320 MiB are cached");
    {
        const gt::Tensor larger = gt::ones<float>({96 * mib});
        check(larger.value()(96 * mib - 1) == 1.f, "384 MiB allocated once the cache is emptied");
    }

    // 4 GiB cannot be had: the op says so.
    const gt::Tensor row = gt::ones<float>({1, 1 << 20});
    const gt::Tensor column = gt::ones<float>({1 << 10, 1});
    try {
        (void)gt::multiply(row, column);
        check(false, "a 4 GiB product is refused");
    } catch (const gt::memory_error& refused) {
        const std::string message = refused.what();
        std::printf("%s\n", message.c_str());
        check(contains(message, "multiply: out of memory for a float32 result of shape (1024, 1048576) (4.0 GiB)"),
              "the message names the op, the dtype, the shape and the bytes");
        check(contains(message, "the system refused a block of 4.0 GiB"), "the message names the block refused");
        check(contains(message, "out_of_memory.cpp:"), "the message names the call site");
    }

    // A step whose backward pass runs out: the gradient of a slice of a
    // 192 MiB variable is 192 MiB, which a 192 MiB tensor held meanwhile
    // leaves no room for. No variable of the step changes.
    gt::empty_cache();
    gt::Variable table(gt::zeros<float>({48 * mib}), "table");
    const gt::Tensor held = gt::ones<float>({48 * mib});
    const xt::xarray<float> before = w.value();
    try {
        optimizer.minimize(
            [&] { return gt::reduce_sum(x * w) + gt::reduce_sum(gt::slice(table, {0}, {4})); },
            {w, table});
        check(false, "a step out of memory is refused");
    } catch (const gt::memory_error& refused) {
        std::printf("%s\n", refused.what());
        check(contains(refused.what(), "result of shape (50331648,) (192.0 MiB)"),
              "the backward op names the gradient's shape and bytes");
    }
    check(w.value() == before, "the refused step leaves w as it was");
    check(table.value()(0) == 0.f && table.value()(3) == 0.f, "the refused step leaves the table as it was");

    // And the next step runs.
    optimizer.minimize([&] { return gt::reduce_sum(x * w); }, {w});
    check(w.value() != before, "the next step trains");
    std::printf("%s\n", [] {
        std::ostringstream out;
        out << gt::memory_info();
        return out.str();
    }().c_str());
    return 0;
}
