# Runs gdb in batch mode on the training loop, stops inside it, and checks
# what `print` shows for a variable, a tensor and the tape. Exits 77 (a
# skipped test for meson) where gdb is not installed.
import os
import shutil
import subprocess
import sys

from expected import check, expected_output

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

complaints = [line for line in output.splitlines() if 'Python Exception' in line or line.startswith('warning: RTTI')]
sys.exit(check('gdb', output, expected_output(library), complaints))
