// Under mpirun -np 2, training loops that go wrong on one rank. Every case
// must end the whole job, or refuse on every rank, and never leave a rank
// waiting in a collective the other does not reach; run.py checks each.
//   throw     rank 1 raises, at its fifth step, an exception nothing catches
//   kill      rank 1 is sent SIGKILL at its fifth step
//   mismatch  rank 1 builds a wider layer: broadcast_variables refuses on both
//   unbuilt   rank 1 never builds its model: broadcast_variables refuses on both
//   steps     rank 1 has 60 rows of data, rank 0 100, in batches of 10: the
//             job ends when rank 1 ends, naming both ranks and their steps
//   failing   rank 1's loss throws at its third step, and the loop catches it:
//             both ranks refuse that step, changing nothing, and go on
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <string>

#include <gradtape/gradtape.hpp>
#include <gradtape/mpi.hpp>

namespace gt = gradtape;

namespace {

int refused_broadcast(const gt::Sequential& model)
{
    try {
        gt::mpi::broadcast_variables(model);
    } catch (const gt::argument_error& e) {
        std::printf("rank %d refused: %s\n", gt::mpi::rank(), e.what());
        return 3;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    gt::mpi::environment mpi(argc, argv);
    const std::string mode = argc > 1 ? argv[1] : "";
    const bool second = gt::mpi::rank() == 1;
    gt::Sequential model({gt::Dense(mode == "mismatch" && second ? 5 : 4)}, "model");
    if (!(mode == "unbuilt" && second)) {
        model.build({1, 4});
    }
    if (const int refused = refused_broadcast(model)) {
        return refused;
    }
    gt::SGD sgd(0.1);
    gt::mpi::distributed_optimizer optimizer(sgd);
    const auto loss = [&](const gt::Tensor& x) {
        return [&] { return gt::reduce_mean(gt::square(model(x))); };
    };

    if (mode == "steps") {
        const gt::Tensor data = gt::ones<float>({second ? 60u : 100u, 4});
        gt::minibatches<float> batches({data}, {}, {.batch_size = 10});
        for (const auto& batch : batches) {
            (void)optimizer.minimize(loss(batch.tensors[0]), model, batch.rows.size());
        }
        std::printf("rank %d took %zu steps\n", gt::mpi::rank(), batches.size());
        return 0;
    }

    const gt::Tensor x = gt::ones<float>({8, 4});
    if (mode == "failing") {
        int refusals = 0;
        for (int step = 0; step < 5; ++step) {
            const xt::xarray<float> before = model.variables()[0].value();
            try {
                (void)optimizer.minimize(
                    [&] {
                        if (second && step == 2) {
                            throw std::runtime_error("rank 1's loss failed at step 2");
                        }
                        return loss(x)();
                    },
                    model, 8);
            } catch (const std::exception& e) {
                ++refusals;
                const bool unchanged = model.variables()[0].value() == before;
                std::printf("rank %d refused step %d (%s): %s\n", gt::mpi::rank(), step,
                            unchanged ? "unchanged" : "changed", e.what());
            }
        }
        std::printf("rank %d: %d refusals, %llu updates\n", gt::mpi::rank(), refusals,
                    (unsigned long long)sgd.iterations());
        return 0;
    }

    for (int step = 0; step < 1000000; ++step) {
        if (second && step == 5) {
            if (mode == "throw") {
                throw std::runtime_error("rank 1 broke at step 5");
            }
            std::raise(SIGKILL);
        }
        (void)optimizer.minimize(loss(x), model, 8);
    }
    return 0;
}
