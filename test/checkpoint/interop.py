# NumPy reads the .npz that gradtape writes, and gradtape reads the .npz that
# NumPy writes, with the same names and values. Exits 77 (skipped) where no
# python3 with numpy is installed.
import os
import shutil
import subprocess
import sys
import tempfile

program = sys.argv[1]
candidates = ['/usr/bin/python3', sys.executable, shutil.which('python3')]
numpy_python = next((p for p in candidates
                     if p and subprocess.run([p, '-c', 'import numpy'], capture_output=True).returncode == 0), None)
if numpy_python is None:
    print('no python3 with numpy (apt-get install python3-numpy): skipping')
    sys.exit(77)

CHECK = '''
import sys, numpy
with numpy.load(sys.argv[1]) as archive:
    assert sorted(archive.files) == ["bias", "weights"], archive.files
    weights, bias = archive["weights"], archive["bias"]
    assert weights.dtype == numpy.float32 and weights.shape == (2, 3), (weights.dtype, weights.shape)
    assert (weights == (0.5 * numpy.arange(6.0) - 1.0).reshape(2, 3)).all(), weights
    assert (bias == 10 + numpy.arange(3.0)).all(), bias
print("numpy read what gradtape wrote")
'''
WRITE = '''
import sys, numpy
numpy.savez(sys.argv[1], weights=(0.5 * numpy.arange(6.0) - 1.0).reshape(2, 3), bias=10 + numpy.arange(3.0))
'''

with tempfile.TemporaryDirectory() as directory:
    from_cpp = os.path.join(directory, 'from_gradtape.npz')
    from_numpy = os.path.join(directory, 'from_numpy.npz')
    subprocess.run([program, 'write', from_cpp], check=True)
    subprocess.run([numpy_python, '-c', CHECK, from_cpp], check=True)
    subprocess.run([numpy_python, '-c', WRITE, from_numpy], check=True)
    subprocess.run([program, 'read', from_numpy], check=True)
print('checkpoints round-trip between gradtape and numpy')
