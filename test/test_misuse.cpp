// A table of misuses. Each must throw the gradtape::error subtype the row
// names, with a message naming what was wrong and (where the call takes a
// call site) this file's line; afterwards the variables, the optimizer and
// the tape in use are exactly as before.
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <typeindex>
#include <unistd.h>
#include <vector>

#include "support.hpp"

namespace gt = gradtape;
using gt::Tensor;
using Catch::Matchers::Contains;

namespace {

// What every row runs against: a persistent tape holding two entries, a
// trainable and a frozen variable, and an optimizer with momentum state.
struct scene {
    std::filesystem::path directory;
    gt::Variable w{gt::fill<float>({2, 2}, 1.5f), "w"};
    gt::Variable frozen{gt::fill<float>({3}, 2.f), "frozen", false};
    gt::SGD optimizer{{.learning_rate = 0.1, .momentum = 0.9}};
    gt::GradientTape tape{{.persistent = true}};
    Tensor squared = gt::square(w);
    Tensor total = gt::reduce_sum(squared);
    // Watched, so that an op on it that fails would be recorded if it had succeeded.
    Tensor negative = gt::fill<float>({2, 2}, -1.f);

    explicit scene(std::filesystem::path where) : directory(std::move(where)) { tape.watch(negative); }

    // A file of `bytes` in the row's own directory.
    std::filesystem::path file(const std::string& name, const std::string& bytes) const
    {
        std::ofstream(directory / name, std::ios::binary) << bytes;
        return directory / name;
    }

    void require_unchanged()
    {
        REQUIRE(tape.size() == 2);
        REQUIRE(xt::all(xt::equal(w.value(), 1.5f)));
        REQUIRE(xt::all(xt::equal(frozen.value(), 2.f)));
        REQUIRE(optimizer.iterations() == 0);
        REQUIRE(xt::all(xt::equal(tape.gradient(total, w).value(), 3.f)));
        // The tape still records on this thread.
        const Tensor again = gt::square(w);
        REQUIRE(tape.size() == 3);
    }
};

struct misuse {
    std::string what;
    std::type_index error_type;
    std::vector<std::string> mentions;
    std::function<void(scene&)> act;
    // Member functions of a tensor take no call site; everything else does.
    bool names_call_site = true;
};

template <class E>
misuse row(std::string what, std::vector<std::string> mentions, std::function<void(scene&)> act,
           bool names_call_site = true)
{
    return {std::move(what), typeid(E), std::move(mentions), std::move(act), names_call_site};
}

// Runs `act` on the calling thread's behalf from another thread, rethrowing what it threw.
void on_another_thread(const std::function<void()>& act)
{
    std::exception_ptr failure;
    std::thread([&] {
        try {
            act();
        } catch (...) {
            failure = std::current_exception();
        }
    }).join();
    if (failure) {
        std::rethrow_exception(failure);
    }
}

// Asks `tape` for a gradient through an op whose backward rule calls
// `inside(tape, grad)` on that same tape.
void reenter_with(gt::GradientTape& tape, const Tensor& x,
                  const std::function<void(gt::GradientTape&, const Tensor&)>& inside)
{
    const Tensor y = gt::custom_gradient<float>(
        {x}, [](const auto& in) { return in[0] * 1.f; },
        [&](const Tensor& grad, const auto&, const auto&) {
            inside(tape, grad);
            return std::vector{grad};
        });
    (void)tape.gradient(gt::reduce_sum(y), x);
}

// The same on a persistent tape of its own.
void reenter(const std::function<void(gt::GradientTape&, const Tensor&)>& inside)
{
    const Tensor x = gt::ones<float>({2});
    gt::GradientTape tape({.persistent = true});
    tape.watch(x);
    reenter_with(tape, x, inside);
}

std::string valid_checkpoint_bytes(const std::filesystem::path& directory)
{
    gt::Variable w(gt::fill<float>({2, 2}, 7.f), "w");
    gt::Variable frozen(gt::fill<float>({3}, 7.f), "frozen");
    const auto path = directory / "valid.npz";
    gt::save_checkpoint(path, {w, frozen});
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const std::vector<misuse>& misuses()
{
    using gt::argument_error, gt::shape_error, gt::tape_error, gt::numeric_error;
    const auto x23 = [] { return gt::ones<float>({2, 3}); };
    static const std::vector<misuse> table{
        // Shapes.
        row<shape_error>("matmul of mismatched inner dimensions", {"matmul", "(2, 2)", "(3, 1)"},
                         [](scene& s) { (void)gt::matmul(s.w, gt::ones<float>({3, 1})); }),
        row<shape_error>("batched matmul of batch dimensions that do not broadcast",
                         {"matmul", "(2, 3, 2)", "(4, 2, 1)"},
                         [](scene&) { (void)gt::matmul(gt::ones<float>({2, 3, 2}), gt::ones<float>({4, 2, 1})); }),
        row<shape_error>("add of shapes that do not broadcast", {"add", "(2, 2)", "(3,)"},
                         [](scene& s) { (void)(s.w + gt::ones<float>({3})); }),
        row<shape_error>("where with a condition of another shape", {"where", "(3,)"},
                         [](scene& s) { (void)gt::where(gt::ones<float>({3}), s.w, s.w); }),
        row<shape_error>("reshape to another element count", {"reshape", "(2, 2)", "(3,)"},
                         [](scene& s) { (void)gt::reshape(s.w, {3}); }),
        row<shape_error>("reshape with two inferred dimensions", {"reshape", "(-1, -1)"},
                         [](scene& s) { (void)gt::reshape(s.w, {-1, -1}); }),
        row<shape_error>("reshape to a negative size", {"reshape", "-2"},
                            [](scene& s) { (void)gt::reshape(s.w, {-2, -2}); }),
        row<shape_error>("concat of tensors whose other dimensions differ", {"concat", "(2, 2)", "(2, 3)"},
                         [=](scene& s) { (void)gt::concat<float>({s.w, x23()}, 0); }),
        row<argument_error>("concat of an empty list", {"concat", "at least one tensor"},
                            [](scene&) { (void)gt::concat<float>({}, 0); }),
        row<shape_error>("stack of tensors of different shapes", {"stack", "(2, 2)", "(2, 3)"},
                         [=](scene& s) { (void)gt::stack<float>({s.w, x23()}); }),
        row<shape_error>("split into sizes that do not add up", {"split", "(2, 2)", "add up to 3"},
                            [](scene& s) { (void)gt::split(s.w, {1, 2}, 1); }),
        row<argument_error>("slice beyond the end", {"slice", "(2, 2)"},
                            [](scene& s) { (void)gt::slice(s.w, {1, 0}, {2, 2}); }),
        row<argument_error>("slice of a negative size other than -1", {"slice", "-3"},
                            [](scene& s) { (void)gt::slice(s.w, {0, 0}, {-3, 1}); }),
        row<shape_error>("broadcast_to a shape the tensor does not broadcast to", {"broadcast_to", "(3, 3)"},
                         [](scene& s) { (void)gt::broadcast_to(s.w, {3, 3}); }),
        row<argument_error>("tile with one multiple per dimension missing", {"tile", "(2, 2)"},
                            [](scene& s) { (void)gt::tile(s.w, {2}); }),
        row<shape_error>("softmax_cross_entropy_with_logits of labels of another shape",
                         {"softmax_cross_entropy_with_logits", "(2, 3)", "(2, 2)"},
                         [=](scene& s) { (void)gt::softmax_cross_entropy_with_logits(x23(), Tensor(s.w)); }),
        row<shape_error>("sparse labels of the wrong count", {"sparse_softmax_cross_entropy_with_logits", "(3,)"},
                         [](scene& s) {
                             (void)gt::sparse_softmax_cross_entropy_with_logits(xt::xarray<std::int64_t>{0, 1, 1},
                                                                                Tensor(s.w));
                         }),
        // Shapes whose arrays could not exist: refused before anything is allocated.
        row<shape_error>("one_hot of a depth whose array overflows", {"one_hot", "4611686018427387905"},
                         [](scene&) { (void)gt::one_hot<float>(xt::xarray<std::int64_t>{0}, (std::size_t{1} << 62) + 1); }),
        row<shape_error>("zeros of a shape whose element count overflows", {"fill", "(4294967296, 4294967296)"},
                         [](scene&) { (void)gt::zeros<float>({std::size_t{1} << 32, std::size_t{1} << 32}); }),
        row<shape_error>("random_normal of a shape whose bytes overflow", {"random_normal"},
                         [](scene&) { (void)gt::random_normal<double>({std::size_t{1} << 61}); }),
        row<shape_error>("glorot_uniform of a shape whose element count overflows", {"glorot_uniform"},
                         [](scene&) { (void)gt::glorot_uniform<float>({std::size_t{1} << 40, std::size_t{1} << 40}); }),
        row<shape_error>("reshape to a shape whose product wraps to the element count",
                         {"reshape", "4611686018427387905"},
                         [](scene& s) { (void)gt::reshape(s.w, {4, (std::ptrdiff_t{1} << 62) + 1}); }),
        row<shape_error>("tile by a multiple whose product overflows", {"tile"},
                         [](scene& s) { (void)gt::tile(s.w, {(std::size_t{1} << 62) + 1, 1}); }),
        row<shape_error>("broadcast_to a shape too large to exist", {"broadcast_to"},
                         [](scene& s) { (void)gt::broadcast_to(s.w, {std::size_t{1} << 62, 2, 2}); }),
        row<shape_error>("matmul of two empty operands whose product would not fit", {"matmul", "(4294967296, 4294967296)"},
                         [](scene&) {
                             (void)gt::matmul(gt::zeros<float>({std::size_t{1} << 32, 0}),
                                              gt::zeros<float>({0, std::size_t{1} << 32}));
                         }),
        row<shape_error>("add of operands that broadcast to a shape too large to exist",
                         {"add", "(1099511627776, 1, 0)", "(1, 1099511627776, 0)"}, [](scene&) {
                             (void)(gt::zeros<float>({std::size_t{1} << 40, 1, 0}) +
                                    gt::zeros<float>({1, std::size_t{1} << 40, 0}));
                         }),
        // Axes and arguments out of range.
        row<argument_error>("reduce_sum over an axis beyond the rank", {"reduce_sum", "axis 2", "rank 2"},
                            [](scene& s) { (void)gt::reduce_sum(s.w, {2}); }),
        row<argument_error>("reduce_mean over one axis twice", {"reduce_mean", "more than once"},
                            [](scene& s) { (void)gt::reduce_mean(s.w, {0, -2}); }),
        row<argument_error>("transpose with a permutation of the wrong length", {"transpose", "(2, 2)"},
                            [](scene& s) { (void)gt::transpose(s.w, {0}); }),
        row<argument_error>("transpose with a repeated axis", {"transpose", "axis 0", "more than once"},
                            [](scene& s) { (void)gt::transpose(s.w, {0, 0}); }),
        row<shape_error>("squeeze of a dimension that is not 1", {"squeeze", "(2, 2)"},
                            [](scene& s) { (void)gt::squeeze(s.w, {0}); }),
        row<argument_error>("expand_dims beyond the rank", {"expand_dims", "axis 4"},
                            [](scene& s) { (void)gt::expand_dims(s.w, 4); }),
        row<argument_error>("softmax over an axis beyond the rank", {"softmax", "axis 2"},
                            [](scene& s) { (void)gt::softmax(s.w, 2); }),
        row<argument_error>("gather of an index out of range", {"gather", "index 2", "(2, 2)"},
                            [](scene& s) { (void)gt::gather(s.w, {0, 2}); }),
        row<argument_error>("sparse labels outside [0, classes)", {"sparse_softmax_cross_entropy_with_logits", "5"},
                            [](scene& s) {
                                (void)gt::sparse_softmax_cross_entropy_with_logits(xt::xarray<std::int64_t>{0, 5},
                                                                                   Tensor(s.w));
                            }),
        row<argument_error>("clip_by_value with low above high", {"clip_by_value", "low", "high"},
                            [](scene& s) { (void)gt::clip_by_value(Tensor(s.w), 1.f, 0.f); }),
        row<argument_error>("dropout with a rate of 1 or more", {"dropout", "rate"},
                            [](scene& s) { (void)gt::dropout(Tensor(s.w), 1.5); }),
        row<argument_error>("linspace of no points", {"linspace", "n = 0"},
                            [](scene&) { (void)gt::linspace<float>(0, 1, 0); }),
        row<argument_error>("random_uniform with low above high", {"random_uniform"},
                            [](scene&) { (void)gt::random_uniform<float>({2}, 1.f, 0.f); }),
        // Empty and undefined tensors.
        row<argument_error>("reduce_max of an empty tensor", {"reduce_max", "(0, 3)"},
                            [](scene&) { (void)gt::reduce_max(gt::zeros<float>({0, 3})); }),
        row<argument_error>("reduce_min over an empty axis", {"reduce_min", "(2, 0)"},
                            [](scene&) { (void)gt::reduce_min(gt::zeros<float>({2, 0}), {1}); }),
        row<shape_error>("item of a tensor of several elements", {"item", "(2, 2)"},
                            [](scene& s) { (void)s.w.item(); }, false),
        row<argument_error>("an op on an undefined tensor", {"undefined"},
                            [](scene& s) { (void)(s.w + Tensor()); }, false),
        // Numeric checks.
        row<numeric_error>("log of negative values under check_numerics", {"log", "4 of 4 elements NaN or Inf"},
                           [](scene& s) {
                               gt::check_numerics guard;
                               (void)gt::log(s.negative);
                           }),
        row<numeric_error>("a NaN input under check_numerics", {"multiply", "NaN"},
                           [](scene& s) {
                               gt::check_numerics guard;
                               (void)(s.w * gt::fill<float>({2, 2}, std::nanf("")));
                           }),
        row<numeric_error>("a gradient that overflows under check_numerics", {"sqrt", "gradient"},
                           [](scene&) {
                               gt::check_numerics guard;
                               const Tensor x = gt::zeros<float>({2});
                               gt::GradientTape inner;
                               inner.watch(x);
                               const Tensor y = gt::reduce_sum(gt::sqrt(x));
                               (void)inner.gradient(y, x);
                           }),
        // The tape.
        row<argument_error>("gradient of a non-scalar target without an output gradient",
                            {"gradient", "(2, 2)", "output_gradient"},
                            [](scene& s) { (void)s.tape.gradient(s.squared, s.w); }),
        row<shape_error>("an output gradient of another shape than the target", {"gradient", "(2, 2)", "(3,)"},
                         [](scene& s) { (void)s.tape.gradient(s.squared, s.w, gt::ones<float>({3})); }),
        row<tape_error>("gradient with respect to an unwatched tensor", {"gradient", "not watched"},
                        [](scene& s) { (void)s.tape.gradient(s.total, gt::ones<float>({2})); }),
        row<tape_error>("a second gradient from a non-persistent tape", {"gradient", "non-persistent"},
                        [](scene&) {
                            const Tensor x = gt::ones<float>({2});
                            gt::GradientTape once;
                            once.watch(x);
                            const Tensor y = gt::reduce_sum(x * x);
                            (void)once.gradient(y, x);
                            (void)once.gradient(y, x);
                        }),
        row<tape_error>("a tape used from another thread", {"gradient", "thread"},
                        [](scene& s) { on_another_thread([&] { (void)s.tape.gradient(s.total, s.w); }); }),
        row<tape_error>("a gradient from a tape after reset()", {"gradient", "not watched"},
                        [](scene&) {
                            const Tensor x = gt::ones<float>({2});
                            gt::GradientTape tape({.persistent = true});
                            tape.watch(x);
                            const Tensor y = gt::reduce_sum(x * x);
                            tape.reset();
                            (void)tape.gradient(y, x);
                        }),
        row<tape_error>("a gradient from a tape that ended, through another tape", {"gradient", "not watched"},
                        [](scene&) {
                            const Tensor x = gt::ones<float>({2});
                            Tensor y;
                            {
                                gt::GradientTape ended;
                                ended.watch(x);
                                y = gt::reduce_sum(x * x);
                            }
                            gt::GradientTape later;
                            (void)later.gradient(y, x);
                        }),
        row<tape_error>("gradient asked of a tape by a backward rule it is running",
                        {"gradient", "computing a gradient"}, [](scene&) {
                            reenter([](gt::GradientTape& t, const Tensor& x) { (void)t.gradient(gt::reduce_sum(x), x); });
                        }),
        row<tape_error>("jacobian asked of a tape by a backward rule it is running",
                        {"jacobian", "computing a gradient"},
                        [](scene&) { reenter([](gt::GradientTape& t, const Tensor& x) { (void)t.jacobian(x, x); }); }),
        row<tape_error>("reset of a tape by a backward rule it is running", {"reset", "computing a gradient"},
                        [](scene&) { reenter([](gt::GradientTape& t, const Tensor&) { t.reset(); }); }),
        row<tape_error>("a non-persistent tape re-entered by a backward rule it is running",
                        {"gradient", "computing a gradient"},
                        [](scene&) {
                            const Tensor x = gt::ones<float>({2});
                            gt::GradientTape once;
                            once.watch(x);
                            reenter_with(once, x, [](gt::GradientTape& t, const Tensor& v) {
                                (void)t.gradient(gt::reduce_sum(v), v);
                            });
                        }),
        row<tape_error>("reset of a tape from another thread", {"reset", "thread"},
                        [](scene& s) { on_another_thread([&] { s.tape.reset(); }); }),
        row<tape_error>("size of a tape from another thread", {"size", "thread"},
                        [](scene& s) { on_another_thread([&] { (void)s.tape.size(); }); }),
        row<tape_error>("to_dot of a tape from another thread", {"to_dot", "thread"},
                        [](scene& s) { on_another_thread([&] { (void)s.tape.to_dot(); }); }),
        row<tape_error>("printing a tape from another thread", {"operator<<", "thread"},
                        [](scene& s) {
                            on_another_thread([&] {
                                std::ostringstream out;
                                out << s.tape;
                            });
                        },
                        false),
        row<tape_error>("jacobian of an unwatched source names jacobian", {"jacobian", "not watched"},
                        [](scene& s) { (void)s.tape.jacobian(s.squared, gt::ones<float>({2})); }),
        // Variables and optimizers.
        row<shape_error>("assign of another shape", {"assign", "'w'", "(2, 2)", "(4,)"},
                         [](scene& s) { s.w.assign(gt::ones<float>({4})); }),
        row<shape_error>("assign_sub of another shape", {"assign_sub", "'w'", "(2, 1)"},
                         [](scene& s) { s.w.assign_sub(gt::ones<float>({2, 1})); }),
        row<argument_error>("an optimizer given lists of different lengths", {"apply_gradients", "2", "1"},
                            [](scene& s) {
                                s.optimizer.apply_gradients<float>({gt::ones<float>({2, 2}), gt::ones<float>({3})}, {s.w});
                            }),
        row<argument_error>("a gradient for a frozen variable", {"apply_gradients", "'frozen'", "trainable"},
                            [](scene& s) {
                                s.optimizer.apply_gradients<float>({gt::ones<float>({2, 2}), gt::ones<float>({3})},
                                                            {s.w, s.frozen});
                            }),
        row<shape_error>("a gradient of the wrong shape", {"apply_gradients", "'w'", "(2, 3)"},
                         [](scene& s) { s.optimizer.apply_gradients<float>({gt::ones<float>({2, 3})}, {s.w}); }),
        row<argument_error>("an optimizer with a negative learning rate", {"SGD", "learning_rate"},
                            [](scene&) { gt::SGD bad(-0.1); }),
        row<argument_error>("Adam with beta1 of 1", {"Adam", "beta1"},
                            [](scene&) { gt::Adam bad({.beta1 = 1.0}); }),
        row<argument_error>("clip_by_global_norm with a negative norm", {"clip_by_global_norm", "clip_norm"},
                            [](scene& s) { (void)gt::clip_by_global_norm<float>({s.w}, -1.f); }),
        row<shape_error>("minibatches of tensors with different row counts", {"minibatches", "rows"},
                         [=](scene& s) { gt::minibatches<float> bad({s.w, x23().value() + 0.f, gt::ones<float>({5})}); }),
        // Checkpoints.
        row<argument_error>("a checkpoint that does not exist", {"load_checkpoint", "cannot open"},
                            [](scene& s) { gt::load_checkpoint(s.directory / "absent.npz", {s.w}); }),
        row<argument_error>("a truncated checkpoint", {"load_checkpoint", "truncated.npz"},
                            [](scene& s) {
                                const std::string bytes = valid_checkpoint_bytes(s.directory);
                                gt::load_checkpoint(s.file("truncated.npz", bytes.substr(0, bytes.size() / 2)),
                                                    {s.w, s.frozen});
                            }),
        row<argument_error>("a checkpoint that is not a zip file", {"load_checkpoint", "not a readable .npz"},
                            [](scene& s) { gt::load_checkpoint(s.file("text.npz", "weights: 1 2 3\n"), {s.w}); }),
        row<shape_error>("a checkpoint whose array has another shape", {"load_checkpoint", "'w'", "(3,)", "(2, 2)"},
                         [](scene& s) {
                             gt::Variable other_w(gt::ones<float>({3}), "w");
                             gt::Variable other_frozen(gt::fill<float>({3}, 9.f), "frozen");
                             gt::save_checkpoint(s.directory / "other.npz", {other_w, other_frozen});
                             gt::load_checkpoint(s.directory / "other.npz", {s.frozen, s.w});
                         }),
        row<argument_error>("a checkpoint without one of the variables", {"load_checkpoint", "'frozen'"},
                            [](scene& s) {
                                gt::save_checkpoint(s.directory / "only_w.npz", {s.w});
                                gt::load_checkpoint(s.directory / "only_w.npz", {s.w, s.frozen});
                            }),
        row<argument_error>("saving two variables of one name", {"save_checkpoint", "'w'"},
                            [](scene& s) {
                                gt::Variable twin(gt::ones<float>({1}), "w");
                                gt::save_checkpoint(s.directory / "twins.npz", {s.w, twin});
                            }),
    };
    return table;
}

std::string names(const std::type_index& type)
{
    return type == typeid(gt::shape_error)      ? "shape_error"
           : type == typeid(gt::argument_error) ? "argument_error"
           : type == typeid(gt::tape_error)     ? "tape_error"
           : type == typeid(gt::numeric_error)  ? "numeric_error"
                                                : type.name();
}

}  // namespace

TEST_CASE("every misuse in the table throws its error, says what was wrong and changes nothing", "[misuse]")
{
    REQUIRE(misuses().size() >= 30);
    const auto root = std::filesystem::temp_directory_path() / ("gradtape_misuse_" + std::to_string(::getpid()));
    for (std::size_t i = 0; i < misuses().size(); ++i) {
        const misuse& m = misuses()[i];
        DYNAMIC_SECTION(m.what)
        {
            const auto directory = root / std::to_string(i);
            std::filesystem::create_directories(directory);
            scene s(directory);
            std::string message;
            std::string thrown = "nothing";
            try {
                m.act(s);
            } catch (const gt::error& e) {
                message = e.what();
                thrown = names(typeid(e));
            }
            INFO(message);
            REQUIRE(thrown == names(m.error_type));
            for (const auto& mention : m.mentions) {
                REQUIRE_THAT(message, Contains(mention));
            }
            if (m.names_call_site) {
                REQUIRE_THAT(message, Contains("test_misuse.cpp:"));
            }
            s.require_unchanged();
        }
    }
    std::filesystem::remove_all(root);
}
