"""How many threads the BLAS libraries use.

Two copies of OpenBLAS are loaded in a minirnn process: NumPy's, for the
products outside the loops, and SciPy's, which Numba calls for ``@`` inside the
compiled loops. Each keeps a pool of threads that spin for a while after a
call; on a machine with few cores the two pools take the cores from each
other, and an alternation of small products (exactly what a recurrent network
does) can run many times slower than on one thread. The training and benchmark
commands therefore set both pools to one thread unless told otherwise
(``--blas-threads``); docs/performance.md has the measurements. The cores are
used instead by splitting each batch across threads, each with one BLAS thread
(``minirnn/parallel.py``, ``train --threads``).
"""

from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def blas_threads(n):
    """Within the block, every loaded BLAS library uses ``n`` threads
    (``n=None`` leaves them as they are)."""
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"blas threads: expected a positive number, got {n}")
    # Importing SciPy's BLAS first makes sure its pool is loaded, so it is limited too.
    import scipy.linalg.cython_blas  # noqa: F401

    with threadpool_limits(limits=n, user_api="blas"):
        yield
