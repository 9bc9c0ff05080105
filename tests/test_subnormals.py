"""minirnn.subnormals: inside flush_subnormals(), subnormal float32 results are 0;
after it, the previous setting is back."""

import platform
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import numpy as np
    from minirnn.subnormals import flush_subnormals

    tiny = np.array([1e-38, -3e-39], np.float32)      # the first is normal, the second not
    nonzero_before = int((tiny / np.float32(100) != 0).sum())    # subnormal results
    with flush_subnormals() as flushed:
        # (counted inside: once flushed, even reading a subnormal gives 0)
        nonzero_inside = int((tiny / np.float32(100) != 0).sum())
        underflow = float(np.float32(1e-30) * np.float32(1e-10))
        normal = float(np.float32(1e-3) * np.float32(2))
    nonzero_after = int((tiny / np.float32(100) != 0).sum())
    print(flushed, nonzero_before, nonzero_inside, nonzero_after, underflow, normal)
""")


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="MXCSR is x86-64's"
)
def test_flush_subnormals_rounds_subnormal_results_to_zero_and_nothing_else():
    # a fresh interpreter, so that nothing else has touched the setting
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    flushed, nonzero_before, nonzero_inside, nonzero_after, underflow, normal = out
    assert flushed == "True"
    assert (nonzero_before, nonzero_inside, nonzero_after) == ("2", "0", "2")  # restored
    assert float(underflow) == 0.0  # 1e-40 is below float32's normal range
    assert float(normal) == pytest.approx(2e-3)  # normal numbers are untouched


def test_flush_subnormals_does_nothing_without_the_jit():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from minirnn.subnormals import flush_subnormals\n"
            "with flush_subnormals() as flushed: print(flushed)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "NUMBA_DISABLE_JIT": "1"},
    )
    assert out.stdout.strip() == "False"
