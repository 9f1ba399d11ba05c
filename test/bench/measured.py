"""The line that heads each benchmark table: the commit (git describe,
"-dirty" with uncommitted changes), the date and the processor, as the C++
benchmarks print it, so that a table is pasted with its run."""
import datetime
import os
import subprocess


def measured_on():
    source = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(['git', '-C', source, 'describe', '--always', '--dirty'], capture_output=True,
                            text=True).stdout.strip() or 'unknown'
    processor = 'an unknown processor'
    with open('/proc/cpuinfo') as cpuinfo:
        for line in cpuinfo:
            if line.startswith('model name'):
                processor = line.split(':', 1)[1].strip()
                break
    date = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    return f'Measured on {commit}, {date}, {processor}'
