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
#include <chrono>
#include <cstdio>
#include <iostream>
#include <numbers>

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
    const auto start = std::chrono::steady_clock::now();
    const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    const auto train_step_eagerly = [&](const gt::Tensor& inputs, const xt::xarray<std::int64_t>& targets) {
        return optimizer.minimize(
            [&] { return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(targets, model(inputs))); },
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
    std::printf("after %ld steps and %.0f s: held-out %.3f bits per character (bigram %.3f)\n", step, elapsed(),
                bits, bigram);
    std::printf("generated:\n%s\n", generate(model, text, 400, context).c_str());
    return bits < bigram ? 0 : 1;
}
