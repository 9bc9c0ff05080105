"""The harness of the "compiled against plain" tests: run one script twice in a
fresh interpreter, once with Numba compiling the kernels and once with
``NUMBA_DISABLE_JIT=1`` (the same code as plain Python and NumPy), and return
both JSON results for the test to compare."""
import json
import os
import subprocess
import sys


def run_script(script, disable_jit):
    """The JSON that ``script`` prints, run with the JIT on or off."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1" if disable_jit else "0")
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout)


def compiled_and_plain(script):
    """(result with the JIT, result without it)."""
    return run_script(script, False), run_script(script, True)
