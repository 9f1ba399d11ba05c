// Checkpoints: a round trip, and every way a load can fail leaving the variables as they were.
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "support.hpp"

namespace gt = gradtape;
using Catch::Matchers::Contains;

namespace {

struct scratch_directory {
    scratch_directory() : path(std::filesystem::temp_directory_path() / ("gradtape_test_" + std::to_string(::getpid())))
    {
        std::filesystem::create_directories(path);
    }
    ~scratch_directory() { std::filesystem::remove_all(path); }
    std::filesystem::path path;
};

}  // namespace

TEST_CASE("a checkpoint saves and loads named variables, float and double", "[checkpoint]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "model.npz";
    gt::set_seed(4);
    gt::Variable w(gt::random_normal<float>({3, 2}), "w");
    gt::Variable b(gt::random_normal<float>({2}), "layer/b");
    gt::save_checkpoint(file, {w, b});
    gt::Variable w_loaded(gt::zeros<float>({3, 2}), "w");
    gt::Variable b_loaded(gt::zeros<float>({2}), "layer/b");
    gt::load_checkpoint(file, {b_loaded, w_loaded});
    REQUIRE(w_loaded.value() == w.value());
    REQUIRE(b_loaded.value() == b.value());

    gt::Variable64 as_double(gt::zeros<double>({3, 2}), "w");
    gt::load_checkpoint(file, {as_double});
    REQUIRE(xt::allclose(as_double.value(), xt::cast<double>(w.value())));
}

TEST_CASE("a failed load names the problem and changes no variable", "[checkpoint][errors]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "model.npz";
    gt::Variable64 w(gt::fill<double>({2, 2}, 3.0), "w");
    gt::Variable64 b(gt::fill<double>({2}, 4.0), "b");
    gt::save_checkpoint(file, {w, b});
    gt::Variable64 target_w(gt::zeros<double>({2, 2}), "w");
    gt::Variable64 wrong_shape(gt::zeros<double>({3}), "b");
    gt::Variable64 missing(gt::zeros<double>({2}), "bias");
    const auto untouched = [&] {
        REQUIRE(xt::all(xt::equal(target_w.value(), 0.0)));
        REQUIRE(xt::all(xt::equal(wrong_shape.value(), 0.0)));
    };

    REQUIRE_THROWS_WITH(gt::load_checkpoint(file, {target_w, missing}),
                        Contains("load_checkpoint") && Contains("no array named 'bias'"));
    untouched();
    REQUIRE_THROWS_WITH(gt::load_checkpoint(file, {target_w, wrong_shape}),
                        Contains("'b'") && Contains("(2,)") && Contains("(3,)"));
    untouched();

    std::string bytes;
    {
        std::ifstream in(file, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const auto truncated = scratch.path / "truncated.npz";
    std::ofstream(truncated, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
    REQUIRE_THROWS_WITH(gt::load_checkpoint(truncated, {target_w}), Contains("not a readable .npz"));
    REQUIRE_THROWS_WITH(gt::load_checkpoint(scratch.path / "absent.npz", {target_w}), Contains("cannot open"));
    untouched();
    REQUIRE_THROWS_WITH(gt::save_checkpoint(file, {w, gt::Variable64(gt::zeros<double>({1}), "w")}),
                        Contains("two variables are named 'w'"));
}

TEST_CASE("saving goes through a temporary file, so the previous checkpoint survives a failed save",
          "[checkpoint]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "model.npz";
    gt::Variable64 w(gt::fill<double>({2}, 1.0), "w");
    gt::save_checkpoint(file, {w});
    // What a crash half way through the next save leaves: a partial temporary beside the good file.
    std::ofstream(scratch.path / "model.npz.partial", std::ios::binary) << "PK\x03\x04 half written";
    gt::Variable64 loaded(gt::zeros<double>({2}), "w");
    gt::load_checkpoint(file, {loaded});
    REQUIRE(xt::all(xt::equal(loaded.value(), 1.0)));
    w.assign(gt::fill<double>({2}, 2.0));
    gt::save_checkpoint(file, {w});
    gt::load_checkpoint(file, {loaded});
    REQUIRE(xt::all(xt::equal(loaded.value(), 2.0)));
    REQUIRE_FALSE(std::filesystem::exists(scratch.path / "model.npz.partial"));
}
