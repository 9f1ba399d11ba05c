// GradientTapes of static storage duration (a global, a function-local
// static, a member of a global) are destroyed after this thread's tape stack
// at exit; they must not touch it then. Run under AddressSanitizer by CI.
#include <iostream>

#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

namespace {

gt::GradientTape global_tape;

struct trainer {
    gt::GradientTape tape{{.persistent = true}};
};
trainer global_trainer;

gt::GradientTape& function_local_tape()
{
    static gt::GradientTape tape;
    return tape;
}

struct records_at_exit {
    ~records_at_exit()
    {
        // After the tape stack is gone: ops still run, and record nothing.
        const gt::Tensor64 x = 3.0;
        const gt::Tensor64 y = x * x;
        const gt::recording_pause pause;
        std::cout << "op at exit: " << y.item() << '\n';
    }
};
records_at_exit at_exit;

}  // namespace

int main()
{
    const gt::Tensor64 x = 2.0;
    function_local_tape().watch(x);
    global_tape.watch(x);
    const gt::Tensor64 y = x * x * x;
    const double slope = function_local_tape().gradient(y, x).item();
    std::cout << "d(x^3)/dx at 2 = " << slope << ", global tapes live until exit\n";
    return slope == 12.0 && global_trainer.tape.size() == 0 ? 0 : 1;
}
