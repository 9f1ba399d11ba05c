# Writes an assembly file that puts a gdb Python script into the
# .debug_gdb_scripts section (kind 4: an inlined script), so that gdb finds
# the pretty-printers inside the library itself.
import sys

script_path, output_path = sys.argv[1], sys.argv[2]
with open(script_path, encoding='utf-8') as script:
    lines = script.read().splitlines()

with open(output_path, 'w', encoding='utf-8') as out:
    out.write('.pushsection ".debug_gdb_scripts", "MS",@progbits,1\n')
    out.write('.byte 4\n')
    out.write('.ascii "gdb.inlined-script.gradtape\\n"\n')
    for line in lines:
        escaped = line.replace('\\', '\\\\').replace('"', '\\"')
        out.write('.ascii "%s\\n"\n' % escaped)
    out.write('.byte 0\n')
    out.write('.popsection\n')
    out.write('.section .note.GNU-stack,"",@progbits\n')
