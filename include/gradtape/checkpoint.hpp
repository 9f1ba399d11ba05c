// Checkpoints: named variables saved as NumPy's .npz, which numpy.load reads,
// and a model with its optimizer, to resume training (read_npy and read_npz,
// which read any .npy or .npz, are in datasets.hpp).
//
//   gradtape::save_checkpoint("model.npz", {w1, b1, w2, b2});   // keyed by variable name
//   gradtape::load_checkpoint("model.npz", {w1, b1, w2, b2});   // values assigned in place
//   gradtape::save_checkpoint("step_1000.npz", model, optimizer); // resumable
//   >>> numpy.load("model.npz")["w1"]
#pragma once

#include <filesystem>
#include <vector>

#include "source_location.hpp"
#include "variable.hpp"

namespace gradtape {

/// @cond INTERNAL
template <dtype T>
class basic_layer;
class optimizer;
/// @endcond

/// Writes every variable as "<name>.npy" in an uncompressed .npz. The file is
/// written beside `path` and renamed over it, so a crash while saving leaves
/// the previous checkpoint whole. Names must be distinct.
void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     source_location site = source_location::current());
/// As save_checkpoint of float32 variables.
void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     source_location site = source_location::current());

/// Assigns each variable the array of its name (float32 or float64 arrays are
/// converted to the variable's dtype). A missing name, a different shape, or a
/// file that is not an uncompressed .npz throws naming it, and then no
/// variable changes.
void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     source_location site = source_location::current());
/// As load_checkpoint of float32 variables.
void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     source_location site = source_location::current());

/// Every variable of a model (built: called once), keyed by its path
/// ("cnn/conv2d/kernel"). With an optimizer, also what resumes training as if
/// it had never stopped: the optimizer's count of updates and its slots
/// ("optimizer/cnn/conv2d/kernel/m"), and this thread's generator state
/// ("random/state", which dropout and shuffling draw from). Loading with an
/// optimizer restores all three; nothing changes unless everything in the
/// file fits. Resume at an epoch's start: a minibatch order already drawn is
/// not saved.
template <dtype T>
void save_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model,
                     source_location site = source_location::current());
/// The model's variables with the optimizer's state and the generator's.
template <dtype T>
void save_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, const optimizer& optimizer,
                     source_location site = source_location::current());
/// The model's variables from a checkpoint of it (with or without optimizer state).
template <dtype T>
void load_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model,
                     source_location site = source_location::current());
/// The model's variables, the optimizer's state and the generator's, from a checkpoint that holds all three.
template <dtype T>
void load_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, optimizer& optimizer,
                     source_location site = source_location::current());

}  // namespace gradtape
