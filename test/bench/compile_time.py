#!/usr/bin/env python3
"""Workload 5: the wall time and peak memory of compiling samples/linear_regression.cpp
with the build's own command line, beside the same program written for LibTorch
compiled with the same compiler, standard, optimisation and debug flags.

    compile_time.py COMPILE_COMMANDS_JSON [LIBTORCH_SOURCE TORCH_INCLUDE_DIR]
"""
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from measured import measured_on

RUNS = 3


def measure(command, directory):
    """Median wall seconds and peak resident MiB of the compiler over RUNS runs."""
    walls, peaks = [], []
    for _ in range(RUNS):
        start = time.monotonic()
        process = subprocess.Popen(command, cwd=directory)
        _, status, usage = os.wait4(process.pid, 0)
        walls.append(time.monotonic() - start)
        # ru_maxrss of a reaped child covers the descendants it waited for (cc1plus under g++).
        peaks.append(usage.ru_maxrss / 1024)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"compile failed: {shlex.join(command)}")
    return statistics.median(walls), max(peaks)


def ours(compile_commands, output):
    with open(compile_commands) as f:
        entries = json.load(f)
    entry = next(e for e in entries if e["file"].endswith("samples/linear_regression.cpp"))
    words = shlex.split(entry["command"])
    command, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in ("-MQ", "-MF", "-o"):
            skip = True
        elif word != "-MD":
            command.append(word)
    return command + ["-o", output], entry["directory"]


def main():
    compile_commands = sys.argv[1]
    with tempfile.TemporaryDirectory() as scratch:
        command, directory = ours(compile_commands, os.path.join(scratch, "ours.o"))
        wall, peak = measure(command, directory)
        print(f"{measured_on()}.\n")
        print(f"5. compiling samples/linear_regression.cpp: {wall:.1f} s, peak {peak:.0f} MiB")
        print(f"   {shlex.join(command)}")
        if len(sys.argv) < 4:
            print("   LibTorch not found: no comparison (install libtorch-dev)")
            return
        flags = [w for w in command if w.startswith(("-std=", "-O", "-g"))]
        torch = [command[0], *flags, "-isystem", sys.argv[3], "-c", os.path.abspath(sys.argv[2]),
                 "-o", os.path.join(scratch, "torch.o")]
        torch_wall, torch_peak = measure(torch, directory)
        print(f"   the same program for LibTorch: {torch_wall:.1f} s, peak {torch_peak:.0f} MiB")
        print(f"   {shlex.join(torch)}")
        print(f"| 5. compile the tutorial sample | {wall:.1f} s | LibTorch {torch_wall:.1f} s | "
              f"{wall / torch_wall:.2f} | <= 0.25: {'met' if wall / torch_wall <= 0.25 else 'missed'} |")
        print(f"| 5. compile, peak memory | {peak:.0f} MiB | LibTorch {torch_peak:.0f} MiB | {peak / torch_peak:.2f} | |")

if __name__ == "__main__":
    main()
