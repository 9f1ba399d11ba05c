// evaluate and predict in batches, ReduceLROnPlateau, EarlyStopping and the
// progress bar (training.hpp).
#include <gradtape/training.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include <unistd.h>

#include <gradtape/nn.hpp>
#include <gradtape/ops.hpp>
#include <gradtape/tape.hpp>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"

#include <xtensor/xview.hpp>

namespace gradtape {

namespace {

std::int64_t now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

progress_bar::progress_bar(std::string label, std::size_t steps, bool every_tenth)
    : label_(std::move(label)), steps_(std::max<std::size_t>(steps, 1)), every_tenth_(every_tenth),
      terminal_(::isatty(STDOUT_FILENO) != 0), start_ns_(now_ns())
{
}

void progress_bar::update(std::size_t done, const std::string& status)
{
    done = std::min(done, steps_);
    const bool tenth = done > 0 && done * 10 / steps_ != (done - 1) * 10 / steps_;
    if (!terminal_ && !(every_tenth_ && tenth)) {
        return;
    }
    const double seconds = double(now_ns() - start_ns_) / 1e9;
    const double eta = done == 0 ? 0 : seconds / double(done) * double(steps_ - done);
    const std::size_t filled = done * 30 / steps_;
    std::printf("%s%s [%s%s] %zu/%zu  %s%s%.0f s  ETA %.0f s%s", terminal_ ? "\r" : "", label_.c_str(),
                std::string(filled, '=').c_str(), std::string(30 - filled, ' ').c_str(), done, steps_,
                status.c_str(), status.empty() ? "" : "  ", seconds, eta, terminal_ ? "\033[K" : "\n");
    std::fflush(stdout);
    open_ = terminal_;
}

void progress_bar::finish()
{
    if (open_) {
        std::printf("\n");
        std::fflush(stdout);
        open_ = false;
    }
}

double evaluation::metric(std::string_view name, source_location site) const
{
    for (const auto& [metric_name, value] : metrics) {
        if (metric_name == name) {
            return value;
        }
    }
    std::string known;
    for (const auto& entry : metrics) {
        known += (known.empty() ? "" : ", ") + entry.first;
    }
    detail::fail<argument_error>("evaluation::metric", site,
                                 "no metric '" + std::string(name) + "' was computed (computed: " +
                                     (known.empty() ? "none" : known) + ")");
}

namespace {

// What the loss and the metrics need of each batch: sums over its examples.
struct batch_sums {
    double loss = 0;
    std::vector<double> metrics;
};

// Refuses what evaluate and predict cannot run, before anything runs.
template <dtype T>
void check_batches(std::string_view op, const basic_tensor<T>& x, std::size_t batch_size,
                   const source_location& site)
{
    if (batch_size == 0) {
        detail::fail<argument_error>(op, site, "needs a batch size of 1 or more, got 0");
    }
    if (x.dimension() == 0 || x.shape()[0] == 0) {
        detail::fail<argument_error>(op, site, "has no examples to run: x is " + detail::format_shape(x.shape()));
    }
}

// Runs the model over x's rows in batches of `batch_size`, in inference mode
// and unrecorded, handing each batch's output and its first row to `use`.
template <dtype T, class Use>
void in_batches(std::string_view op, const basic_layer<T>& model, const basic_tensor<T>& x, std::size_t batch_size,
                bool progress, const source_location& site, Use&& use)
{
    const auto pause = stop_recording();
    const std::size_t rows = x.shape()[0];
    const std::size_t batches = (rows + batch_size - 1) / batch_size;
    progress_bar bar(std::string(op), batches, false);
    std::vector<std::size_t> begin(x.dimension(), 0);
    std::vector<std::ptrdiff_t> size(x.dimension(), -1);
    for (std::size_t b = 0; b < batches; ++b) {
        begin[0] = b * batch_size;
        size[0] = std::ptrdiff_t(std::min(batch_size, rows - begin[0]));
        const basic_tensor<T> output = model(slice(x, begin, size, site), false, site);
        if (output.dimension() == 0 || output.shape()[0] != std::size_t(size[0])) {
            detail::fail<shape_error>(op, site,
                                      "the model gave " + detail::format_shape(output.shape()) + " for a batch of " +
                                          std::to_string(size[0]) + " rows; it must give a row per example");
        }
        use(output, begin[0]);
        if (progress) {
            bar.update(b + 1);
        }
    }
    if (progress) {
        bar.finish();
    }
}

evaluation averaged(const batch_sums& sums, std::size_t rows, const std::vector<std::string>& names)
{
    evaluation result{sums.loss / double(rows), {}};
    for (std::size_t m = 0; m < names.size(); ++m) {
        result.metrics.emplace_back(names[m], sums.metrics[m] / double(rows));
    }
    return result;
}

}  // namespace

template <dtype T>
evaluation evaluate(const basic_layer<T>& model, const basic_tensor<T>& x, const xt::xarray<std::int64_t>& labels,
                    evaluate_options options, source_location site)
{
    check_batches("evaluate", x, options.batch_size, site);
    const std::string loss = options.loss.empty() ? "sparse_categorical_crossentropy" : options.loss;
    if (loss != "sparse_categorical_crossentropy" && loss != "from_probabilities") {
        detail::fail<argument_error>("evaluate", site,
                                     "no loss of integer labels is named '" + loss +
                                         "' (known: sparse_categorical_crossentropy, from_probabilities)");
    }
    for (const auto& name : options.metrics) {
        if (name != "accuracy") {
            detail::fail<argument_error>("evaluate", site,
                                         "no metric of integer labels is named '" + name + "' (known: accuracy)");
        }
    }
    if (labels.dimension() != 1 || labels.shape()[0] != x.shape()[0]) {
        detail::fail<shape_error>("evaluate", site,
                                  "takes a label per row of x " + detail::format_shape(x.shape()) + ", got labels " +
                                      detail::format_shape(shape_type(labels.shape().begin(), labels.shape().end())));
    }
    batch_sums sums{0, std::vector<double>(options.metrics.size(), 0)};
    in_batches("evaluate", model, x, options.batch_size, options.progress, site,
               [&](const basic_tensor<T>& output, std::size_t first) {
                   const std::size_t count = output.shape()[0];
                   const xt::xarray<std::int64_t> batch_labels = xt::view(labels, xt::range(first, first + count));
                   const basic_tensor<T> losses =
                       loss == "from_probabilities"
                           ? negative(log(reduce_sum(multiply(output,
                                                              one_hot<T>(batch_labels, output.shape().back(), site),
                                                              site),
                                                     -1, false, site),
                                          site),
                                      site)
                           : sparse_softmax_cross_entropy_with_logits(batch_labels, output, site);
                   sums.loss += double(reduce_sum(losses, site).item());
                   if (!options.metrics.empty()) {
                       const xt::xarray<std::int64_t> predicted = argmax(output, -1, site);
                       double correct = 0;
                       for (std::size_t i = 0; i < count; ++i) {
                           correct += predicted(i) == batch_labels(i) ? 1 : 0;
                       }
                       for (double& metric : sums.metrics) {
                           metric += correct;
                       }
                   }
               });
    return averaged(sums, x.shape()[0], options.metrics);
}

template <dtype T>
evaluation evaluate(const basic_layer<T>& model, const basic_tensor<T>& x, const basic_tensor<T>& targets,
                    evaluate_options options, source_location site)
{
    check_batches("evaluate", x, options.batch_size, site);
    const auto squared = [](const std::string& name) {
        return name == "mean_squared_error" || name == "mse";
    };
    const auto absolute = [](const std::string& name) {
        return name == "mean_absolute_error" || name == "mae";
    };
    const std::string loss = options.loss.empty() ? "mean_squared_error" : options.loss;
    for (const auto& name : options.metrics) {
        if (!squared(name) && !absolute(name)) {
            detail::fail<argument_error>("evaluate", site,
                                         "no metric of targets is named '" + name +
                                             "' (known: mean_squared_error, mse, mean_absolute_error, mae)");
        }
    }
    if (!squared(loss) && !absolute(loss)) {
        detail::fail<argument_error>("evaluate", site,
                                     "no loss of targets is named '" + loss +
                                         "' (known: mean_squared_error, mean_absolute_error)");
    }
    if (targets.dimension() == 0 || targets.shape()[0] != x.shape()[0]) {
        detail::fail<shape_error>("evaluate", site,
                                  "takes a target row per row of x " + detail::format_shape(x.shape()) +
                                      ", got targets " + detail::format_shape(targets.shape()));
    }
    // Each example's error is the mean over its elements, as Keras's losses take it.
    const double per_example = double(targets.size()) / double(targets.shape()[0]);
    batch_sums sums{0, std::vector<double>(options.metrics.size(), 0)};
    in_batches("evaluate", model, x, options.batch_size, options.progress, site,
               [&](const basic_tensor<T>& output, std::size_t first) {
                   std::vector<std::size_t> begin(targets.dimension(), 0);
                   std::vector<std::ptrdiff_t> size(targets.dimension(), -1);
                   begin[0] = first;
                   size[0] = std::ptrdiff_t(output.shape()[0]);
                   const basic_tensor<T> difference = subtract(output, slice(targets, begin, size, site), site);
                   if (difference.shape() != output.shape()) {
                       detail::fail<shape_error>("evaluate", site,
                                                 "the model gave " + detail::format_shape(output.shape()) +
                                                     " for targets of rows " + detail::format_shape(targets.shape()));
                   }
                   const double squares = double(reduce_sum(square(difference, site), site).item());
                   const double absolutes = double(reduce_sum(abs(difference, site), site).item());
                   sums.loss += (squared(loss) ? squares : absolutes) / per_example;
                   for (std::size_t m = 0; m < options.metrics.size(); ++m) {
                       sums.metrics[m] += (squared(options.metrics[m]) ? squares : absolutes) / per_example;
                   }
               });
    return averaged(sums, x.shape()[0], options.metrics);
}

template <dtype T>
basic_tensor<T> predict(const basic_layer<T>& model, const basic_tensor<T>& x, predict_options options,
                        source_location site)
{
    check_batches("predict", x, options.batch_size, site);
    std::vector<basic_tensor<T>> outputs;
    in_batches("predict", model, x, options.batch_size, options.progress, site,
               [&](const basic_tensor<T>& output, std::size_t) { outputs.push_back(output); });
    const auto pause = stop_recording();
    return outputs.size() == 1 ? outputs[0] : concat(outputs, 0, site);
}

struct ReduceLROnPlateau::state {
    double rate;
    reduce_lr_on_plateau_options options;
    double best;
    std::size_t wait = 0;
    std::size_t cooldown_left = 0;
};

ReduceLROnPlateau::ReduceLROnPlateau(double initial, reduce_lr_on_plateau_options options, source_location site)
{
    if (!(initial > 0) || !std::isfinite(initial)) {
        detail::fail<argument_error>("ReduceLROnPlateau", site,
                                     "needs a finite initial rate above 0, got " + std::to_string(initial));
    }
    if (!(options.factor > 0 && options.factor < 1)) {
        detail::fail<argument_error>("ReduceLROnPlateau", site,
                                     "needs a factor in (0, 1), got " + std::to_string(options.factor));
    }
    if (!(options.min_delta >= 0) || !(options.min_lr >= 0)) {
        detail::fail<argument_error>("ReduceLROnPlateau", site, "needs min_delta and min_lr of 0 or more");
    }
    const double worst = options.mode == monitor_mode::min ? std::numeric_limits<double>::infinity()
                                                           : -std::numeric_limits<double>::infinity();
    state_ = std::make_shared<state>(state{initial, options, worst});
}

learning_rate_schedule ReduceLROnPlateau::schedule() const
{
    return learning_rate_schedule([shared = state_](std::uint64_t) { return shared->rate; });
}

bool ReduceLROnPlateau::update(double monitored, source_location site)
{
    if (std::isnan(monitored)) {
        detail::fail<argument_error>("ReduceLROnPlateau.update", site, "the monitored value is nan");
    }
    state& s = *state_;
    // Keras's order: a cooldown counts down first, and waiting restarts in it.
    if (s.cooldown_left > 0) {
        --s.cooldown_left;
        s.wait = 0;
    }
    const bool improved = s.options.mode == monitor_mode::min ? monitored < s.best - s.options.min_delta
                                                              : monitored > s.best + s.options.min_delta;
    if (improved) {
        s.best = monitored;
        s.wait = 0;
        return false;
    }
    if (s.cooldown_left > 0 || ++s.wait < s.options.patience) {
        return false;
    }
    if (s.rate <= s.options.min_lr) {
        return false;
    }
    s.rate = std::max(s.rate * s.options.factor, s.options.min_lr);
    s.cooldown_left = s.options.cooldown;
    s.wait = 0;
    return true;
}

double ReduceLROnPlateau::learning_rate() const
{
    return state_->rate;
}

template <dtype T>
basic_early_stopping<T>::basic_early_stopping(const basic_layer<T>& model, early_stopping_options options,
                                              source_location site)
    : model_(model), options_(options),
      best_(options.mode == monitor_mode::min ? std::numeric_limits<double>::infinity()
                                              : -std::numeric_limits<double>::infinity())
{
    if (!(options.min_delta >= 0)) {
        detail::fail<argument_error>("EarlyStopping", site,
                                     "needs min_delta of 0 or more, got " + std::to_string(options.min_delta));
    }
}

template <dtype T>
bool basic_early_stopping<T>::improves(double value, double reference) const
{
    return options_.mode == monitor_mode::min ? value < reference - options_.min_delta
                                              : value > reference + options_.min_delta;
}

template <dtype T>
bool basic_early_stopping<T>::update(double monitored, source_location site)
{
    if (std::isnan(monitored)) {
        detail::fail<argument_error>("EarlyStopping.update", site, "the monitored value is nan");
    }
    const std::size_t epoch = epoch_++;
    ++wait_;
    if (improves(monitored, best_)) {
        best_ = monitored;
        best_epoch_ = epoch;
        if (options_.restore_best_weights) {
            best_weights_.clear();
            for (const auto& variable : model_.variables()) {
                best_weights_.push_back(variable.value());
            }
        }
        if (!options_.baseline || improves(monitored, *options_.baseline)) {
            wait_ = 0;
        }
        return false;
    }
    if (wait_ < options_.patience || epoch == 0) {
        return false;
    }
    stopped_ = true;
    if (options_.restore_best_weights && !best_weights_.empty()) {
        const auto variables = model_.variables();
        for (std::size_t v = 0; v < variables.size(); ++v) {
            auto variable = variables[v];
            variable.assign(basic_tensor<T>(best_weights_[v]), site);
        }
    }
    return true;
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template evaluation evaluate(const basic_layer<T>&, const basic_tensor<T>&, const xt::xarray<std::int64_t>&,    \
                                 evaluate_options, source_location);                                           \
    template evaluation evaluate(const basic_layer<T>&, const basic_tensor<T>&, const basic_tensor<T>&,             \
                                 evaluate_options, source_location);                                           \
    template basic_tensor<T> predict(const basic_layer<T>&, const basic_tensor<T>&, predict_options,                \
                                     source_location);                                                         \
    template class basic_early_stopping<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
#undef GRADTAPE_INSTANTIATE

}  // namespace gradtape
