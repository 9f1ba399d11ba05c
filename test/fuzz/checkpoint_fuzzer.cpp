// Random mutations of valid checkpoints (mutations.hpp). Every mutant must
// either load exactly the saved values or throw a gradtape::error and leave
// the variables as they were; never crash, hang, load other values, or
// allocate more than 16 MiB beyond what the process held before it (the
// checkpoint is 1 KiB). Usage: checkpoint_fuzzer [mutants].
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

#include <unistd.h>

#include <gradtape/gradtape.hpp>

#include "allocation_meter.hpp"
#include "mutations.hpp"

namespace gt = gradtape;

int main(int argc, char** argv)
{
    const long mutants = argc > 1 ? std::atol(argv[1]) : 5000;
    const auto directory = std::filesystem::temp_directory_path() / ("gradtape_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(directory);
    const auto valid = directory / "valid.npz";
    const auto mutant = directory / "mutant.npz";

    gt::set_seed(7);
    const gt::Variable w(gt::random_normal<float>({3, 4}), "layer/w");
    const gt::Variable b(gt::random_normal<float>({4}), "layer/b");
    const gt::Variable s(gt::fill<float>({}, 2.5f), "scale");
    gt::save_checkpoint(valid, {w, b, s});
    const std::string original = fuzzing::read_bytes(valid);

    constexpr std::size_t most_allocated = std::size_t{16} << 20;
    std::mt19937_64 random(2024);
    long loaded = 0;
    long refused = 0;
    long wrong = 0;
    for (long i = 0; i < mutants; ++i) {
        fuzzing::write_bytes(mutant, fuzzing::mutate(original, random));
        gt::Variable lw(gt::fill<float>({3, 4}, -7.f), "layer/w");
        gt::Variable lb(gt::fill<float>({4}, -7.f), "layer/b");
        gt::Variable ls(gt::fill<float>({}, -7.f), "scale");
        bool threw = false;
        allocation_meter::reset();
        try {
            gt::load_checkpoint(mutant, {lw, lb, ls});
        } catch (const gt::error&) {
            threw = true;
        }
        if (allocation_meter::peak_growth() > most_allocated) {
            ++wrong;
            std::cerr << "mutant " << i << " allocated " << allocation_meter::peak_growth() << " bytes\n";
        }
        const bool as_saved = lw.value() == w.value() && lb.value() == b.value() && ls.value() == s.value();
        const bool untouched =
            xt::all(xt::equal(lw.value(), -7.f)) && xt::all(xt::equal(lb.value(), -7.f)) && ls.item() == -7.f;
        if (threw ? !untouched : !as_saved) {
            ++wrong;
            std::cerr << "mutant " << i << (threw ? " threw but changed a variable\n" : " loaded other values\n");
        }
        (threw ? refused : loaded) += 1;
    }
    std::filesystem::remove_all(directory);
    std::cout << mutants << " mutants: " << loaded << " loaded the saved values, " << refused << " refused, " << wrong
              << " wrong; allocations " << (allocation_meter::active() ? "measured" : "not measured (sanitizer)")
              << "\n";
    return wrong == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
