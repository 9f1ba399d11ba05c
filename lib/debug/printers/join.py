# Writes one debugger script from describe.py and a debugger's own part, so
# that the script loads as a single file (gdb embeds it inline; LLDB imports
# it by path).
import sys

output_path, input_paths = sys.argv[1], sys.argv[2:]
with open(output_path, 'w', encoding='utf-8') as out:
    for path in input_paths:
        with open(path, encoding='utf-8') as part:
            out.write(part.read())
        out.write('\n\n')
