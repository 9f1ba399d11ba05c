// Under mpirun -np 2, a training loop in which rank 1 fails at its fifth step:
// `throw` raises an exception nothing catches, `kill` sends the process
// SIGKILL. Either way the whole job must end, with an error, and not leave
// rank 0 waiting in its next allreduce; run.py checks that it does.
// `mismatch` builds a wider layer on rank 1: broadcast_variables must refuse
// on both ranks.
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <string>

#include <gradtape/gradtape.hpp>
#include <gradtape/mpi.hpp>

namespace gt = gradtape;

int main(int argc, char** argv)
{
    gt::mpi::environment mpi(argc, argv);
    const std::string mode = argc > 1 ? argv[1] : "";
    const bool wider = mode == "mismatch" && gt::mpi::rank() == 1;
    gt::Sequential model({gt::Dense(wider ? 5 : 4)}, "model");
    model.build({1, 4});
    try {
        gt::mpi::broadcast_variables(model);
    } catch (const gt::argument_error& e) {
        std::printf("rank %d refused: %s\n", gt::mpi::rank(), e.what());
        return 3;
    }
    gt::SGD sgd(0.1);
    gt::mpi::distributed_optimizer optimizer(sgd);
    const gt::Tensor x = gt::ones<float>({8, 4});
    for (int step = 0; step < 1000000; ++step) {
        if (gt::mpi::rank() == 1 && step == 5) {
            if (mode == "throw") {
                throw std::runtime_error("rank 1 broke at step 5");
            }
            std::raise(SIGKILL);
        }
        (void)optimizer.minimize([&] { return gt::reduce_sum(gt::square(model(x))); }, model);
    }
    return 0;
}
