"""The data-parallel tests under mpirun: 2 processes equal 1 on the whole
batch, and a rank that throws or is killed ends the job instead of hanging it."""
import os
import subprocess
import sys
import tempfile

mpirun, data_parallel, faults = sys.argv[1:4]
launch = [mpirun, '--oversubscribe', '--allow-run-as-root', '-x', 'OPENBLAS_NUM_THREADS=1']


def run(np, *command, timeout=240):
    done = subprocess.run(launch + ['-np', str(np)] + list(command), capture_output=True, text=True, timeout=timeout)
    print(done.stdout, end='')
    return done


# Each count of processes trains and saves; each loads what the other saved.
with tempfile.TemporaryDirectory() as directory:
    saved = {np: os.path.join(directory, f'{np}.npz') for np in (1, 2)}
    for np, mode, path in ((1, 'save', saved[1]), (2, 'save', saved[2]), (1, 'load', saved[2]), (2, 'load', saved[1])):
        result = run(np, data_parallel, mode, path)
        if result.returncode != 0:
            sys.exit(f'{np} processes, {mode} {path}: exit {result.returncode}\n{result.stderr}')
print('checkpoints saved by 1 and 2 processes load in 2 and 1')

three = run(3, data_parallel)
if three.returncode != 0:
    sys.exit(f'3 processes: exit {three.returncode}\n{three.stderr}')
print('3 processes, on batches that do not split evenly, take the steps of 1')

mismatched = run(2, faults, 'mismatch', timeout=60)
assert mismatched.returncode != 0, 'different models on the ranks were not refused'
for rank in (0, 1):
    assert f'rank {rank} refused: broadcast_variables: variable 0 differs: rank 0 has model/dense/kernel (4, 4) float32, ' \
           f'rank 1 has model/dense/kernel (4, 5) float32' in mismatched.stdout, mismatched.stdout
print('different models were refused on every rank')

unbuilt = run(2, faults, 'unbuilt', timeout=60)
assert unbuilt.returncode != 0, 'a model built on one rank only was not refused'
for rank in (0, 1):
    assert f"rank {rank} refused: broadcast_variables: the ranks do not agree: rank 0 is in broadcast_variables " \
           f"from rank 0, after 0 means; rank 1 is in broadcast_variables from rank 0, after 0 means, refused: " \
           f"model 'model' has no variables yet" in unbuilt.stdout, unbuilt.stdout
print('a model built on one rank only was refused on every rank')

steps = run(2, faults, 'steps', timeout=60)
assert steps.returncode != 0, 'ranks taking 10 and 6 steps did not fail the job'
assert 'rank 1 took 6 steps' in steps.stdout, steps.stdout
assert 'rank 0 is in allreduce_mean of 2 tensors, 20 elements, after 6 means; ' \
       'rank 1 is in the end of its environment, after 6 means' in steps.stdout + steps.stderr, steps.stdout + steps.stderr
print('ranks taking 10 and 6 steps ended the job, naming both')

failing = run(2, faults, 'failing', timeout=60)
assert failing.returncode == 0, failing.stdout + failing.stderr
assert "rank 1 refused step 2 (unchanged): rank 1's loss failed at step 2" in failing.stdout, failing.stdout
assert "rank 0 refused step 2 (unchanged): allreduce_mean: the ranks do not agree" in failing.stdout, failing.stdout
assert "refused: rank 1's loss failed at step 2" in failing.stdout, failing.stdout
for rank in (0, 1):
    assert f'rank {rank}: 1 refusals, 4 updates' in failing.stdout, failing.stdout
print("a step failing on one rank was refused on both, which went on together")

thrown = run(2, faults, 'throw', timeout=60)
assert thrown.returncode != 0, 'an exception on rank 1 did not fail the job'
assert 'rank 1 of 2: uncaught exception: rank 1 broke at step 5' in thrown.stderr, thrown.stderr
print('an exception on rank 1 ended the job with its message')

killed = run(2, faults, 'kill', timeout=60)
assert killed.returncode != 0, 'a killed rank did not fail the job'
print(f'a killed rank ended the job: mpirun exited with {killed.returncode}')
