"""Timing of the cells: forward, forward+backward, after warm-up.

Used by ``benchmarks/bench_cells.py`` (and by ``python -m minirnn bench``).
Each figure is the median of ``repeats`` runs, so a stray pause of the machine
does not move it.
"""
import time

import numpy as np

from .cells import get_cell
from .gradcheck import split_options


def _median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def time_cell(name, *, batch=64, time_steps=28, input_size=28, hidden=100,
              dtype=np.float32, repeats=20, options=None):
    """One record: the sizes, ``first_call_ms`` (compilation or loading it from
    Numba's cache, plus one run), ``forward_ms``, ``forward_backward_ms`` and
    ``sequences_per_s`` of a forward+backward."""
    cell = get_cell(name)
    init_opts, fwd_opts = split_options(cell, dict(options or {}))
    rng = np.random.default_rng(0)
    params = cell.init(input_size, hidden, rng=rng, dtype=dtype, **init_opts)
    x = rng.standard_normal((batch, time_steps, input_size)).astype(dtype)
    dhs = rng.standard_normal((batch, time_steps, hidden)).astype(dtype)

    def fwd():
        return cell.forward(params, x, **fwd_opts)

    def fwd_bwd():
        hs, cache = fwd()
        return cell.backward(params, dhs, cache)

    t0 = time.perf_counter()
    fwd_bwd()
    first = 1e3 * (time.perf_counter() - t0)
    fwd_bwd()                                        # warm caches and BLAS buffers
    forward_ms = _median_ms(fwd, repeats)
    fb_ms = _median_ms(fwd_bwd, repeats)
    return {"cell": name, "options": dict(options or {}), "batch": batch, "time": time_steps,
            "input": input_size, "hidden": hidden, "dtype": np.dtype(dtype).name,
            "first_call_ms": first, "forward_ms": forward_ms, "forward_backward_ms": fb_ms,
            "sequences_per_s": batch / (fb_ms / 1e3)}
