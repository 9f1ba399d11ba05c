// Around a training loop, with Keras's names and semantics: evaluate and
// predict in batches, a learning rate cut when a monitored value stops
// improving, early stopping that keeps the best weights, and a progress bar.
//
//   gt::ReduceLROnPlateau plateau(1e-3, {.factor = 0.5, .patience = 2});
//   gt::Adam optimizer({.learning_rate = plateau.schedule()});
//   gt::EarlyStopping stopping(model, {.patience = 3, .restore_best_weights = true});
//   for (int epoch = 1; epoch <= epochs; ++epoch) {
//       ...train...
//       const gt::evaluation test = gt::evaluate(model, test_images, test_labels, {.metrics = {"accuracy"}});
//       plateau.update(test.loss);
//       if (stopping.update(test.loss)) break;      // the best epoch's weights are back
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "layers.hpp"
#include "optim.hpp"
#include "source_location.hpp"

namespace gradtape {

/// One line on stdout, redrawn in place on a terminal. Elsewhere (a log
/// file), a line every tenth of the way when `every_tenth` is set, else nothing.
class progress_bar {
public:
    /// A bar labelled `label` for `steps` steps.
    progress_bar(std::string label, std::size_t steps, bool every_tenth = true);
    /// `done` of the steps are done; `status` follows the bar ("loss 0.4123").
    void update(std::size_t done, const std::string& status = {});
    /// Ends the line on a terminal.
    void finish();

private:
    std::string label_;
    std::size_t steps_;
    bool every_tenth_;
    bool terminal_;
    bool open_ = false;
    std::int64_t start_ns_;
};

/// How evaluate() runs.
struct evaluate_options {
    std::size_t batch_size = 32;  ///< Rows per forward pass.
    /// With integer labels: "sparse_categorical_crossentropy" of logits (the
    /// default) or of probabilities ("from_probabilities"); with target
    /// tensors: "mean_squared_error" (the default) or "mean_absolute_error".
    std::string loss{};
    /// Computed beside the loss, by Keras's names: "accuracy" (labels: the
    /// largest of the last axis), "mean_squared_error"/"mse",
    /// "mean_absolute_error"/"mae" (targets).
    std::vector<std::string> metrics{};
    /// The progress bar, on a terminal only.
    bool progress = true;
};

/// The mean loss over every example (not over batches) and each metric's.
struct evaluation {
    double loss = 0;                                       ///< The mean loss.
    std::vector<std::pair<std::string, double>> metrics;   ///< Each metric asked for, in that order.
    /// A metric by the name it was asked for; an unknown one is an argument_error.
    [[nodiscard]] double metric(std::string_view name,
                                source_location site = source_location::current()) const;
};

/// The model in inference mode over x's rows in batches, without recording
/// on any tape; empty data, a batch size of 0, labels or targets whose rows
/// are not x's, an unknown loss or metric are an argument_error (or
/// shape_error) before anything runs.
template <dtype T>
[[nodiscard]] evaluation evaluate(const basic_layer<T>& model, const basic_tensor<T>& x,
                                  const xt::xarray<std::int64_t>& labels, evaluate_options options = {},
                                  source_location site = source_location::current());
/// evaluate() against target tensors (a regression).
template <dtype T>
[[nodiscard]] evaluation evaluate(const basic_layer<T>& model, const basic_tensor<T>& x,
                                  const basic_tensor<T>& targets, evaluate_options options = {},
                                  source_location site = source_location::current());

/// How predict() runs.
struct predict_options {
    std::size_t batch_size = 32;  ///< Rows per forward pass.
    bool progress = true;         ///< The progress bar, on a terminal only.
};
/// The model's outputs for x's rows, in inference mode, batched and joined.
template <dtype T>
[[nodiscard]] basic_tensor<T> predict(const basic_layer<T>& model, const basic_tensor<T>& x,
                                      predict_options options = {},
                                      source_location site = source_location::current());

/// Whether a monitored value improves by going down (a loss) or up (an accuracy).
enum class monitor_mode { min, max };

/// ReduceLROnPlateau's settings, Keras's names and defaults.
struct reduce_lr_on_plateau_options {
    double factor = 0.1;  ///< What a cut multiplies the rate by.
    /// Values without improvement before the rate is cut.
    std::size_t patience = 10;
    /// What counts as an improvement: beyond the best by more than this.
    double min_delta = 1e-4;
    /// Values after a cut during which no waiting is counted.
    std::size_t cooldown = 0;
    double min_lr = 0;                      ///< The rate is never cut below this.
    monitor_mode mode = monitor_mode::min;  ///< min for a loss, max for an accuracy.
};

/// Keras's ReduceLROnPlateau as a schedule: give schedule() to an optimizer,
/// and update() the monitored value at each epoch's end; after `patience`
/// values without improvement the rate is multiplied by `factor` (not below
/// min_lr). Copies share the state.
class ReduceLROnPlateau {
public:
    /// Starts at the rate `initial`; options out of range are an argument_error.
    explicit ReduceLROnPlateau(double initial, reduce_lr_on_plateau_options options = {},
                               source_location site = source_location::current());
    /// The schedule to give an optimizer: the current rate at every step.
    [[nodiscard]] learning_rate_schedule schedule() const;
    /// Returns whether this value cut the rate. A NaN is an argument_error.
    bool update(double monitored, source_location site = source_location::current());
    /// The current rate.
    [[nodiscard]] double learning_rate() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

/// EarlyStopping's settings, Keras's names and defaults.
struct early_stopping_options {
    double min_delta = 0;      ///< What counts as an improvement: beyond the best by more than this.
    std::size_t patience = 0;  ///< Values without improvement before stopping.
    /// Keep the weights of the best value so far, and put them back on stopping.
    bool restore_best_weights = false;
    /// A value training must improve on at all (counted from the first).
    std::optional<double> baseline{};
    monitor_mode mode = monitor_mode::min;  ///< min for a loss, max for an accuracy.
};

/// Keras's EarlyStopping: update() the monitored value at each epoch's end;
/// it returns true once `patience` values in a row (after the first) have
/// not improved on the best by more than min_delta, having put the best
/// epoch's weights back when asked.
template <dtype T>
class basic_early_stopping {
public:
    /// Watches `model`, whose weights it keeps and restores when asked.
    explicit basic_early_stopping(const basic_layer<T>& model, early_stopping_options options = {},
                                  source_location site = source_location::current());
    /// This epoch's monitored value; returns whether to stop. A NaN is an argument_error.
    bool update(double monitored, source_location site = source_location::current());
    /// The best value so far and the update (from 0) that gave it.
    [[nodiscard]] double best() const { return best_; }
    [[nodiscard]] std::size_t best_epoch() const { return best_epoch_; }  ///< See best().
    /// Whether update() has returned true.
    [[nodiscard]] bool stopped() const { return stopped_; }

private:
    [[nodiscard]] bool improves(double value, double reference) const;

    basic_layer<T> model_;
    early_stopping_options options_;
    double best_;
    std::size_t epoch_ = 0;
    std::size_t best_epoch_ = 0;
    std::size_t wait_ = 0;
    bool stopped_ = false;
    std::vector<xt::xarray<T>> best_weights_;
};

using EarlyStopping = basic_early_stopping<float>;     ///< For a float32 model.
using EarlyStopping64 = basic_early_stopping<double>;  ///< For a float64 model.

}  // namespace gradtape
