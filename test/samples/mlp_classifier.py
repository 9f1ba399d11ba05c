"""Runs the MLP sample and checks what it plots.

The loss panel draws each minibatch's loss and, over it, TensorBoard's
smoothing of that series: s_k = m_k / (1 - 0.98^(k+1)) with
m_k = 0.98 m_(k-1) + 0.02 loss_k. The smoothed column is recomputed here from
that definition, and it must be calmer than the raw one it summarises.
"""
import os
import shutil
import subprocess
import sys

sample, prefix = os.path.abspath(sys.argv[1]), "sample_mlp_classifier"
run = subprocess.run([sample, "--output", prefix])
if run.returncode != 0:
    sys.exit(f"mlp_classifier exited with {run.returncode}")

rows = [line.split() for line in open(prefix + "_loss.dat")]
assert rows and all(len(row) == 3 for row in rows), "each line of the loss data holds step, loss and smoothed loss"
steps = [int(row[0]) for row in rows]
raw = [float(row[1]) for row in rows]
smoothed = [float(row[2]) for row in rows]
assert steps == list(range(len(rows))), "one line per step, in order"

moving, decay = 0.0, 0.98
for k, loss in enumerate(raw):
    moving = decay * moving + (1 - decay) * loss
    expected = moving / (1 - decay ** (k + 1))
    assert abs(smoothed[k] - expected) <= 1e-4 * abs(expected), f"step {k}: smoothed {smoothed[k]}, expected {expected}"


def variation(series):
    return sum(abs(b - a) for a, b in zip(series, series[1:]))


assert variation(smoothed) < variation(raw) / 10, "the smoothed loss is not calmer than the minibatch loss"
assert smoothed[-1] < smoothed[0] / 4, "the smoothed loss does not fall over training"

if shutil.which("gnuplot"):
    script = open(prefix + ".gnuplot").read()
    assert "using 1:3" in script, "the loss panel does not plot the smoothed column"
    assert os.path.getsize(prefix + ".png") > 0
print(f"{len(rows)} steps; loss variation {variation(raw):.1f} raw, {variation(smoothed):.2f} smoothed")
