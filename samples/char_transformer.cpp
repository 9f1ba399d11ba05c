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
#include <cstdio>
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
    return train_and_report(model, optimizer, text, args, batch_size, context);
}
