"""Checks that a kernel library compiled for one architecture defines no code
but its own architecture's: a function the linker shares across the library
(an inline function, a template instantiation) must carry the architecture in
its name, or the library could run this unit's instructions on a machine that
lacks them.

    symbols.py NM LIBRARY ARCH [LIBRARY ARCH ...]
"""
import subprocess
import sys

nm, pairs = sys.argv[1], sys.argv[2:]
failed = False
for library, arch in zip(pairs[0::2], pairs[1::2]):
    listing = subprocess.run([nm, '-C', library], check=True, capture_output=True, text=True).stdout
    functions = [line.split(' ', 2)[2] for line in listing.splitlines()
                 if len(line.split(' ', 2)) == 3 and line.split(' ', 2)[1] in ('T', 'W')]
    foreign = [name for name in functions if arch not in name]
    print(f'{library}: {len(functions)} functions, {len(foreign)} not for {arch}')
    for name in foreign:
        print('    ' + name)
    failed = failed or not functions or bool(foreign)
sys.exit(1 if failed else 0)
