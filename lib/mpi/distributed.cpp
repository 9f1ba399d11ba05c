// Data-parallel training over MPI: start and end, broadcasting variables
// (after checking every rank holds the same ones), and averaging tensors in
// fused buffers.
#include <gradtape/mpi.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <mpi.h>

#include <gradtape/error.hpp>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/tensor_access.hpp"

namespace gradtape::mpi {

namespace {

// Open MPI keeps some of what it allocates (starting, ending, opening
// connections in its first collectives) past the end of the program, in
// components it has unloaded by then, so that no stack names it: those are
// MPI's, and LeakSanitizer is told to ignore them.
#if defined(__SANITIZE_ADDRESS__)
using mpi_own_allocations = __lsan::ScopedDisabler;
#else
struct mpi_own_allocations {};
#endif

// A tensor of at least this size is summed from its own buffer, not packed.
constexpr std::size_t direct_bytes = std::size_t{1} << 20;

std::terminate_handler previous_terminate = nullptr;

// An exception that nothing caught: its message, then the whole job ends.
[[noreturn]] void abort_job_on_terminate()
{
    std::string why = "terminated";
    if (const std::exception_ptr current = std::current_exception()) {
        try {
            std::rethrow_exception(current);
        } catch (const std::exception& e) {
            why = std::string("uncaught exception: ") + e.what();
        } catch (...) {
            why = "uncaught exception of an unknown type";
        }
    }
    environment::abort(why);
}

template <dtype T>
MPI_Datatype datatype()
{
    return sizeof(T) == 4 ? MPI_FLOAT : MPI_DOUBLE;
}

// Runs one MPI call, its own allocations ignored (above), and turns a
// failure into an argument_error naming the op.
template <class Call>
void call_mpi(std::string_view op, const source_location& site, Call&& call)
{
    int status = MPI_SUCCESS;
    {
        [[maybe_unused]] const mpi_own_allocations ignored;
        status = call();
    }
    if (status != MPI_SUCCESS) {
        char text[MPI_MAX_ERROR_STRING];
        int length = 0;
        MPI_Error_string(status, text, &length);
        gradtape::detail::fail<argument_error>(op, site, "MPI failed: " + std::string(text, std::size_t(length)));
    }
}

// Every rank's string, in rank order.
std::vector<std::string> gather_everywhere(const std::string& mine, std::string_view op, const source_location& site)
{
    const int ranks = size();
    int length = int(mine.size());
    std::vector<int> lengths(static_cast<std::size_t>(ranks));
    call_mpi(op, site,
             [&] { return MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD); });
    std::vector<int> offsets(static_cast<std::size_t>(ranks));
    std::size_t total = 0;
    for (std::size_t r = 0; r < lengths.size(); ++r) {
        offsets[r] = int(total);
        total += std::size_t(lengths[r]);
    }
    std::string all(total, '\0');
    call_mpi(op, site, [&] {
        return MPI_Allgatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR,
                              MPI_COMM_WORLD);
    });
    std::vector<std::string> each;
    for (std::size_t r = 0; r < lengths.size(); ++r) {
        each.push_back(all.substr(std::size_t(offsets[r]), std::size_t(lengths[r])));
    }
    return each;
}

// One line per variable: its name and shape.
template <dtype T>
std::vector<std::string> describe(const std::vector<basic_variable<T>>& variables)
{
    std::vector<std::string> lines;
    for (const auto& variable : variables) {
        lines.push_back(variable.name() + " " + gradtape::detail::format_shape(variable.shape()) + " " + gradtape::detail::dtype_name<T>());
    }
    return lines;
}

std::vector<std::string> split_lines(const std::string& text)
{
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
        lines.push_back(text.substr(start, end - start));
    }
    return lines;
}

// Note [Collectives agree first] (mpi.hpp). Each rank's agreement; the
// reduction takes the lowest and highest of each pair, any failure, and the
// sum of the rows.
enum class collective : std::int64_t { ending = 1, broadcast_variables, allreduce_mean };

struct agreement {
    std::int64_t lowest_collective, highest_collective;
    std::int64_t lowest_count, highest_count;
    std::int64_t lowest_key, highest_key;
    std::int64_t failed;
    std::int64_t rows;
};

void combine_agreements(void* in, void* in_out, int* count, MPI_Datatype*)
{
    const auto* from = static_cast<const agreement*>(in);
    auto* to = static_cast<agreement*>(in_out);
    for (int i = 0; i < *count; ++i) {
        to[i].lowest_collective = std::min(to[i].lowest_collective, from[i].lowest_collective);
        to[i].highest_collective = std::max(to[i].highest_collective, from[i].highest_collective);
        to[i].lowest_count = std::min(to[i].lowest_count, from[i].lowest_count);
        to[i].highest_count = std::max(to[i].highest_count, from[i].highest_count);
        to[i].lowest_key = std::min(to[i].lowest_key, from[i].lowest_key);
        to[i].highest_key = std::max(to[i].highest_key, from[i].highest_key);
        to[i].failed = std::max(to[i].failed, from[i].failed);
        to[i].rows += from[i].rows;
    }
}

// Made when MPI starts, freed before it ends (environment).
MPI_Datatype agreement_type = MPI_DATATYPE_NULL;
MPI_Op agreement_op = MPI_OP_NULL;

// How many means this process has taken: ranks in step have taken as many.
std::int64_t means_taken = 0;

std::string_view collective_name(collective which)
{
    switch (which) {
    case collective::ending: return "the end of its environment";
    case collective::broadcast_variables: return "broadcast_variables";
    case collective::allreduce_mean: return "allreduce_mean";
    }
    return "?";
}

// What this rank is about to do, as agreed by every rank: `key` must be the
// same on every rank; `problem`, when not empty, is this rank's own reason to
// refuse. Returns the sum of every rank's rows. Where the ranks are in
// different collectives, have taken different numbers of means, disagree on
// the key, or any has a problem, every rank throws the same argument_error,
// naming what each rank said.
std::int64_t agree(collective which, std::int64_t key, std::int64_t rows, const std::string& problem,
                   const std::string& doing, std::string_view op, const source_location& site)
{
    const auto mine = std::int64_t(which);
    const agreement local{mine, mine, means_taken, means_taken, key, key, problem.empty() ? 0 : 1, rows};
    agreement all{};
    call_mpi(op, site, [&] { return MPI_Allreduce(&local, &all, 1, agreement_type, agreement_op, MPI_COMM_WORLD); });
    if (all.lowest_collective == all.highest_collective && all.lowest_count == all.highest_count &&
        all.lowest_key == all.highest_key && all.failed == 0) {
        return all.rows;
    }
    std::string said = std::string(collective_name(which)) + (doing.empty() ? "" : " " + doing) + ", after " +
                       std::to_string(means_taken) + " means";
    if (!problem.empty()) {
        said += ", refused: " + problem;
    }
    const std::vector<std::string> each = gather_everywhere(said, op, site);
    std::string message = "the ranks do not agree:";
    for (std::size_t r = 0; r < each.size(); ++r) {
        message += (r == 0 ? " rank " : "; rank ") + std::to_string(r) + " is in " + each[r];
    }
    if (all.failed == 0) {
        message += " (every rank must take the same steps: give each the same data, with minibatches' shards)";
    }
    gradtape::detail::fail<argument_error>(op, site, message);
}

// The failure's message, for the other ranks.
std::string message_of(const std::exception_ptr& failure)
{
    try {
        std::rethrow_exception(failure);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "an exception of an unknown type";
    }
}

// Shapes, in order, as one number every rank's must equal (FNV-1a).
template <dtype T>
std::int64_t shapes_key(const std::vector<basic_tensor<T>>& tensors)
{
    std::uint64_t hash = 14695981039346656037u;
    const auto mix = [&](std::uint64_t value) { hash = (hash ^ value) * 1099511628211u; };
    for (const auto& tensor : tensors) {
        mix(tensor.dimension());
        for (std::size_t dim : tensor.shape()) {
            mix(dim);
        }
    }
    return std::int64_t(hash >> 1);
}

}  // namespace

environment::environment(int& argc, char**& argv)
{
    int provided = 0;
    [[maybe_unused]] const mpi_own_allocations ignored;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        throw argument_error("gradtape::mpi::environment: MPI_Init_thread failed");
    }
    // Errors come back as codes, which become exceptions naming the op.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Type_contiguous(sizeof(agreement) / sizeof(std::int64_t), MPI_INT64_T, &agreement_type);
    MPI_Type_commit(&agreement_type);
    MPI_Op_create(combine_agreements, 1, &agreement_op);
    previous_terminate = std::set_terminate(abort_job_on_terminate);
}

environment::~environment()
{
    if (std::uncaught_exceptions() > 0) {
        abort("an exception left the scope of gradtape::mpi::environment");
    }
    // Ranks still taking steps would wait for this one for ever.
    try {
        (void)agree(collective::ending, 0, 0, "", "", "gradtape::mpi::environment", source_location::current());
    } catch (const std::exception& e) {
        abort(e.what());
    }
    std::set_terminate(previous_terminate);
    [[maybe_unused]] const mpi_own_allocations ignored;
    MPI_Op_free(&agreement_op);
    MPI_Type_free(&agreement_type);
    MPI_Finalize();
}

void environment::abort(const std::string& why)
{
    std::fprintf(stderr, "gradtape::mpi: rank %d of %d: %s; ending every rank\n", rank(), size(), why.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
}

int rank()
{
    int value = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &value);
    return value;
}

int size()
{
    int value = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &value);
    return value;
}

namespace {

// broadcast_variables, once every rank has said it can: `problem` is this
// rank's reason not to (its model is not built), if any.
template <dtype T>
void broadcast(const std::vector<basic_variable<T>>& variables, int root, std::string problem,
               const source_location& site)
{
    constexpr std::string_view op = "broadcast_variables";
    if (problem.empty() && (root < 0 || root >= size())) {
        problem = "root " + std::to_string(root) + " is not a rank of " + std::to_string(size());
    }
    (void)agree(collective::broadcast_variables, root, 0, problem, "from rank " + std::to_string(root), op, site);
    std::string mine;
    for (const auto& line : describe(variables)) {
        mine += line + '\n';
    }
    // Every rank sees every description, so that all of them refuse together.
    const std::vector<std::string> all = gather_everywhere(mine, op, site);
    const std::vector<std::string> expected = split_lines(all[std::size_t(root)]);
    for (std::size_t r = 0; r < all.size(); ++r) {
        const std::vector<std::string> theirs = split_lines(all[r]);
        for (std::size_t i = 0; i < std::max(theirs.size(), expected.size()); ++i) {
            const std::string a = i < expected.size() ? expected[i] : "nothing";
            const std::string b = i < theirs.size() ? theirs[i] : "nothing";
            if (a != b) {
                gradtape::detail::fail<argument_error>(op, site,
                                             "variable " + std::to_string(i) + " differs: rank " + std::to_string(root) +
                                                 " has " + a + ", rank " + std::to_string(r) + " has " + b +
                                                 " (every rank must build the same model)");
            }
        }
    }
    for (const auto& variable : variables) {
        basic_tensor<T> value = variable;
        xt::xarray<T> buffer = value.value();
        call_mpi(op, site,
                 [&] { return MPI_Bcast(buffer.data(), int(buffer.size()), datatype<T>(), root, MPI_COMM_WORLD); });
        gradtape::detail::write_variable(variable, site, [&](xt::xarray<T>& current) { current = buffer; });
    }
}

// The mean over ranks of each tensor, each rank's weighted by its `rows`
// (all 1: the plain mean). `failure`: this rank's step failed before it.
template <dtype T>
std::vector<basic_tensor<T>> mean_over_ranks(const std::vector<basic_tensor<T>>& tensors, std::size_t rows,
                                             const std::exception_ptr& failure, const source_location& site)
{
    constexpr std::string_view op = "allreduce_mean";
    std::string problem = failure ? message_of(failure) : "";
    std::size_t elements = 0;
    for (std::size_t i = 0; i < tensors.size() && problem.empty(); ++i) {
        if (!tensors[i].defined()) {
            problem = "tensor " + std::to_string(i) + " is undefined (a gradient of a variable the loss does not reach?)";
        } else {
            elements += tensors[i].size();
        }
    }
    std::int64_t total_rows = 0;
    try {
        total_rows = agree(collective::allreduce_mean, shapes_key(tensors), std::int64_t(rows), problem,
                           "of " + std::to_string(tensors.size()) + " tensors, " + std::to_string(elements) +
                               " elements",
                           op, site);
    } catch (const argument_error&) {
        if (failure) {
            std::rethrow_exception(failure);
        }
        throw;
    }
    ++means_taken;
    if (total_rows == 0) {
        gradtape::detail::fail<argument_error>(op, site, "no rank has rows to average over");
    }
    const T weight = T(rows);
    const T scale = T(1) / T(total_rows);
    // This rank's share: its tensor times its rows; nothing from a rank of no rows.
    const auto share = [&](const basic_tensor<T>& tensor, T* to) {
        const T* from = tensor.value().data();
        if (rows == 0) {
            std::fill_n(to, tensor.size(), T(0));
        } else if (weight == T(1)) {
            std::copy_n(from, tensor.size(), to);
        } else {
            std::transform(from, from + tensor.size(), to, [weight](T value) { return weight * value; });
        }
    };
    std::vector<basic_tensor<T>> means;
    means.reserve(tensors.size());
    // Sums count elements from `from` into `to` over the ranks, in calls of at most INT_MAX elements.
    const auto sum = [&](const T* from, T* to, std::size_t count) {
        constexpr std::size_t most = std::size_t(std::numeric_limits<int>::max());
        for (std::size_t done = 0; done < count; done += most) {
            call_mpi(op, site, [&] {
                return MPI_Allreduce(from == to ? MPI_IN_PLACE : from + done, to + done,
                                     int(std::min(most, count - done)), datatype<T>(), MPI_SUM, MPI_COMM_WORLD);
            });
        }
    };
    std::vector<T> buffer;
    const std::size_t capacity = std::max<std::size_t>(fusion_bytes / sizeof(T), 1);
    for (std::size_t first = 0; first < tensors.size();) {
        // A large tensor is summed in its mean's buffer: packing it would only copy it twice.
        if (tensors[first].size() * sizeof(T) >= direct_bytes) {
            auto mean = xt::xarray<T>::from_shape(tensors[first].shape());
            if (rows == 1) {
                sum(tensors[first].value().data(), mean.data(), mean.size());
            } else {
                share(tensors[first], mean.data());
                sum(mean.data(), mean.data(), mean.size());
            }
            std::ranges::transform(mean, mean.begin(), [scale](T total) { return total * scale; });
            means.emplace_back(std::move(mean));
            ++first;
            continue;
        }
        // Small tensors are packed together, up to the fusion size, and summed in one call.
        std::size_t last = first;
        buffer.clear();
        while (last < tensors.size() && tensors[last].size() * sizeof(T) < direct_bytes &&
               (last == first || buffer.size() + tensors[last].size() <= capacity)) {
            const std::size_t at = buffer.size();
            buffer.resize(at + tensors[last].size());
            share(tensors[last], buffer.data() + at);
            ++last;
        }
        sum(buffer.data(), buffer.data(), buffer.size());
        std::size_t offset = 0;
        for (std::size_t i = first; i < last; ++i) {
            auto mean = xt::xarray<T>::from_shape(tensors[i].shape());
            std::transform(buffer.begin() + std::ptrdiff_t(offset), buffer.begin() + std::ptrdiff_t(offset + mean.size()),
                           mean.begin(), [scale](T total) { return total * scale; });
            offset += mean.size();
            means.emplace_back(std::move(mean));
        }
        first = last;
    }
    return means;
}

}  // namespace

template <dtype T>
void broadcast_variables(const std::vector<basic_variable<T>>& variables, int root, source_location site)
{
    broadcast(variables, root, "", site);
}

template <dtype T>
void broadcast_variables(const basic_layer<T>& model, int root, source_location site)
{
    if (!model.built()) {
        broadcast<T>({}, root, "model '" + model.path() + "' has no variables yet: build() it first", site);
    }
    broadcast(model.variables(), root, "", site);
}

template <dtype T>
std::vector<basic_tensor<T>> allreduce_mean(const std::vector<basic_tensor<T>>& tensors, source_location site)
{
    return mean_over_ranks(tensors, 1, nullptr, site);
}

template <dtype T>
std::vector<basic_tensor<T>> allreduce_mean(const std::vector<basic_tensor<T>>& tensors, std::size_t rows,
                                            source_location site)
{
    return mean_over_ranks(tensors, rows, nullptr, site);
}

namespace detail {

template <dtype T>
std::vector<basic_tensor<T>> allreduce_step(const std::vector<basic_tensor<T>>& tensors, std::size_t rows,
                                            const std::exception_ptr& failure, const source_location& site)
{
    return mean_over_ranks(tensors, rows, failure, site);
}

}  // namespace detail

#define GRADTAPE_INSTANTIATE_MPI(T)                                                                                  \
    template void broadcast_variables(const std::vector<basic_variable<T>>&, int, source_location);            \
    template void broadcast_variables(const basic_layer<T>&, int, source_location);                            \
    template std::vector<basic_tensor<T>> allreduce_mean(const std::vector<basic_tensor<T>>&, source_location); \
    template std::vector<basic_tensor<T>> allreduce_mean(const std::vector<basic_tensor<T>>&, std::size_t,           \
                                                         source_location);                                      \
    template std::vector<basic_tensor<T>> detail::allreduce_step(const std::vector<basic_tensor<T>>&, std::size_t,   \
                                                                 const std::exception_ptr&, const source_location&);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_MPI)
#undef GRADTAPE_INSTANTIATE_MPI

}  // namespace gradtape::mpi
