"""Runs use_after_free under AddressSanitizer: it must be stopped by a
use-after-poison report on the read of the freed tensor's storage."""
import subprocess
import sys

result = subprocess.run([sys.argv[1]], capture_output=True, text=True, timeout=120)
report = result.stderr
if result.returncode == 0 or "use-after-poison" not in report or "use_after_free.cpp" not in report:
    print(f"exit status {result.returncode}; expected a use-after-poison report", file=sys.stderr)
    print(result.stdout, report, sep="\n", file=sys.stderr)
    sys.exit(1)
print("AddressSanitizer reported the read of a cached block")
