"""Real savings of variable computation: the VC-LSTM's sparse inference kernel
(``vclstm_sparse.forward_sparse``) against the dense computation of the same masks
(``vclstm.forward``), at the row-MNIST size (batch 64, time 28, input 28,
hidden 100, float32), with the scheduler forced to m_t = 0.25, 0.5 and 1.

    python benchmarks/bench_vc_sparse.py [--repeats 50] [--blas-threads 1]

m_t is forced by ``w_x = w_h = 0`` and ``b_m = logit(m)``; with the hard threshold
and a sharp mask (lambda = 20) every example updates the first ``m * 100``
hidden units and reads the first ``m * 28`` inputs, the masks of a model trained
to ``m_target = m``. Both kernels are checked equal before they are timed.

Columns: the fraction of hidden units updated, the multiply-adds the masks need
as a fraction of the dense ones (``vclstm.macs``), the median forward time of
the dense ``vclstm.forward`` and of ``vclstm_sparse.forward_sparse``, the speed-up (the
median of per-repeat ratios; the three kernels are called in turn in every
repeat), and the plain ``lstm.forward`` for reference with the sparse kernel's
speed-up over it. ``vclstm.forward`` is the training forward: it also keeps
what ``backward`` needs; the row m = 1 shows what that and the masking cost when
nothing is skipped.
"""

import argparse
import functools
import math
import time

import numpy as np

from minirnn.cells import lstm, vclstm, vclstm_sparse
from minirnn.threads import blas_threads

SIZES = dict(batch=64, time_steps=28, input_size=28, hidden=100)
OPTIONS = {"threshold": "hard", "sharpness": 20.0}


def paired_ms(fns, repeats):
    """Median time of each function, called in turn within every repeat, and the
    median of the per-repeat ratios of the first to each: a machine whose load
    drifts during the run moves both sides of a ratio alike."""
    for fn in fns:
        fn()  # compile or load from the cache
    times = np.empty((repeats, len(fns)))
    for r in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[r, k] = time.perf_counter() - t0
    return 1e3 * np.median(times, axis=0), np.median(times[:, :1] / times, axis=0)


def forced_params(m, rng):
    I, H = SIZES["input_size"], SIZES["hidden"]
    params = vclstm.init(I, H, rng=rng)
    params["w_x"][:] = 0
    params["w_h"][:] = 0
    params["b_m"][:] = 50.0 if m >= 1 else math.log(m / (1 - m))
    return params


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    B, T, I, H = (SIZES[k] for k in ("batch", "time_steps", "input_size", "hidden"))
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    rows = []
    with blas_threads(args.blas_threads):
        plain = lstm.init(I, H, rng=rng)
        for m in (0.25, 0.5, 1.0):
            params = forced_params(m, rng)
            hs, cache = vclstm.forward(params, x, **OPTIONS)
            hs_sparse, info = vclstm_sparse.forward_sparse(params, x, **OPTIONS)
            np.testing.assert_allclose(hs_sparse, hs, atol=1e-5)
            assert info["macs"] == vclstm.macs(cache)["needed"]
            (dense_ms, sparse_ms, lstm_ms), (_, speedup, vs_lstm) = paired_ms(
                [
                    functools.partial(vclstm.forward, params, x, **OPTIONS),
                    functools.partial(vclstm_sparse.forward_sparse, params, x, **OPTIONS),
                    functools.partial(lstm.forward, plain, x),
                ],
                args.repeats,
            )
            rows.append(
                (
                    m,
                    cache["metrics"]["update_fraction"],
                    info["macs"] / info["dense_macs"],
                    dense_ms,
                    sparse_ms,
                    speedup,
                    lstm_ms,
                    lstm_ms / sparse_ms,
                )
            )
    print(
        f"batch {B}, time {T}, input {I}, hidden {H}, float32, threshold=hard, "
        f"sharpness=20, BLAS threads {args.blas_threads}; median of {args.repeats} runs"
    )
    print(
        f"{'m_t':>5} {'units':>6} {'MACs':>6} {'dense fwd ms':>12} {'sparse fwd ms':>13} "
        f"{'speed-up':>8} {'lstm fwd ms':>11} {'vs lstm':>7}"
    )
    for m, units, frac, dense_ms, sparse_ms, speedup, lstm_ms, vs_lstm in rows:
        print(
            f"{m:5.2f} {units:6.2f} {frac:6.3f} {dense_ms:12.2f} {sparse_ms:13.2f} "
            f"{speedup:7.2f}x {lstm_ms:11.2f} {vs_lstm:6.2f}x"
        )


if __name__ == "__main__":
    main()
