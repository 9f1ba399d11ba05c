// Checkpoints: a round trip, and every way a load can fail leaving the variables as they were.
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "support.hpp"

namespace gt = gradtape;
using Catch::Matchers::Contains;
using support::scratch_directory;

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
    // What a crash half way through an earlier save left: a partial temporary beside the good file.
    std::ofstream(scratch.path / "model.npz.partial", std::ios::binary) << "PK\x03\x04 half written";
    gt::Variable64 loaded(gt::zeros<double>({2}), "w");
    gt::load_checkpoint(file, {loaded});
    REQUIRE(xt::all(xt::equal(loaded.value(), 1.0)));
    w.assign(gt::fill<double>({2}, 2.0));
    gt::save_checkpoint(file, {w});
    gt::load_checkpoint(file, {loaded});
    REQUIRE(xt::all(xt::equal(loaded.value(), 2.0)));
    // The save left no temporary of its own, and did not touch the stale one.
    std::set<std::string> left;
    for (const auto& entry : std::filesystem::directory_iterator(scratch.path)) {
        left.insert(entry.path().filename().string());
    }
    REQUIRE(left == std::set<std::string>{"model.npz", "model.npz.partial"});
}

namespace {

std::string read_bytes(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes)
{
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace

TEST_CASE("a checkpoint whose bytes changed is refused by its CRC, not loaded with other values", "[checkpoint]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "model.npz";
    gt::Variable64 w(gt::fill<double>({4}, 1.0), "w");
    gt::save_checkpoint(file, {w});
    std::string bytes = read_bytes(file);
    // 1.0 is 00 00 00 00 00 00 f0 3f; 1.5 is ... f8 3f: one bit of the last value's exponent byte.
    const std::size_t at = bytes.rfind(std::string("\x00\x00\xf0\x3f", 4));
    REQUIRE(at != std::string::npos);
    bytes[at + 2] = char(0xf8);
    write_bytes(file, bytes);
    gt::Variable64 loaded(gt::zeros<double>({4}), "w");
    REQUIRE_THROWS_WITH(gt::load_checkpoint(file, {loaded}), Contains("not a readable .npz") && Contains("CRC"));
    REQUIRE(xt::all(xt::equal(loaded.value(), 0.0)));
}

TEST_CASE("loading writes into each variable's own buffer, as every other update does", "[checkpoint]")
{
    scratch_directory scratch;
    gt::Variable w(gt::fill<float>({3, 2}, 5.f), "w");
    gt::save_checkpoint(scratch.path / "w.npz", {w});
    gt::Variable loaded(gt::zeros<float>({3, 2}), "w");
    const float* buffer = loaded.value().data();
    gt::load_checkpoint(scratch.path / "w.npz", {loaded});
    REQUIRE(loaded.value().data() == buffer);
    REQUIRE(xt::all(xt::equal(loaded.value(), 5.f)));
}

TEST_CASE("a save never writes through a planted symlink, keeps the file's mode and refuses an empty path",
          "[checkpoint]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "model.npz";
    const auto victim = scratch.path / "victim.txt";
    write_bytes(victim, "precious");
    // Where a fixed-name temporary would be written.
    std::filesystem::create_symlink(victim, scratch.path / "model.npz.partial");
    gt::Variable64 w(gt::fill<double>({2}, 1.0), "w");
    gt::save_checkpoint(file, {w});
    REQUIRE(read_bytes(victim) == "precious");

    std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    gt::save_checkpoint(file, {w});
    REQUIRE(std::filesystem::status(file).permissions() ==
            (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));

    REQUIRE_THROWS_WITH(gt::save_checkpoint("", {w}), Contains("save_checkpoint") && Contains("path of a file"));
    REQUIRE_FALSE(std::filesystem::exists(".partial"));
}

TEST_CASE("a save that cannot replace the file leaves no temporary behind", "[checkpoint]")
{
    scratch_directory scratch;
    // A non-empty directory where the checkpoint should go: the rename fails.
    const auto occupied = scratch.path / "model.npz";
    std::filesystem::create_directories(occupied / "inside");
    gt::Variable64 w(gt::fill<double>({2}, 1.0), "w");
    REQUIRE_THROWS_WITH(gt::save_checkpoint(occupied, {w}), Contains("cannot replace"));
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(scratch.path)) {
        ++entries;
    }
    REQUIRE(entries == 1);
}

TEST_CASE("concurrent saves to one path all succeed and leave a whole checkpoint", "[checkpoint][threads]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "model.npz";
    std::vector<std::thread> savers;
    std::atomic<int> failures{0};
    for (int t = 0; t < 2; ++t) {
        savers.emplace_back([&, t] {
            gt::Variable64 w(gt::fill<double>({64}, double(t + 1)), "w");
            for (int round = 0; round < 50; ++round) {
                try {
                    gt::save_checkpoint(file, {w});
                } catch (const gt::error&) {
                    ++failures;
                }
            }
        });
    }
    for (auto& saver : savers) {
        saver.join();
    }
    REQUIRE(failures == 0);
    gt::Variable64 loaded(gt::zeros<double>({64}), "w");
    gt::load_checkpoint(file, {loaded});
    const double first = loaded.value()(0);
    REQUIRE((first == 1.0 || first == 2.0));
    REQUIRE(xt::all(xt::equal(loaded.value(), first)));
}

TEST_CASE("what a 16-bit ZIP field cannot count is written as ZIP64 or refused before writing", "[checkpoint]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "model.npz";
    SECTION("65,536 variables")
    {
        std::vector<gt::Variable> many;
        for (int i = 0; i < 65536; ++i) {
            many.emplace_back(gt::fill<float>({1}, float(i)), "v" + std::to_string(i));
        }
        gt::save_checkpoint(file, many);
        std::vector<gt::Variable> loaded;
        for (int i = 0; i < 65536; ++i) {
            loaded.emplace_back(gt::zeros<float>({1}), "v" + std::to_string(i));
        }
        gt::load_checkpoint(file, loaded);
        REQUIRE(loaded.back().item() == 65535.f);
        REQUIRE(loaded[1234].item() == 1234.f);
    }
    SECTION("the longest name a ZIP entry holds, and one byte more")
    {
        gt::Variable longest(gt::fill<float>({2}, 3.f), std::string(65531, 'n'));
        gt::save_checkpoint(file, {longest});
        const std::string good = read_bytes(file);
        gt::Variable too_long(gt::fill<float>({2}, 4.f), std::string(65532, 'n'));
        REQUIRE_THROWS_WITH(gt::save_checkpoint(file, {too_long}), Contains("save_checkpoint") && Contains("65531"));
        REQUIRE(read_bytes(file) == good);
        gt::Variable loaded(gt::zeros<float>({2}), std::string(65531, 'n'));
        gt::load_checkpoint(file, {loaded});
        REQUIRE(xt::all(xt::equal(loaded.value(), 3.f)));
    }
    SECTION("data that holds the bytes of the end-of-directory signature")
    {
        // 'PK\5\6' as the low half of a double, twice.
        double signature = 0;
        const std::uint64_t bits = 0x3ff0000006054b50ULL;
        std::memcpy(&signature, &bits, sizeof bits);
        gt::Variable64 w(gt::fill<double>({2}, signature), "w");
        gt::save_checkpoint(file, {w});
        gt::Variable64 loaded(gt::zeros<double>({2}), "w");
        gt::load_checkpoint(file, {loaded});
        REQUIRE(loaded.value() == w.value());
    }
}

TEST_CASE("only regular files are read: a directory, a device and a FIFO are refused at once", "[checkpoint]")
{
    scratch_directory scratch;
    gt::Variable64 w(gt::zeros<double>({2}), "w");
    REQUIRE_THROWS_AS(gt::load_checkpoint(scratch.path, {w}), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::load_checkpoint("/dev/zero", {w}), Contains("not a regular file"));
    const auto fifo = scratch.path / "pipe.npz";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    REQUIRE_THROWS_WITH(gt::load_checkpoint(fifo, {w}), Contains("not a regular file"));
}

namespace {

// A small model with everything that carries state between steps: dropout
// (the generator), batch normalization (moving statistics) and Adam (moments).
gt::Sequential make_model()
{
    return gt::Sequential({gt::Dense(16, {.activation = "relu"}), gt::Dropout(0.3), gt::BatchNormalization(),
                           gt::Dense(3)},
                          "net");
}

// A model with a weight of its own and an LSTM over the five features read as a sequence.
class sequence_classifier : public gt::Model {
public:
    sequence_classifier() : gt::Model("reader") {}
    gt::Tensor call(const gt::Tensor& x, bool) override
    {
        const auto batch = std::ptrdiff_t(x.shape()[0]);
        return head_(lstm_(gt::reshape(x, {batch, -1, 1}))) / temperature_;
    }

private:
    gt::LSTM lstm_ = add(gt::LSTM(6));
    gt::Dense head_ = add(gt::Dense(3));
    gt::Variable temperature_ = add_weight("temperature", {}, {.initializer = "ones"});
};

// One epoch of shuffled minibatches.
void train_epoch(const gt::Layer& model, gt::optimizer& optimizer, gt::minibatches<float>& batches)
{
    for (const auto& batch : batches) {
        (void)optimizer.minimize(
            [&] {
                return gt::reduce_mean(
                    gt::sparse_softmax_cross_entropy_with_logits(batch.labels[0], model(batch.tensors[0], true)));
            },
            model);
    }
}

}  // namespace

TEST_CASE("training resumed from a model checkpoint goes on bit for bit as if never stopped", "[checkpoint]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "resume.npz";
    gt::set_seed(8);
    const gt::Tensor points = gt::random_normal<float>({64, 5});
    const xt::xarray<std::int64_t> labels = gt::argmax(points, 1) % 3;
    gt::minibatches<float> batches({points}, {labels}, {.batch_size = 16});
    const auto schedule = gt::exponential_decay(0.01, 4, 0.5);

    gt::set_seed(1);
    gt::Sequential straight = make_model();
    gt::Adam straight_optimizer({.learning_rate = schedule, .amsgrad = true});
    straight.build({1, 5});
    train_epoch(straight, straight_optimizer, batches);
    gt::save_checkpoint(file, straight, straight_optimizer);
    train_epoch(straight, straight_optimizer, batches);
    const auto straight_state = gt::random_state();

    // A fresh process: another seed, other initial weights, an optimizer that has never stepped.
    gt::set_seed(99);
    gt::Sequential resumed = make_model();
    gt::Adam resumed_optimizer({.learning_rate = schedule, .amsgrad = true});
    resumed.build({1, 5});
    gt::load_checkpoint(file, resumed, resumed_optimizer);
    REQUIRE(resumed_optimizer.iterations() == 4);
    train_epoch(resumed, resumed_optimizer, batches);

    const auto expected = straight.named_variables();
    const auto actual = resumed.named_variables();
    REQUIRE(actual.size() == 8);
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO(expected[i].first);
        REQUIRE(actual[i].first == expected[i].first);
        REQUIRE(actual[i].second.value() == expected[i].second.value());
        if (expected[i].second.trainable()) {
            REQUIRE(resumed_optimizer.slots(actual[i].second) == straight_optimizer.slots(expected[i].second));
        }
    }
    REQUIRE(gt::random_state() == straight_state);
}

TEST_CASE("a model with a weight of its own and an LSTM resumes bit for bit", "[checkpoint]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "reader.npz";
    gt::set_seed(12);
    const gt::Tensor points = gt::random_normal<float>({48, 5});
    const xt::xarray<std::int64_t> labels = gt::argmax(points, 1) % 3;
    gt::minibatches<float> batches({points}, {labels}, {.batch_size = 16});

    gt::set_seed(2);
    sequence_classifier straight;
    gt::RMSprop straight_optimizer({.learning_rate = 0.01});
    straight.build({1, 5});
    train_epoch(straight, straight_optimizer, batches);
    gt::save_checkpoint(file, straight, straight_optimizer);
    train_epoch(straight, straight_optimizer, batches);

    gt::set_seed(98);
    sequence_classifier resumed;
    gt::RMSprop resumed_optimizer({.learning_rate = 0.01});
    resumed.build({1, 5});
    gt::load_checkpoint(file, resumed, resumed_optimizer);
    train_epoch(resumed, resumed_optimizer, batches);

    const auto expected = straight.named_variables();
    const auto actual = resumed.named_variables();
    REQUIRE(actual.size() == 6);
    REQUIRE(actual[0].first == "reader/temperature");
    REQUIRE(actual[1].first == "reader/lstm/kernel");
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO(expected[i].first);
        REQUIRE(actual[i].first == expected[i].first);
        REQUIRE(actual[i].second.value() == expected[i].second.value());
    }
    REQUIRE(straight.named_variables()[0].second.value()() != 1.0f);
}

TEST_CASE("a model checkpoint that does not fit changes nothing", "[checkpoint][errors]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "model.npz";
    gt::Sequential model = make_model();
    gt::Adam optimizer;
    REQUIRE_THROWS_WITH(gt::save_checkpoint(file, model), Contains("has no variables yet"));
    model.build({2, 5});
    gt::save_checkpoint(file, model);

    gt::Sequential other = make_model();
    other.build({2, 5});
    const auto before = other.variables()[0].value();
    const auto state = gt::random_state();
    // Saved without an optimizer: nothing to resume from.
    REQUIRE_THROWS_WITH(gt::load_checkpoint(file, other, optimizer),
                        Contains("no optimizer state named 'optimizer/iterations'"));
    REQUIRE(other.variables()[0].value() == before);
    REQUIRE(gt::random_state() == state);

    gt::Sequential wider({gt::Dense(17)}, "net");
    wider.build({2, 5});
    REQUIRE_THROWS_WITH(gt::load_checkpoint(file, wider), Contains("array 'net/dense/kernel' has shape (5, 16)"));

    gt::load_checkpoint(file, other);
    REQUIRE(other.variables()[0].value() == model.variables()[0].value());

    // Slots of the wrong shape are refused before anything changes.
    gt::Variable w(gt::zeros<float>({2}), "w");
    REQUIRE_THROWS_WITH(optimizer.set_slots(w, {{"m", xt::zeros<double>({3})}, {"v", xt::zeros<double>({2})},
                                                {"steps", xt::xarray<double>(1.0)}}),
                        Contains("slot 'm' of variable 'w' has shape (3,), not (2,)"));
    REQUIRE(optimizer.slots(w).empty());
    REQUIRE_THROWS_AS(gt::set_random_state({1, 2, 3}), gt::argument_error);
}

TEST_CASE("read_npy and read_npz read arrays into tensors, refusing what they cannot", "[checkpoint]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "arrays.npz";
    gt::Variable64 w(gt::Tensor64(xt::xarray<double>{{1.5, -2}, {3, 4}}), "layer/w");
    gt::save_checkpoint(file, {w});
    const auto arrays = gt::read_npz<float>(file);
    REQUIRE(arrays.size() == 1);
    REQUIRE(arrays.at("layer/w") == xt::xarray<float>{{1.5f, -2}, {3, 4}});
    REQUIRE(gt::read_npz<std::int64_t>(file).at("layer/w")(1, 0) == 3);
    REQUIRE_THROWS_WITH(gt::read_npy<float>(file), Contains("read_npy") && Contains("no .npy magic"));
    REQUIRE_THROWS_WITH(gt::read_npz<float>(scratch.path / "missing.npz"), Contains("read_npz"));
}

namespace {

// The entries of a .npz, name and bytes, in order, read with libzip.
std::vector<std::pair<std::string, std::string>> entries_of(const std::filesystem::path& path)
{
    int error = 0;
    zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY, &error);
    REQUIRE(archive != nullptr);
    std::vector<std::pair<std::string, std::string>> entries;
    for (zip_int64_t i = 0; i < zip_get_num_entries(archive, 0); ++i) {
        zip_stat_t status;
        REQUIRE(zip_stat_index(archive, zip_uint64_t(i), 0, &status) == 0);
        std::string bytes(status.size, '\0');
        zip_file_t* file = zip_fopen_index(archive, zip_uint64_t(i), 0);
        REQUIRE(zip_fread(file, bytes.data(), bytes.size()) == zip_int64_t(bytes.size()));
        zip_fclose(file);
        entries.emplace_back(status.name, std::move(bytes));
    }
    zip_discard(archive);
    return entries;
}

// A .npz of `entries`, stored or deflated, written with libzip.
void write_npz(const std::filesystem::path& path, const std::vector<std::pair<std::string, std::string>>& entries,
               bool deflated = false)
{
    int error = 0;
    zip_t* archive = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    REQUIRE(archive != nullptr);
    for (const auto& [name, bytes] : entries) {
        zip_source_t* source = zip_source_buffer(archive, bytes.data(), bytes.size(), 0);
        const zip_int64_t index = zip_file_add(archive, name.c_str(), source, ZIP_FL_ENC_UTF_8);
        REQUIRE(index >= 0);
        REQUIRE(zip_set_file_compression(archive, zip_uint64_t(index), deflated ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) == 0);
    }
    REQUIRE(zip_close(archive) == 0);
}

// An .npy's bytes with its data replaced by `values`, of the same size.
template <class T>
std::string with_values(std::string npy, const std::vector<T>& values)
{
    const std::size_t data = npy.find('\n') + 1;
    REQUIRE(npy.size() - data == values.size() * sizeof(T));
    std::memcpy(npy.data() + data, values.data(), values.size() * sizeof(T));
    return npy;
}

}  // namespace

TEST_CASE("a checkpoint holding what no optimizer or generator writes is refused, naming file and entry",
          "[checkpoint][errors]")
{
    scratch_directory scratch;
    const auto saved = scratch.path / "saved.npz";
    gt::set_seed(1);
    gt::Sequential model = make_model();
    gt::Adam optimizer({.amsgrad = true});
    const gt::Tensor x = gt::random_normal<float>({8, 5});
    const xt::xarray<std::int64_t> labels = xt::xarray<std::int64_t>{0, 1, 2, 0, 1, 2, 0, 1};
    gt::minibatches<float> batches({x}, {labels}, {.batch_size = 4});
    train_epoch(model, optimizer, batches);
    gt::save_checkpoint(saved, model, optimizer);
    const auto entries = entries_of(saved);

    const std::string kernel = "optimizer/net/dense/kernel/";
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const auto refused = [&](const std::string& entry, const auto& values, const std::string& why) {
        INFO(entry << ": " << why);
        auto changed = entries;
        const auto found = std::ranges::find_if(changed, [&](const auto& e) { return e.first == entry; });
        REQUIRE(found != changed.end());
        found->second = with_values(found->second, values);
        const auto file = scratch.path / "broken.npz";
        write_npz(file, changed);
        gt::Sequential fresh = make_model();
        fresh.build({1, 5});
        gt::Adam resumed({.amsgrad = true});
        const auto before = fresh.variables()[0].value();
        const auto state = gt::random_state();
        REQUIRE_THROWS_WITH(gt::load_checkpoint(file, fresh, resumed),
                            Contains("load_checkpoint") && Contains("broken.npz") && Contains(why));
        REQUIRE(fresh.variables()[0].value() == before);
        REQUIRE(resumed.iterations() == 0);
        REQUIRE(resumed.slots(fresh.variables()[0]).empty());
        REQUIRE(gt::random_state() == state);
    };
    refused(kernel + "steps.npy", std::vector<double>{-1}, "entry '" + kernel + "steps'");
    refused(kernel + "steps.npy", std::vector<double>{2.5}, "a count of updates");
    refused(kernel + "steps.npy", std::vector<double>{0}, "a count of updates");
    std::vector<double> moments(5 * 16, 0.25);
    moments[7] = nan;
    refused(kernel + "m.npy", moments, "entry '" + kernel + "m'");
    moments[7] = 1e300;
    refused(kernel + "m.npy", moments, "of float32");
    moments[7] = -1e-3;
    refused(kernel + "v.npy", moments, "finite values >= 0");
    refused(kernel + "v_max.npy", moments, "finite values >= 0");
    // A generator state of zeros draws zeros for ever: no seed gives it.
    std::vector<std::uint64_t> zeros(313, 0);
    zeros.back() = 312;
    refused("random/state.npy", zeros, "is not a generator state");
    // A variable's value that float32 cannot hold.
    std::vector<double> huge(5 * 16, 0.5);
    huge[3] = 1e39;
    auto as_double = entries;
    // The kernel saved as float64 (a checkpoint of a float64 model) loads
    // into float32, value by value, unless a value does not fit.
    for (auto& [name, bytes] : as_double) {
        if (name == "net/dense/kernel.npy") {
            std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 16), }";
            header.append(63 - (10 + header.size()) % 64, ' ');
            header += '\n';
            bytes = std::string("\x93NUMPY\x01\x00", 8) + char(header.size() & 0xff) + char(header.size() >> 8) +
                    header + std::string(5 * 16 * 8, '\0');
            bytes = with_values(bytes, huge);
        }
    }
    write_npz(scratch.path / "huge.npz", as_double);
    gt::Sequential fresh = make_model();
    fresh.build({1, 5});
    REQUIRE_THROWS_WITH(gt::load_checkpoint(scratch.path / "huge.npz", fresh),
                        Contains("array 'net/dense/kernel': element 3 (1e+39) is not a value of float32"));
    huge[3] = 0.5;
    as_double[0].second = with_values(as_double[0].second, huge);
    write_npz(scratch.path / "huge.npz", as_double);
    gt::load_checkpoint(scratch.path / "huge.npz", fresh);
    REQUIRE(xt::all(xt::equal(fresh.variables()[0].value(), 0.5f)));
}

TEST_CASE("read_npy and read_npz refuse values their type cannot hold, as NumPy calls such casts invalid",
          "[checkpoint][errors]")
{
    scratch_directory scratch;
    gt::Variable64 w(gt::Tensor64(xt::xarray<double>{0, 1.5, 255}), "w");
    const auto file = scratch.path / "w.npz";
    gt::save_checkpoint(file, {w});
    // A fraction is dropped, as numpy's astype drops it.
    REQUIRE((gt::read_npz<std::uint8_t>(file).at("w") == xt::xarray<std::uint8_t>{0, 1, 255}));
    for (const double bad : {std::numeric_limits<double>::quiet_NaN(), 256.0, -1.0, 1e300}) {
        INFO(bad);
        auto entries = entries_of(file);
        entries[0].second = with_values<double>(entries[0].second, {0, bad, 2});
        write_npz(file, entries);
        REQUIRE_THROWS_WITH(gt::read_npz<std::uint8_t>(file), Contains("read_npz") && Contains("array 'w': element 1") &&
                                                                 Contains("is not a value of uint8"));
        if (bad == 1e300) {
            REQUIRE_THROWS_WITH(gt::read_npz<float>(file), Contains("element 1 (1e+300) is not a value of float32"));
        } else {
            REQUIRE((gt::read_npz<float>(file).at("w")(1) == float(bad) || std::isnan(bad)));
        }
    }
}

TEST_CASE("a .npz entry is read as its bytes arrive, never by the size it claims", "[checkpoint][errors]")
{
    scratch_directory scratch;
    const auto file = scratch.path / "claims.npz";
    gt::Variable64 w(gt::zeros<double>({1000}), "w");
    gt::save_checkpoint(file, {w});
    const auto entries = entries_of(file);
    for (const bool deflated : {false, true}) {
        INFO((deflated ? "deflated" : "stored"));
        write_npz(file, entries, deflated);
        REQUIRE((gt::read_npz<double>(file).at("w") == w.value()));
        // The entry's size, in its local header and in the central directory,
        // claims 3 GiB: far more than its stored bytes can hold.
        std::string bytes = read_bytes(file);
        const std::string claim("\x00\x00\x00\xc0", 4);
        const std::size_t local = bytes.find("PK\x03\x04");
        const std::size_t central = bytes.find("PK\x01\x02");
        REQUIRE((local != std::string::npos && central != std::string::npos));
        bytes.replace(local + 22, 4, claim);
        bytes.replace(central + 24, 4, claim);
        write_bytes(file, bytes);
        REQUIRE_THROWS_WITH(gt::read_npz<double>(file),
                            Contains("read_npz") && Contains("claims 3221225472 bytes, more than its"));
    }
    // An empty file is no archive; two entries of one name are one array too many.
    write_bytes(file, "");
    REQUIRE_THROWS_WITH(gt::read_npz<double>(file), Contains("is not a readable .npz: it is empty"));
    write_npz(file, {{"w", entries[0].second}, {"w.npy", entries[0].second}});
    REQUIRE_THROWS_WITH(gt::read_npz<double>(file), Contains("two entries for the array 'w'"));
}
