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
numpy.savez(sys.argv[1], weights=numpy.asfortranarray((0.5 * numpy.arange(6.0) - 1.0).reshape(2, 3)), bias=10 + numpy.arange(3.0))
'''

UNICODE = '''
import sys, numpy, zipfile
name = "gr\\u00f6\\u00dfe/\\u91cd\\u307f"
with zipfile.ZipFile(sys.argv[1]) as archive:
    info = archive.infolist()[0]
    assert info.filename == name + ".npy", info.filename
    assert info.flag_bits & 0x800, "the UTF-8 flag (bit 11) is not set"
with numpy.load(sys.argv[1]) as archive:
    assert archive.files == [name], archive.files
    assert (archive[name] == 1.5).all()
print("numpy read the non-ASCII name")
'''

MODEL = '''
import sys, numpy
with numpy.load(sys.argv[1]) as archive:
    names = sorted(archive.files)
    variables = ["mlp/dense/bias", "mlp/dense/kernel", "mlp/dense_1/bias", "mlp/dense_1/kernel"]
    slots = ["optimizer/%s/%s" % (v, s) for v in variables for s in ("m", "steps", "v")]
    assert names == sorted(variables + slots + ["optimizer/iterations", "random/state"]), names
    assert archive["mlp/dense/kernel"].shape == (3, 3) and archive["mlp/dense/kernel"].dtype == numpy.float64
    assert archive["optimizer/iterations"] == 1 and archive["optimizer/iterations"].dtype == numpy.uint64
    assert archive["optimizer/mlp/dense_1/kernel/v"].shape == (3, 1)
    assert archive["optimizer/mlp/dense_1/kernel/steps"] == 1
    assert archive["random/state"].dtype == numpy.uint64
print("numpy read the model and optimizer checkpoint")
'''
ARRAYS = '''
import os, sys, numpy
directory = sys.argv[1]
numpy.save(os.path.join(directory, "labels.npy"), numpy.array([3, -1, 4000000000], dtype=numpy.int64))
numpy.save(os.path.join(directory, "pixels.npy"), numpy.array([[0, 128], [255, 7]], dtype=numpy.uint8))
numpy.savez_compressed(os.path.join(directory, "arrays.npz"),
                       ints=numpy.array([[1, 2, 3], [4, 5, 6]], dtype=numpy.int32),
                       **{"gr\u00f6\u00dfe": numpy.asfortranarray((0.5 * numpy.arange(6.0) - 1.0).reshape(2, 3))})
'''

# .npy headers numpy's own reader refuses or reads differently; gradtape
# must refuse each, whatever NumPy makes of it.
BAD_HEADERS = [
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'shape': (3,), }",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3), }",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2.5,), }",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2 3), }",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2), }",
    "{'descr': '<f8', 'fortran_order': False, }",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'extra': 1, }",
    "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }",
    "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (2,), }",
    "['descr', '<f8']",
]
WRITE_BAD = '''
import struct, sys, zipfile
header = sys.argv[2].encode("latin1")
header += b" " * (63 - (10 + len(header)) % 64) + b"\\n"
npy = b"\\x93NUMPY\\x01\\x00" + struct.pack("<H", len(header)) + header + struct.pack("<2d", 4.0, 5.0)
with zipfile.ZipFile(sys.argv[1], "w") as archive:
    archive.writestr("a.npy", npy)
'''

with tempfile.TemporaryDirectory() as directory:
    from_cpp = os.path.join(directory, 'from_gradtape.npz')
    from_numpy = os.path.join(directory, 'from_numpy.npz')
    subprocess.run([program, 'write', from_cpp], check=True)
    subprocess.run([numpy_python, '-c', CHECK, from_cpp], check=True)
    subprocess.run([numpy_python, '-c', WRITE, from_numpy], check=True)
    subprocess.run([program, 'read', from_numpy], check=True)
    unicode = os.path.join(directory, 'unicode.npz')
    subprocess.run([program, 'write-unicode', unicode], check=True)
    subprocess.run([numpy_python, '-c', UNICODE, unicode], check=True)
    model = os.path.join(directory, 'model.npz')
    subprocess.run([program, 'write-model', model], check=True)
    subprocess.run([numpy_python, '-c', MODEL, model], check=True)
    subprocess.run([numpy_python, '-c', ARRAYS, directory], check=True)
    subprocess.run([program, 'read-arrays', directory], check=True)
    for i, header in enumerate(BAD_HEADERS):
        bad = os.path.join(directory, f'bad{i}.npz')
        subprocess.run([numpy_python, '-c', WRITE_BAD, bad, header], check=True)
        if subprocess.run([program, 'refuse', bad]).returncode != 0:
            sys.exit(f'gradtape did not refuse the header {header}')
print('checkpoints round-trip between gradtape and numpy')
