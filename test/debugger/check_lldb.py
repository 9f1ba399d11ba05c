# Runs LLDB in batch mode on the training loop with gradtape's formatters
# imported, as the README says, and checks what `frame variable` shows: the
# same text gdb's printers show. Exits 77 (a skipped test for meson) where
# LLDB is not installed.
import subprocess
import sys

from expected import check, expected_output

lldb, program, library, formatters = sys.argv[1:5]
if lldb == '':
    print('LLDB is not installed: skipping the formatter test')
    sys.exit(77)

commands = [
    'command script import ' + formatters,
    'breakpoint set --name inspect_here',
    'run',
    'up',
    'frame variable w loss tape',
    'continue',
    'up',
    'frame variable w',
    'continue',
    'continue',
    'up',
    'frame variable model unbuilt scaled labels few',
    'gradtape-entries 2',
    'frame variable tape',
    'kill',
]
arguments = [lldb, '--batch', '--no-lldbinit']
for command in commands:
    arguments += ['--one-line', command]
result = subprocess.run(arguments + [program], capture_output=True, text=True, timeout=180)
output = result.stdout + result.stderr
print(output)
complaints = [line for line in output.splitlines()
              if 'Traceback' in line or '<unreadable' in line or line.startswith('error:')]
sys.exit(check('LLDB', output, expected_output(library), complaints))
