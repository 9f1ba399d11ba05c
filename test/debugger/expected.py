# What gdb's and LLDB's printers must show for training_loop.cpp, the same
# for both debuggers.
import subprocess


def expected_output(library):
    # w starts at 0.25: yhat = 0.5, loss = 4 * 0.5^2 / 2 = 0.5, the gradient
    # is input^T (yhat - target) = -2 per weight, and one step at 0.01 gives
    # 0.27. The printers read the library's debug information; a release
    # build has none, and then each printer says so instead of printing
    # empty values.
    if b'.debug_info' not in subprocess.run(['objdump', '-h', library], capture_output=True).stdout:
        return [
            'float32 (its value needs the debug information of libgradtape',
            'GradientTape (its list of entries needs the debug information of libgradtape',
            'layer (its description needs the debug information of libgradtape',
        ]
    return [
        "float32 variable 'weights', shape (2, 1), 2 elements: [0.25, 0.25]",
        'float32 tensor, shape (), 1 elements: [0.5]',
        'GradientTape (non-persistent, 3 entries)',
        '#0 matmul (4, 2) float32, (2, 1) float32 -> (4, 1) float32  ',
        '#2 l2_loss (4, 1) float32 -> () float32',
        'training_loop.cpp:32',
        "float32 variable 'weights', shape (2, 1), 2 elements: [0.27, 0.27]",
        "sequential 'net', built for input (1, 4), 4 variables",
        '  net/dense/kernel (4, 3)',
        '  net/logits/bias (2,)',
        "dense 'dense', not built, 0 variables",
        "scaler 'scaler', not built, 1 variables\n  scaler/scale (4,)",
        'int64 array, shape (2000,): [0, 1, 2, ..., 7, 8, 9]',
        'int64 array, shape (2, 3): [[1, 2, 3],\n [4, 5, 6]]',
        'GradientTape (non-persistent, 5 entries)\n  ...\n  #3 net/logits: matmul',
        '#4 net/logits: add (1, 2) float32, (2,) float32 -> (1, 2) float32',
    ]


def check(debugger, output, expected, complaints):
    missing = [text for text in expected if text not in output]
    if missing:
        print('missing from %s output:' % debugger, *missing, sep='\n  ')
        return 1
    # A printer that fails, or makes the debugger warn, spoils the session it should help.
    if complaints:
        print('%s complained while printing:' % debugger, *complaints, sep='\n  ')
        return 1
    return 0
