# Compiles one program holding a common mistake and checks what the user
# sees: the compile fails, the first error line says what to do (the text
# after "// error:" in the program's first line), any "// also:" text appears,
# and the whole output stays under 25 lines. A program whose first line is
# "// compiles:" must compile instead. Each compiler named on the command line
# is tried, so that g++ and Clang are both held to it.
#
#   check.py PROGRAM INCLUDE_DIR --compiler 'g++' --compiler 'clang++-19' [--flag=-DNAME...]
import argparse
import os
import re
import shutil
import subprocess
import sys

MAX_LINES = 25

parser = argparse.ArgumentParser()
parser.add_argument('program')
parser.add_argument('include_dir')
parser.add_argument('--compiler', action='append', required=True)
parser.add_argument('--flag', action='append', default=[])
args = parser.parse_args()

header = []
with open(args.program) as source:
    for line in source:
        if not line.startswith('//'):
            break
        header.append(line[2:].strip())
expected_error = next((h[len('error:'):].strip() for h in header if h.startswith('error:')), None)
also = [h[len('also:'):].strip() for h in header if h.startswith('also:')]
must_compile = any(h.startswith('compiles:') for h in header)
if expected_error is None and not must_compile:
    sys.exit(f'{args.program}: its first line must be "// error: TEXT" or "// compiles: WHY"')


def clang_major(command):
    version = subprocess.run(command.split() + ['--version'], capture_output=True, text=True).stdout
    match = re.search(r'clang version (\d+)', version)
    return int(match.group(1)) if match else None


def same_program(command):
    found = shutil.which(command.split()[-1])
    return os.path.realpath(found) if found else command


# The build's compiler may be one of the others under another name (c++, g++).
compilers = list({same_program(c): c for c in reversed(args.compiler)}.values())[::-1]
failures = []
for compiler in compilers:
    flags = ['-std=c++20', '-fsyntax-only', '-I' + args.include_dir] + args.flag
    major = clang_major(compiler)
    if major is not None and major >= 19:
        # The flags meson.build adds for this Clang: xtensor 0.24 needs them.
        flags += ['-fno-relaxed-template-template-args', '-Wno-deprecated-no-relaxed-template-template-args']
    result = subprocess.run(compiler.split() + flags + [args.program], capture_output=True, text=True)
    output = result.stdout + result.stderr
    lines = output.splitlines()
    print(f'== {compiler}: exit {result.returncode}, {len(lines)} lines')
    print(output)
    if must_compile:
        if result.returncode != 0:
            failures.append(f'{compiler}: does not compile')
        continue
    if result.returncode == 0:
        failures.append(f'{compiler}: compiles, but must fail')
        continue
    first_error = next((line for line in lines if 'error:' in line), '')
    if expected_error not in first_error:
        failures.append(f'{compiler}: the first error line does not say "{expected_error}": {first_error}')
    failures += [f'{compiler}: the output does not say "{text}"' for text in also if text not in output]
    if len(lines) >= MAX_LINES:
        failures.append(f'{compiler}: {len(lines)} lines of output, {MAX_LINES} or more')

if failures:
    print('FAILED:', *failures, sep='\n  ')
    sys.exit(1)
