// Random mutations of valid checkpoints: flipped bits, overwritten bytes,
// truncations and insertions. Every mutant must either load exactly the saved
// values or throw a gradtape::error and leave the variables as they were;
// never crash, hang or load other values. Usage: checkpoint_fuzzer [mutants].
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>

#include <unistd.h>

#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

namespace {

std::string read_bytes(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string mutate(std::string bytes, std::mt19937_64& random)
{
    const auto position = [&] { return std::uniform_int_distribution<std::size_t>(0, bytes.size() - 1)(random); };
    const int changes = std::uniform_int_distribution<int>(1, 4)(random);
    for (int i = 0; i < changes && !bytes.empty(); ++i) {
        switch (std::uniform_int_distribution<int>(0, 3)(random)) {
        case 0:
            bytes[position()] ^= char(1U << std::uniform_int_distribution<int>(0, 7)(random));
            break;
        case 1:
            bytes[position()] = char(std::uniform_int_distribution<int>(0, 255)(random));
            break;
        case 2:
            bytes.resize(position());
            break;
        default:
            bytes.insert(position(), 1, char(std::uniform_int_distribution<int>(0, 255)(random)));
            break;
        }
    }
    return bytes;
}

}  // namespace

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
    const std::string original = read_bytes(valid);

    std::mt19937_64 random(2024);
    long loaded = 0;
    long refused = 0;
    long wrong = 0;
    for (long i = 0; i < mutants; ++i) {
        std::ofstream(mutant, std::ios::binary | std::ios::trunc) << mutate(original, random);
        gt::Variable lw(gt::fill<float>({3, 4}, -7.f), "layer/w");
        gt::Variable lb(gt::fill<float>({4}, -7.f), "layer/b");
        gt::Variable ls(gt::fill<float>({}, -7.f), "scale");
        bool threw = false;
        try {
            gt::load_checkpoint(mutant, {lw, lb, ls});
        } catch (const gt::error&) {
            threw = true;
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
              << " wrong\n";
    return wrong == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
