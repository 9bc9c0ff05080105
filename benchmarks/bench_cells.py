"""Speed of each cell at the row-MNIST size of the Qiita BN-LSTM note (batch 64, time 28,
input 28, hidden 100, float32): forward, forward+backward, the one-off compile
time, and the speed-up over a plain per-timestep NumPy loop of the same cell.

    python benchmarks/bench_cells.py [--repeats 30] [--blas-threads 1]

The NumPy loop is ``benchmarks/numpy_baseline.py``, checked equal to minirnn's
cells before it is timed. "compile" is the first call in a child process given
an empty Numba cache directory, so it is real compilation, not a cache load.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_baseline  # noqa: E402

CASES = [("rnn", {}), ("lstm", {}), ("gru", {"reset_after": False}), ("gru", {"reset_after": True})]
SIZES = dict(batch=64, time_steps=28, input_size=28, hidden=100)


def compile_seconds(name, options):
    """First forward+backward of one case in a fresh process with an empty Numba
    cache: the time to compile that cell's kernels (and the shared ones)."""
    code = (
        "from minirnn.bench import time_cell; "
        f"print(time_cell({name!r}, options={options!r}, repeats=1)['first_call_ms'])"
    )
    with tempfile.TemporaryDirectory() as empty:
        out = subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ, NUMBA_CACHE_DIR=empty),
        ).stdout
    return float(out) / 1e3


def numpy_ms(name, options, repeats):
    from minirnn.cells import get_cell

    numpy_baseline.check(name, options)
    rng = np.random.default_rng(0)
    init_opts = {k: v for k, v in options.items() if k in get_cell(name).INIT_OPTIONS}
    p = get_cell(name).init(SIZES["input_size"], SIZES["hidden"], rng=rng, **init_opts)
    x = rng.standard_normal(
        (SIZES["batch"], SIZES["time_steps"], SIZES["input_size"]), dtype=np.float32
    )
    dhs = rng.standard_normal(
        (SIZES["batch"], SIZES["time_steps"], SIZES["hidden"]), dtype=np.float32
    )
    numpy_baseline.run(name, options, p, x, dhs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        numpy_baseline.run(name, options, p, x, dhs)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="threads of the BLAS libraries (default 1; see docs/performance.md, One BLAS thread)",
    )
    args = parser.parse_args()
    from minirnn.bench import time_cell
    from minirnn.memory import keep_freed_memory
    from minirnn.subnormals import flush_subnormals
    from minirnn.threads import blas_threads

    compile_s = [compile_seconds(n, o) for n, o in CASES]
    keep_freed_memory()  # as python -m minirnn train and bench do
    # (docs/performance.md, "Freed memory kept for reuse")
    with blas_threads(args.blas_threads), flush_subnormals():
        rows = [
            (time_cell(n, options=o, repeats=args.repeats, **SIZES), numpy_ms(n, o, args.repeats))
            for n, o in CASES
        ]
    print(
        f"batch 64, time 28, input 28, hidden 100, float32, BLAS threads "
        f"{args.blas_threads}; median of {args.repeats} runs"
    )
    print(
        f"{'cell':22} {'forward ms':>10} {'fwd+bwd ms':>10} {'compile s':>9} "
        f"{'seq/s':>7} {'NumPy fwd+bwd ms':>16} {'speed-up':>8}"
    )
    for (r, base), comp in zip(rows, compile_s):
        label = r["cell"] + "".join(f" {k}={v}" for k, v in r["options"].items())
        print(
            f"{label:22} {r['forward_ms']:10.2f} {r['forward_backward_ms']:10.2f} "
            f"{comp:9.1f} {r['sequences_per_s']:7.0f} {base:16.2f} "
            f"{base / r['forward_backward_ms']:7.1f}x"
        )


if __name__ == "__main__":
    main()
