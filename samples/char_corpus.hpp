// What the character-level samples share: the licence texts every Debian
// system has (the regular files of /usr/share/common-licenses, in name
// order) as ids, split 90/10; a character-bigram model to beat; windows of
// the text; held-out bits per character; and text drawn from a model.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numbers>
#include <string>
#include <vector>

#include <gradtape/gradtape.hpp>

namespace char_corpus {

namespace gt = gradtape;

// --steps, --minutes (whichever ends first), --seed and --capture.
struct arguments {
    long steps = 3000;
    double minutes = 4;
    std::uint64_t seed = 1;
    bool capture = false;
};

inline arguments parse(int argc, char** argv)
{
    arguments args;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        const bool valued = i + 1 < argc;
        if (flag == "--steps" && valued) {
            args.steps = std::atol(argv[++i]);
        } else if (flag == "--minutes" && valued) {
            args.minutes = std::atof(argv[++i]);
        } else if (flag == "--seed" && valued) {
            args.seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (flag == "--capture") {
            args.capture = true;
        } else {
            std::fprintf(stderr, "usage: %s [--steps N] [--minutes M] [--seed N] [--capture]\n", argv[0]);
            std::exit(2);
        }
    }
    return args;
}

inline std::string read_corpus(const std::filesystem::path& directory)
{
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
        if (entry.is_regular_file() && !entry.is_symlink()) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    std::string text;
    for (const auto& file : files) {
        std::ifstream in(file, std::ios::binary);
        text.append(std::istreambuf_iterator<char>(in), {});
    }
    return text;
}

// The text as ids into its own alphabet.
struct encoded_text {
    std::vector<unsigned char> alphabet;
    std::vector<std::int64_t> train;
    std::vector<std::int64_t> held_out;
};

inline encoded_text encode(const std::string& text)
{
    encoded_text encoded;
    std::array<std::int64_t, 256> id{};
    id.fill(-1);
    for (unsigned char c : text) {
        if (id[c] < 0) {
            id[c] = 0;
        }
    }
    for (std::size_t c = 0; c < 256; ++c) {
        if (id[c] == 0) {
            id[c] = std::int64_t(encoded.alphabet.size());
            encoded.alphabet.push_back((unsigned char)c);
        }
    }
    const std::size_t split = text.size() * 9 / 10;
    for (std::size_t i = 0; i < text.size(); ++i) {
        (i < split ? encoded.train : encoded.held_out).push_back(id[(unsigned char)text[i]]);
    }
    return encoded;
}

// -log2 P(next | previous) averaged over the held-out text, with add-one
// smoothing of the training text's pair counts.
inline double bigram_bits(const encoded_text& text)
{
    const std::size_t v = text.alphabet.size();
    std::vector<double> pairs(v * v, 1.0);
    std::vector<double> firsts(v, double(v));
    for (std::size_t i = 1; i < text.train.size(); ++i) {
        pairs[std::size_t(text.train[i - 1]) * v + std::size_t(text.train[i])] += 1;
        firsts[std::size_t(text.train[i - 1])] += 1;
    }
    double bits = 0;
    for (std::size_t i = 1; i < text.held_out.size(); ++i) {
        const auto previous = std::size_t(text.held_out[i - 1]);
        bits -= std::log2(pairs[previous * v + std::size_t(text.held_out[i])] / firsts[previous]);
    }
    return bits / double(text.held_out.size() - 1);
}

// Windows of the text as inputs and the characters that follow each position.
struct windows {
    gt::Tensor inputs;                  // [B, T]
    xt::xarray<std::int64_t> targets;  // [B, T]
};

inline windows slice_windows(const std::vector<std::int64_t>& text, const std::vector<std::size_t>& starts,
                      std::size_t context)
{
    xt::xarray<float> inputs = xt::zeros<float>({starts.size(), context});
    xt::xarray<std::int64_t> targets = xt::zeros<std::int64_t>({starts.size(), context});
    for (std::size_t b = 0; b < starts.size(); ++b) {
        for (std::size_t t = 0; t < context; ++t) {
            inputs(b, t) = float(text[starts[b] + t]);
            targets(b, t) = text[starts[b] + t + 1];
        }
    }
    return {inputs, targets};
}

// A batch of windows at starts drawn uniformly from this thread's generator.
inline windows random_windows(const std::vector<std::int64_t>& text, std::size_t batch, std::size_t context)
{
    const gt::Tensor64 draws = gt::random_uniform<double>({batch}, 0, double(text.size() - context - 1));
    std::vector<std::size_t> starts;
    for (double draw : draws.value()) {
        starts.push_back(std::size_t(draw));
    }
    return slice_windows(text, starts, context);
}

// Mean bits per character over every held-out position that has a window.
inline double held_out_bits(const gt::Layer& model, const std::vector<std::int64_t>& text, std::size_t context)
{
    const auto pause = gt::stop_recording();
    double nats = 0;
    std::size_t count = 0;
    std::vector<std::size_t> starts;
    for (std::size_t start = 0; start + context < text.size(); start += context) {
        starts.push_back(start);
    }
    for (std::size_t first = 0; first < starts.size(); first += 64) {
        const std::vector<std::size_t> group(starts.begin() + std::ptrdiff_t(first),
                                             starts.begin() + std::ptrdiff_t(std::min(first + 64, starts.size())));
        const windows w = slice_windows(text, group, context);
        nats += gt::reduce_sum(gt::sparse_softmax_cross_entropy_with_logits(w.targets, model(w.inputs))).item();
        count += w.targets.size();
    }
    return nats / double(count) / std::numbers::ln2;
}

inline std::string generate(const gt::Layer& model, const encoded_text& text, std::size_t length, std::size_t context)
{
    const auto pause = gt::stop_recording();
    std::vector<std::int64_t> ids(text.held_out.begin(), text.held_out.begin() + std::ptrdiff_t(context));
    std::string out;
    for (std::size_t i = 0; i < length; ++i) {
        xt::xarray<float> window = xt::zeros<float>({std::size_t{1}, context});
        std::copy(ids.end() - std::ptrdiff_t(context), ids.end(), window.begin());
        // Temperature 0.8, drawn from the seeded generator.
        const gt::Tensor logits = gt::slice(model(window), {0, context - 1, 0}, {1, 1, -1});
        const auto probabilities = gt::softmax(logits * 1.25f).value();
        float draw = gt::random_uniform<float>({1}).value()(0);
        std::size_t next = 0;
        while (next + 1 < probabilities.size() && draw >= probabilities.flat(next)) {
            draw -= probabilities.flat(next);
            ++next;
        }
        ids.push_back(std::int64_t(next));
        out += char(text.alphabet[next]);
    }
    return out;
}

// Trains `model` (character ids [B, T] -> logits [B, T, alphabet]) on random
// windows until --steps or --minutes ends, reporting the smoothed training
// loss every 250 steps, then its held-out bits per character and text it
// generates. Returns the exit status: 0 when it beats the bigram model.
inline int train_and_report(const gt::Layer& model, gt::optimizer& optimizer, const encoded_text& text,
                            const arguments& args, std::size_t batch_size, std::size_t context)
{
    const double bigram = bigram_bits(text);
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
    std::printf("after %ld steps and %.0f s: held-out %.3f bits per character (bigram %.3f, uniform %.3f)\n", step,
                elapsed(), bits, bigram, std::log2(double(text.alphabet.size())));
    std::printf("generated:\n%s\n", generate(model, text, 400, context).c_str());
    return bits < bigram ? 0 : 1;
}

}  // namespace char_corpus
