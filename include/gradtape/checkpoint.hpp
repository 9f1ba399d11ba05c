// Checkpoints: named variables saved as NumPy's .npz, which numpy.load reads.
//
//   gradtape::save_checkpoint("model.npz", {w1, b1, w2, b2});   // keyed by variable name
//   gradtape::load_checkpoint("model.npz", {w1, b1, w2, b2});   // values assigned in place
//   >>> numpy.load("model.npz")["w1"]
#pragma once

#include <filesystem>
#include <source_location>
#include <vector>

#include "variable.hpp"

namespace gradtape {

// Writes every variable as "<name>.npy" in an uncompressed .npz. The file is
// written beside `path` and renamed over it, so a crash while saving leaves
// the previous checkpoint whole. Names must be distinct.
void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     std::source_location site = std::source_location::current());
void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     std::source_location site = std::source_location::current());

// Assigns each variable the array of its name (float32 or float64 arrays are
// converted to the variable's dtype). A missing name, a different shape, or a
// file that is not an uncompressed .npz throws naming it, and then no
// variable changes.
void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     std::source_location site = std::source_location::current());
void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     std::source_location site = std::source_location::current());

}  // namespace gradtape
