# Runs gdb in batch mode on the training loop, stops inside it, and checks
# what `print` shows for a variable, a tensor and the tape. Exits 77 (a
# skipped test for meson) where gdb is not installed.
import os
import shutil
import subprocess
import sys

program, library = sys.argv[1], sys.argv[2]
library_dir = os.path.dirname(library)
if shutil.which('gdb') is None:
    print('gdb is not installed: skipping the pretty-printer test')
    sys.exit(77)

commands = [
    '-iex', 'add-auto-load-safe-path ' + library_dir,
    '-ex', 'break inspect_here',
    '-ex', 'run',
    '-ex', 'up',
    '-ex', 'print w',
    '-ex', 'print loss',
    '-ex', 'print tape',
    '-ex', 'continue',
    '-ex', 'up',
    '-ex', 'print w',
    '-ex', 'continue',
    '-ex', 'continue',
    '-ex', 'up',
    '-ex', 'print model',
    '-ex', 'print unbuilt',
    '-ex', 'print scaled',
    '-ex', 'print labels',
    '-ex', 'print few',
    '-ex', 'set gradtape-entries 2',
    '-ex', 'print tape',
    '-ex', 'kill',
]
result = subprocess.run(['gdb', '-nx', '-batch'] + commands + [program], capture_output=True, text=True, timeout=120)
output = result.stdout + result.stderr
print(output)

# w starts at 0.25: yhat = 0.5, loss = 4 * 0.5^2 / 2 = 0.5, the gradient is
# input^T (yhat - target) = -2 per weight, and one step at 0.01 gives 0.27.
# The printers read the library's debug information; a release build has
# none, and then each printer says so instead of printing empty values.
library_has_debug_info = b'.debug_info' in subprocess.run(['objdump', '-h', library], capture_output=True).stdout
if library_has_debug_info:
    expected = [
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
else:
    expected = [
        'float32 (its value needs the debug information of libgradtape',
        'GradientTape (its list of entries needs the debug information of libgradtape',
        'layer (its description needs the debug information of libgradtape',
    ]
missing = [text for text in expected if text not in output]
if missing:
    print('missing from gdb output:', *missing, sep='\n  ')
    sys.exit(1)
# A printer that fails, or makes gdb warn, spoils the session it should help.
complaints = [line for line in output.splitlines() if 'Python Exception' in line or line.startswith('warning: RTTI')]
if complaints:
    print('gdb complained while printing:', *complaints, sep='\n  ')
    sys.exit(1)
