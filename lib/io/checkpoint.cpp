// Checkpoints: variables, and what resumes training (an optimizer's slots
// and count, the generator's state), as a .npz keyed by name (io/npz.hpp).
// A load reads and checks everything before it changes anything.
#include <gradtape/checkpoint.hpp>

#include <gradtape/layers.hpp>
#include <gradtape/optim.hpp>
#include <gradtape/random.hpp>

#include <optional>
#include <string>
#include <vector>

#include <xtensor/xadapt.hpp>

#include "core/tensor_access.hpp"
#include "io/files.hpp"
#include "io/npz.hpp"

namespace gradtape {

using detail::fail;
using detail::converted;
using detail::convert_into;
using detail::misfit;
using detail::npy_array;
using detail::npy_descr;
using detail::npz_reader;
using detail::npz_writer;
using detail::parse_npy;

namespace {

// Where a resumable checkpoint keeps what is not a variable.
const std::string iterations_entry = "optimizer/iterations";
const std::string random_state_entry = "random/state";

std::string slot_entry(const std::string& variable, const std::string& slot)
{
    return "optimizer/" + variable + "/" + slot;
}

template <dtype T>
using named_variables = std::vector<std::pair<std::string, basic_variable<T>>>;

template <dtype T>
named_variables<T> by_own_name(const std::vector<basic_variable<T>>& variables)
{
    named_variables<T> named;
    for (const auto& variable : variables) {
        named.emplace_back(variable.name(), variable);
    }
    return named;
}

template <dtype T>
named_variables<T> of_built(const basic_layer<T>& model, std::string_view op, const source_location& site)
{
    if (!model.built()) {
        fail<argument_error>(op, site,
                             "model '" + model.path() +
                                 "' has no variables yet: call it once, or build() it, before a checkpoint");
    }
    return model.named_variables();
}

template <dtype T>
void save(const std::filesystem::path& path, const named_variables<T>& variables, const optimizer* trainer,
          const source_location& site)
{
    npz_writer archive(path, site);
    for (const auto& [name, variable] : variables) {
        // A read, under the variable's lock: a write elsewhere cannot change it mid-copy.
        const basic_tensor<T> value = variable;
        archive.add(name, value.value(), "variable");
    }
    if (trainer) {
        archive.add(iterations_entry, xt::xarray<std::uint64_t>(trainer->iterations()));
        for (const auto& [name, variable] : variables) {
            for (const auto& [slot, values] : trainer->slots(variable)) {
                archive.add(slot_entry(name, slot), values);
            }
        }
        const std::vector<std::uint64_t> state = random_state();
        archive.add(random_state_entry, xt::xarray<std::uint64_t>(xt::adapt(state, {state.size()})));
    }
    archive.write();
}

template <dtype T>
void load(const std::filesystem::path& path, const named_variables<T>& variables, optimizer* trainer,
          const source_location& site)
{
    constexpr std::string_view op = "load_checkpoint";
    const std::string bytes = detail::read_regular_file(op, path, site);
    npz_reader archive(op, path, bytes, site);
    const auto read = [&](const std::string& name, std::string_view what) {
        std::optional<std::string> entry = archive.entry(name + ".npy");
        if (!entry) {
            fail<argument_error>(op, site, "'" + path.string() + "' has no " + std::string(what) + " named '" + name + "'");
        }
        return *entry;
    };
    std::vector<std::string> contents;
    std::vector<npy_array> arrays;
    contents.reserve(variables.size());
    for (const auto& [name, variable] : variables) {
        contents.push_back(read(name, "array"));
    }
    for (std::size_t i = 0; i < variables.size(); ++i) {
        const auto& [name, variable] = variables[i];
        const npy_array array = parse_npy(op, contents[i], name, site);
        if (array.shape != variable.shape()) {
            fail<shape_error>(op, site,
                              "array '" + name + "' has shape " + detail::format_shape(array.shape) +
                                  ", the variable " + detail::format_shape(variable.shape()));
        }
        if (const auto why = misfit<T>(array)) {
            fail<argument_error>(op, site, "'" + path.string() + "' array '" + name + "': " + *why);
        }
        arrays.push_back(array);
    }

    std::uint64_t iterations = 0;
    std::vector<optimizer_slots> slots(variables.size());
    std::vector<std::uint64_t> state;
    if (trainer) {
        const auto scalar_or_vector = [&](const std::string& name, std::size_t rank) {
            const std::string entry = read(name, "optimizer state");
            const npy_array array = parse_npy(op, entry, name, site);
            if (array.descr != npy_descr<std::uint64_t>() || array.shape.size() != rank) {
                fail<argument_error>(op, site, "'" + name + "' in '" + path.string() + "' is not what a checkpoint "
                                               "writes there (" + std::to_string(rank) + "-D uint64)");
            }
            return converted<std::uint64_t>(array, op, name, site);
        };
        iterations = scalar_or_vector(iterations_entry, 0)();
        const xt::xarray<std::uint64_t> words = scalar_or_vector(random_state_entry, 1);
        state.assign(words.begin(), words.end());
        if (!is_random_state(state)) {
            fail<argument_error>(op, site, "'" + random_state_entry + "' in '" + path.string() +
                                               "' is not a generator state");
        }
        for (std::size_t i = 0; i < variables.size(); ++i) {
            const std::string prefix = slot_entry(variables[i].first, "");
            for (const std::string& entry : archive.names()) {
                if (entry.starts_with(prefix) && entry.ends_with(".npy")) {
                    const std::string slot = entry.substr(prefix.size(), entry.size() - prefix.size() - 4);
                    if (slot.find('/') != std::string::npos) {
                        continue;  // a slot of another variable whose name extends this one's
                    }
                    const std::string bytes_of_slot = *archive.entry(entry);
                    slots[i].emplace(slot, converted<double>(parse_npy(op, bytes_of_slot, entry, site), op, entry, site));
                }
            }
            if (const auto problem = trainer->slots_problem(variables[i].second, slots[i])) {
                fail<argument_error>(op, site, "'" + path.string() + "' entry '" +
                                                   slot_entry(variables[i].first, problem->slot) + "': " +
                                                   problem->why);
            }
        }
    }

    // Only once everything is read and checked does anything change, and
    // each variable changes in place, as every other update does.
    for (std::size_t i = 0; i < variables.size(); ++i) {
        detail::write_variable(variables[i].second, site,
                               [&](xt::xarray<T>& value) { convert_into(arrays[i], value); });
    }
    if (trainer) {
        for (std::size_t i = 0; i < variables.size(); ++i) {
            trainer->set_slots(variables[i].second, slots[i], site);
        }
        trainer->set_iterations(iterations);
        set_random_state(state, site);
    }
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     source_location site)
{
    save(path, by_own_name(variables), nullptr, site);
}

void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     source_location site)
{
    save(path, by_own_name(variables), nullptr, site);
}

void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     source_location site)
{
    load(path, by_own_name(variables), nullptr, site);
}

void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     source_location site)
{
    load(path, by_own_name(variables), nullptr, site);
}

template <dtype T>
void save_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, source_location site)
{
    save(path, of_built(model, "save_checkpoint", site), nullptr, site);
}

template <dtype T>
void save_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, const optimizer& trainer,
                     source_location site)
{
    save(path, of_built(model, "save_checkpoint", site), &trainer, site);
}

template <dtype T>
void load_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, source_location site)
{
    load(path, of_built(model, "load_checkpoint", site), nullptr, site);
}

template <dtype T>
void load_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, optimizer& trainer,
                     source_location site)
{
    load(path, of_built(model, "load_checkpoint", site), &trainer, site);
}

#define GRADTAPE_INSTANTIATE_MODEL_CHECKPOINTS(T)                                                                \
    template void save_checkpoint(const std::filesystem::path&, const basic_layer<T>&, source_location);   \
    template void save_checkpoint(const std::filesystem::path&, const basic_layer<T>&, const optimizer&,        \
                                  source_location);                                                        \
    template void load_checkpoint(const std::filesystem::path&, const basic_layer<T>&, source_location);   \
    template void load_checkpoint(const std::filesystem::path&, const basic_layer<T>&, optimizer&,              \
                                  source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_MODEL_CHECKPOINTS)
#undef GRADTAPE_INSTANTIATE_MODEL_CHECKPOINTS

}  // namespace gradtape
