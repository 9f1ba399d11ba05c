"""Data-parallel scaling on this machine: the MLP and the CNN at a global
batch of 512, on one process and on two, OpenBLAS at one thread per
process; examples per second, their ratio (goal >= 1.7) and the allreduce's
share of a step."""
import subprocess
import sys

from measured import measured_on

mpirun, program = sys.argv[1:3]
launch = [mpirun, '--oversubscribe', '--allow-run-as-root', '-x', 'OPENBLAS_NUM_THREADS=1', '--bind-to', 'core']
print(f'{measured_on()}: OpenBLAS at one thread per process; global batch 512.\n')
print('| model | examples/s, 1 process | examples/s, 2 processes | ratio | goal | allreduce share at 2 |')
print('| --- | --- | --- | --- | --- | --- |')
for model, steps in (('mlp', '60'), ('cnn', '12')):
    rates, shares = {}, {}
    for np in (1, 2):
        out = subprocess.run(launch + ['-np', str(np), program, model, steps], capture_output=True, text=True,
                             check=True).stdout.split()
        rates[np], shares[np] = float(out[2]), float(out[3])
    ratio = rates[2] / rates[1]
    print(f'| {model} | {rates[1]:.0f} | {rates[2]:.0f} | {ratio:.2f} | >= 1.7: {"met" if ratio >= 1.7 else "missed"} '
          f'| {100 * shares[2]:.1f}% |')
