// A small decoder-only transformer over characters: token and learned
// position embeddings, two pre-norm blocks of causal multi-head attention and
// a relu MLP, trained on the licence texts every Debian system has (the
// regular files of /usr/share/common-licenses, in name order). It reports
// bits per character on the last 10% of the text beside a character-bigram
// model fitted to the first 90%, and prints text it generates.
//
//   char_transformer [--steps N] [--minutes M] [--seed N] [--capture]
//
// Trains for --steps steps or --minutes minutes, whichever ends first. Exits
// 1 unless its held-out bits per character beat the bigram model's.
#include <chrono>
#include <cstdio>
#include <numbers>
#include <string>
#include <vector>

#include <gradtape/gradtape.hpp>

#include "char_corpus.hpp"

namespace gt = gradtape;
using namespace char_corpus;

namespace {

constexpr std::size_t context = 64;
constexpr std::size_t width = 64;
constexpr std::size_t heads = 4;
constexpr std::size_t batch_size = 32;

// Pre-norm: x + attention(norm(x)), then x + mlp(norm(x)).
class block : public gt::Model {
public:
    block() : gt::Model("block") {}
    gt::Tensor call(const gt::Tensor& x, bool training) override
    {
        const gt::Tensor attended = x + attention_(norm1_(x), training);
        return attended + down_(up_(norm2_(attended)));
    }

private:
    gt::LayerNormalization norm1_ = add(gt::LayerNormalization());
    gt::MultiHeadAttention attention_ =
        add(gt::MultiHeadAttention(heads, width / heads, {.use_causal_mask = true}));
    gt::LayerNormalization norm2_ = add(gt::LayerNormalization());
    gt::Dense up_ = add(gt::Dense(4 * width, {.activation = "relu"}));
    gt::Dense down_ = add(gt::Dense(width));
};

// Character ids [B, T] (as numbers in a tensor) -> logits [B, T, alphabet].
class char_transformer : public gt::Model {
public:
    explicit char_transformer(std::size_t alphabet)
        : gt::Model("char_transformer"), tokens_(add(gt::Embedding(alphabet, width, "tokens"))),
          positions_(add(gt::Embedding(context, width, "positions"))), logits_(add(gt::Dense(alphabet)))
    {
    }
    gt::Tensor call(const gt::Tensor& ids, bool training) override
    {
        const xt::xarray<std::int64_t> where = xt::arange<std::int64_t>(std::int64_t(ids.shape()[1]));
        gt::Tensor x = tokens_(ids) + positions_(where);
        x = second_(first_(x, training), training);
        return logits_(norm_(x));
    }

private:
    gt::Embedding tokens_;
    gt::Embedding positions_;
    block first_block_;
    block second_block_;
    gt::Layer first_ = add(first_block_);
    gt::Layer second_ = add(second_block_);
    gt::LayerNormalization norm_ = add(gt::LayerNormalization());
    gt::Dense logits_;
};

}  // namespace

int main(int argc, char** argv)
{
    const arguments args = parse(argc, argv);
    gt::set_seed(args.seed);
    const encoded_text text = encode(read_corpus("/usr/share/common-licenses"));
    const double bigram = bigram_bits(text);
    const double uniform = std::log2(double(text.alphabet.size()));
    std::printf("%zu characters of %zu kinds; held out %zu; bigram model %.3f bits per character, uniform %.3f\n",
                text.train.size() + text.held_out.size(), text.alphabet.size(), text.held_out.size(), bigram, uniform);

    char_transformer model(text.alphabet.size());
    gt::Adam optimizer({.learning_rate = gt::warmup(gt::cosine_decay(3e-3, std::uint64_t(args.steps), 0.1), 100)});
    const auto start = std::chrono::steady_clock::now();
    const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    const auto train_step_eagerly = [&](const gt::Tensor& inputs, const xt::xarray<std::int64_t>& targets) {
        return optimizer.minimize(
            [&] { return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(targets, model(inputs, true))); },
            model);
    };
    // With --capture, recorded at the first step and replayed after.
    auto train_step = gt::capture(train_step_eagerly);
    long step = 0;
    double recent = 0;
    while (step < args.steps && elapsed() < 60 * args.minutes) {
        const windows w = random_windows(text.train, batch_size, context);
        const gt::Tensor loss =
            args.capture ? train_step(w.inputs, w.targets) : train_step_eagerly(w.inputs, w.targets);
        recent = step == 0 ? loss.item() : 0.98 * recent + 0.02 * loss.item();
        if (++step % 250 == 0) {
            std::printf("step %5ld  training %.3f bits per character  %.0f s\n", step, recent / std::numbers::ln2,
                        elapsed());
            std::fflush(stdout);
        }
    }
    const double bits = held_out_bits(model, text.held_out, context);
    std::printf("after %ld steps and %.0f s: held-out %.3f bits per character (bigram %.3f, uniform %.3f)\n", step,
                elapsed(), bits, bigram, uniform);
    std::printf("generated:\n%s\n", generate(model, text, 400, context).c_str());
    return bits < bigram ? 0 : 1;
}
