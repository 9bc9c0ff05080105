"""The NumPy baseline of bench_cells.py: the cells' readable twins (minirnn.reference).

The same cells as plain NumPy, a Python loop over timesteps, each step a few
vectorized NumPy calls, the weight gradients summed step by step as the tutorials
write them. This is the baseline ``bench_cells.py`` compares the compiled kernels
with; ``check()`` holds it equal to minirnn's results first, so the comparison is
between two computations of the same thing.

    python benchmarks/numpy_baseline.py      check every case of bench_cells.py
"""

import argparse

import numpy as np

from minirnn.reference import TWINS

CASES = [("rnn", {}), ("lstm", {}), ("gru", {"reset_after": False}), ("gru", {"reset_after": True})]


def run(name, options, p, x, dhs):
    """Forward and backward of the twin of cell ``name`` from a zero state:
    (dx, grads)."""
    twin = TWINS[name]
    _, cache = twin.forward(p, x, **options)
    return twin.backward(p, dhs, cache)


def check(name, options):
    """Assert that this baseline computes what minirnn's cell computes (float64)."""
    from minirnn.cells import get_cell

    cell = get_cell(name)
    rng = np.random.default_rng(0)
    p = cell.init(3, 5, rng=rng, dtype=np.float64, **options)
    x = rng.standard_normal((4, 6, 3))
    fwd = {k: v for k, v in options.items() if k in cell.FORWARD_OPTIONS}
    hs, cache = cell.forward(p, x, **fwd)
    dhs = rng.standard_normal(hs.shape)
    dx, grads = cell.backward(p, dhs, cache)
    dx_ref, grads_ref = run(name, options, p, x, dhs)
    np.testing.assert_allclose(dx_ref, dx, rtol=1e-9, atol=1e-12)
    for k in ("W", "U", "b"):
        np.testing.assert_allclose(grads_ref[k], grads[k], rtol=1e-9, atol=1e-12, err_msg=k)


def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    for name, options in CASES:
        check(name, options)
        print(
            name + "".join(f" {k}={v}" for k, v in options.items()),
            "equals minirnn's cell (float64)",
        )


if __name__ == "__main__":
    main()
