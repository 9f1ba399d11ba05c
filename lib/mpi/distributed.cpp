// Data-parallel training over MPI: start and end, broadcasting variables
// (after checking every rank holds the same ones), and averaging tensors in
// fused buffers.
#include <gradtape/mpi.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <mpi.h>

#include <gradtape/error.hpp>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "../diagnostics.hpp"
#include "../dtypes.hpp"
#include "../tensor_access.hpp"

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
void call_mpi(std::string_view op, const std::source_location& site, Call&& call)
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
        detail::fail<argument_error>(op, site, "MPI failed: " + std::string(text, std::size_t(length)));
    }
}

// Every rank's string, in rank order.
std::vector<std::string> gather_everywhere(const std::string& mine, std::string_view op, const std::source_location& site)
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
        lines.push_back(variable.name() + " " + detail::format_shape(variable.shape()) + " " + detail::dtype_name<T>());
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
    previous_terminate = std::set_terminate(abort_job_on_terminate);
}

environment::~environment()
{
    if (std::uncaught_exceptions() > 0) {
        abort("an exception left the scope of gradtape::mpi::environment");
    }
    std::set_terminate(previous_terminate);
    [[maybe_unused]] const mpi_own_allocations ignored;
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

template <dtype T>
void broadcast_variables(const std::vector<basic_variable<T>>& variables, int root, std::source_location site)
{
    constexpr std::string_view op = "broadcast_variables";
    if (root < 0 || root >= size()) {
        detail::fail<argument_error>(op, site,
                                     "root " + std::to_string(root) + " is not a rank of " + std::to_string(size()));
    }
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
                detail::fail<argument_error>(op, site,
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
        detail::write_variable(variable, [&](xt::xarray<T>& current) { current = buffer; });
    }
}

template <dtype T>
void broadcast_variables(const basic_layer<T>& model, int root, std::source_location site)
{
    if (!model.built()) {
        detail::fail<argument_error>("broadcast_variables", site,
                                     "model '" + model.path() + "' has no variables yet: build() it first");
    }
    broadcast_variables(model.variables(), root, site);
}

template <dtype T>
std::vector<basic_tensor<T>> allreduce_mean(const std::vector<basic_tensor<T>>& tensors, std::source_location site)
{
    constexpr std::string_view op = "allreduce_mean";
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        if (!tensors[i].defined()) {
            detail::fail<argument_error>(op, site,
                                         "tensor " + std::to_string(i) +
                                             " is undefined (a gradient of a variable the loss does not reach?)");
        }
    }
    const T scale = T(1) / T(size());
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
        // A large tensor goes straight from its buffer into its mean's: packing it would only copy it twice.
        if (tensors[first].size() * sizeof(T) >= direct_bytes) {
            auto mean = xt::xarray<T>::from_shape(tensors[first].shape());
            sum(tensors[first].value().data(), mean.data(), mean.size());
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
            const auto& values = tensors[last].value();
            buffer.insert(buffer.end(), values.data(), values.data() + values.size());
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

#define GRADTAPE_INSTANTIATE_MPI(T)                                                                                  \
    template void broadcast_variables(const std::vector<basic_variable<T>>&, int, std::source_location);            \
    template void broadcast_variables(const basic_layer<T>&, int, std::source_location);                            \
    template std::vector<basic_tensor<T>> allreduce_mean(const std::vector<basic_tensor<T>>&, std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_MPI)
#undef GRADTAPE_INSTANTIATE_MPI

}  // namespace gradtape::mpi
