// A character-level LSTM language model: embeddings, one LSTM of 256 units
// over windows of 64 characters, and logits for the next character at every
// step, trained on the same licence texts and split as char_transformer. It
// reports bits per character on the held-out 10% beside the bigram model's
// and prints text it generates.
//
//   char_rnn [--steps N] [--minutes M] [--seed N] [--capture]
//
// Trains for --steps steps or --minutes minutes, whichever ends first. Exits
// 1 unless its held-out bits per character beat the bigram model's.
#include <cstdio>
#include <iostream>

#include <gradtape/gradtape.hpp>

#include "char_corpus.hpp"

namespace gt = gradtape;
using namespace char_corpus;

namespace {

constexpr std::size_t context = 64;
constexpr std::size_t width = 64;
constexpr std::size_t units = 256;
constexpr std::size_t batch_size = 32;

// Character ids [B, T] (as numbers in a tensor) -> logits [B, T, alphabet].
gt::Sequential char_rnn(std::size_t alphabet)
{
    return gt::Sequential({gt::Embedding(alphabet, width, "characters"),
                           gt::LSTM(units, {.return_sequences = true}), gt::Dense(alphabet, {.name = "logits"})},
                          "char_rnn");
}

}  // namespace

int main(int argc, char** argv)
{
    const arguments args = parse(argc, argv);
    gt::set_seed(args.seed);
    const encoded_text text = encode(read_corpus("/usr/share/common-licenses"));
    const double bigram = bigram_bits(text);
    std::printf("%zu characters of %zu kinds; held out %zu; bigram model %.3f bits per character\n",
                text.train.size() + text.held_out.size(), text.alphabet.size(), text.held_out.size(), bigram);

    gt::Sequential model = char_rnn(text.alphabet.size());
    model.build({1, context});
    std::cout << model.summary();
    gt::Adam optimizer({.learning_rate = gt::cosine_decay(3e-3, std::uint64_t(args.steps), 0.1)});
    return train_and_report(model, optimizer, text, args, batch_size, context);
}
