"""Where an LSTM training step spends its time, piece by piece, and the most each of
the remaining speed levers could save: at row-MNIST sizes (batch 64, time 28,
input 28, hidden 100) and pixel-MNIST sizes (time 784, input 1), one BLAS thread.

    python benchmarks/lstm_budget.py [--repeats 30]

Each piece is timed alone, on the arrays a real step makes, in turns with the
whole step so that a change in the machine's load moves all alike:

- the whole training step of ``SequenceClassifier("lstm", ...)`` with Adam;
- the two compiled loops, ``lstm.forward_loop`` and ``lstm.backward_loop``;
- the products outside them: ``x W`` (``input_projection``), ``dU`` (one
  (H, T*B) by (T*B, 4H) product), ``dW`` and ``db`` (``input_gradients``);
- the copies the wrappers make between the batch-major layout of the model and
  the time-major one of the loops: x, the upstream gradient dhs, the outputs hs,
  and ``U^T``;
- one (B, H) by (H, 4H) product, the step's unit of recurrent work: the first
  timestep's ``h_0 U`` is one of them, and its result is zero when the state is;
- the head, the loss and Adam (the step minus the LSTM's forward and backward).

A lever can save at most the time of what it removes: the table is that upper
bound, one lever at a time. The table goes to ``results/lstm_budget.txt`` beside
this script (``--out`` elsewhere).
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np

from minirnn.cells import lstm
from minirnn.cells._projection import batch_major, input_gradients, input_projection, time_major
from minirnn.memory import keep_freed_memory
from minirnn.nn import SequenceClassifier
from minirnn.optim import Adam
from minirnn.subnormals import flush_subnormals
from minirnn.threads import blas_threads

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {"row-MNIST": (64, 28, 28, 100), "pixel-MNIST": (64, 784, 1, 100)}


def pieces(B, T, I, H, seed=0):
    """{name: a function that runs that piece once} on one step's real arrays."""
    rng = np.random.default_rng(seed)
    model = SequenceClassifier("lstm", I, H, 10, rng=rng)
    adam = Adam(model.params, lr=1e-3)
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    y = rng.integers(0, 10, B)
    p = model.layers[0].params
    hs_bm, cache = lstm.forward(p, x)
    dhs_bm = rng.standard_normal(hs_bm.shape, dtype=np.float32)
    dhs = time_major(dhs_bm)
    xw = input_projection(x, p["W"])
    h0 = np.zeros((B, H), np.float32)
    UT = np.ascontiguousarray(p["U"].T)
    das, _, _ = lstm.backward_loop(dhs, h0, h0, cache["cs"], cache["ifog"], cache["tanh_c"], UT)
    flat_h = cache["hs"][:-1].reshape(T * B, H)
    flat_da = das.reshape(T * B, 4 * H)
    hu = np.empty((B, 4 * H), np.float32)

    def step():
        model.loss_and_backward(x, y)
        adam.step(model.grads)

    def cell_forward_backward():
        hs, c = lstm.forward(p, x)
        lstm.backward(p, dhs_bm, c, input_grad=False)

    return {
        "whole training step": step,
        "the LSTM's forward and backward": cell_forward_backward,
        "forward loop": lambda: lstm.forward_loop(xw, h0, h0, p["U"], p["b"]),
        "backward loop": lambda: lstm.backward_loop(
            dhs, h0, h0, cache["cs"], cache["ifog"], cache["tanh_c"], UT
        ),
        "x W (input projection)": lambda: input_projection(x, p["W"]),
        "dU = h^T da": lambda: flat_h.T @ flat_da,
        "dW and db": lambda: input_gradients(x, das, p["W"], False),
        "copy x to time-major": lambda: time_major(x),
        "copy dhs to time-major": lambda: time_major(dhs_bm),
        "copy hs to batch-major": lambda: batch_major(cache["hs"]),
        "copy U^T": lambda: np.ascontiguousarray(p["U"].T),
        "one h U product (e.g. h_0 U)": lambda: np.dot(h0, p["U"], out=hu),
    }


def measure(fns, repeats):
    """Median milliseconds of each function, all called in turns, 3 warm-up rounds."""
    names = list(fns)
    times = np.empty((repeats, len(names)))
    for r in range(-3, repeats):
        for k, name in enumerate(names):
            t0 = time.perf_counter()
            fns[name]()
            if r >= 0:
                times[r, k] = 1e3 * (time.perf_counter() - t0)
    return dict(zip(names, np.median(times, axis=0)))


def table(label, ms):
    step = ms["whole training step"]
    rest = step - ms["the LSTM's forward and backward"]
    lines = [f"{label}: {'piece':40} {'ms':>9} {'of the step':>12}"]
    for name, t in [*ms.items(), ("head, loss and Adam (step - LSTM)", rest)]:
        lines.append(f"{'':{len(label) + 2}}{name:40} {t:9.3f} {100 * t / step:11.1f}%")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS / "lstm_budget.txt")
    args = parser.parse_args(argv)
    keep_freed_memory()
    out = [
        f"LSTM training step, piece by piece; {datetime.datetime.now():%Y-%m-%d %H:%M}, "
        f"{os.cpu_count()} cores, one BLAS thread, subnormals flushed, median of "
        f"{args.repeats} (pixel-MNIST: of {max(3, args.repeats // 6)})"
    ]
    with blas_threads(1), flush_subnormals():
        for label, sizes in SIZES.items():
            repeats = args.repeats if sizes[1] < 100 else max(3, args.repeats // 6)
            out.append(table(label, measure(pieces(*sizes), repeats)))
    text = "\n\n".join(out)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
