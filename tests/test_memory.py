"""minirnn.memory: with freed memory kept, a training-like loop of large
allocations stops page-faulting; without it, glibc returns the pages each round."""

import platform
import subprocess
import sys
import textwrap

import pytest

from minirnn import memory

PROBE = textwrap.dedent("""
    import resource
    import numpy as np
    from minirnn.memory import keep_freed_memory

    def faults_per_round(rounds=10):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            # what an LSTM step allocates and drops: several (T, B, 4H) arrays
            arrays = [np.ones((28, 64, 400), np.float32) for _ in range(5)]
            del arrays
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds

    faults_per_round(2)
    default = faults_per_round()
    kept = keep_freed_memory()
    faults_per_round(2)
    print(kept, default, faults_per_round())
""")


def test_keep_freed_memory_is_in_force_with_glibc_and_idempotent():
    first = memory.keep_freed_memory()
    assert first is (platform.libc_ver()[0] == "glibc")
    assert memory.keep_freed_memory() is first


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    # a fresh interpreter: the setting is process-wide and cannot be undone
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    kept, default, after = out[0] == "True", float(out[1]), float(out[2])
    if not kept:
        pytest.skip("this C library has no mallopt (not glibc)")
    # 5 x 2.9 MB touched per round is ~3,500 pages: by default most fault again
    assert default > 1000, default
    assert after < 10, after
