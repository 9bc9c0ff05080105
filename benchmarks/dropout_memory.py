"""Why "recurrent dropout without memory loss": dropout on the LSTM's cell c
against dropout on its candidate g (and on h_{t-1}), on a task that needs memory.

    OPENBLAS_NUM_THREADS=1 python benchmarks/dropout_memory.py [--steps 1000] [--seeds 5]

Two parts, one PNG (``benchmarks/results/dropout_memory/memory.png``) and the
numbers printed:

1. The cell path, exactly. With U = 0 only the cell links the steps, and
   dL/dc_0 = dL/dc_t * prod_k f_k (tutorial 02's carousel); under "cell"
   dropout every step multiplies in its mask as well, prod_k f_k m_k, while
   "update" and "hidden" dropout leave the path alone. ``lstm.backward`` with a
   gradient on c_t only (``dstate``) measures, per unit, the ratio of that path
   in training to its value in evaluation: per-step masks on c leave a fraction
   (1-p)^t of the units any memory of c_0 and scale the survivors by
   (1-p)^-t; one mask per sequence cuts a fraction p of the units for good and
   scales the rest by (1-p)^-t.
2. Training. "Remember the first symbol": one of K = 4 symbols (one-hot, with a
   start marker) at t = 0, zeros for the next T - 1 = 49 steps, the class read
   from h_T. LSTM(32), batch 64, Adam 0.01, ``--steps`` steps, for no dropout
   and p = 0.2 on g, on h_{t-1} and on c (masks per example; per sequence, and
   per step for g and c), ``--seeds`` seeds each. Printed: the step at which
   the running training accuracy (mean of 20 batches) passes 95% ("-": never),
   the evaluation accuracy (no masks) of each seed and their mean, the
   accuracy in training mode (masks drawn), and |c_T| in evaluation and in
   training mode (the mean norm over the test sequences, mean of the seeds).
   About 2 minutes of one core.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from minirnn.cells import lstm
from minirnn.nn import SequenceClassifier
from minirnn.optim import Adam
from minirnn.threads import blas_threads

RESULTS = Path(__file__).resolve().parent / "results"  # whatever the working directory
P = 0.2
K, T, HIDDEN, BATCH = 4, 50, 32, 64
VARIANTS = [  # (label, cell options)
    ("no dropout", {}),
    ("g, per sequence", {"dropout_where": "update"}),
    ("g, per step", {"dropout_where": "update", "dropout_per": "step"}),
    ("h, per sequence", {"dropout_where": "hidden"}),
    ("c, per sequence", {"dropout_where": "cell"}),
    ("c, per step", {"dropout_where": "cell", "dropout_per": "step"}),
]


def with_rate(options):
    return dict(options, recurrent_dropout=P) if options else {}


# ---------------------------------------------------------------- part 1


def cell_path(options, t_max=T, H=100, B=16, seed=0):
    """Per unit, (dL/dc_0 in training) / (dL/dc_0 in evaluation) for a loss on
    c_t only, t = 1..t_max, in an LSTM with U = 0. Returns (t_max, B*H)."""
    rng = np.random.default_rng(seed)
    params = lstm.init(3, H, rng=rng, dtype=np.float64)
    params["U"][:] = 0.0  # only the cell links the steps
    x = rng.standard_normal((B, t_max, 3))
    state = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    dc = rng.standard_normal((B, H))
    ratios = []
    for t in range(1, t_max + 1):
        grads = []
        for training in (True, False):
            hs, cache = lstm.forward(
                params,
                x[:, :t],
                state,
                training=training,
                rng=np.random.default_rng(seed + 1),
                **options,
            )
            _, g = lstm.backward(params, np.zeros_like(hs), cache, dstate=(np.zeros((B, H)), dc))
            grads.append(g["c0"])
        ratios.append((grads[0] / grads[1]).ravel())
    return np.array(ratios)


# ---------------------------------------------------------------- part 2


def memory_batch(rng, n):
    """x: (n, T, K+1): the symbol and a start marker at t = 0, zeros after; y: (n,)."""
    y = rng.integers(0, K, n)
    x = np.zeros((n, T, K + 1), np.float32)
    x[np.arange(n), 0, y] = 1
    x[:, 0, K] = 1
    return x, y


def train_variant(options, steps, seed, x_test, y_test):
    model = SequenceClassifier("lstm", K + 1, HIDDEN, K, rng=np.random.default_rng(seed), **options)
    adam = Adam(model.params, lr=0.01)
    data = np.random.default_rng(1000 + seed)
    accuracy, solved = [], None
    for step in range(steps):
        x, y = memory_batch(data, BATCH)
        _, logits = model.loss_and_backward(x, y)
        adam.step(model.grads)
        accuracy.append(float((logits.argmax(1) == y).mean()))
        if solved is None and step >= 19 and np.mean(accuracy[-20:]) > 0.95:
            solved = step + 1
    cell = model.layers[0]
    result = {"accuracy_curve": accuracy, "solved": solved}
    for mode in ("eval", "train"):
        getattr(model, mode)()
        result[f"{mode}_accuracy"] = float((model.predict(x_test).argmax(1) == y_test).mean())
        result[f"{mode}_c_norm"] = np.linalg.norm(cell.cache["cs"][1:], axis=2).mean(axis=1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "dropout_memory")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    print(
        f"1. The cell path from c_0 to c_t (U = 0, H = 100, 16 examples), p = {P}: "
        f"per unit, training / evaluation"
    )
    ts = np.arange(1, T + 1)
    shown = (1, 10, 28, 50)
    paths = {}
    cols = lambda values, fmt: " ".join(f"{v:{fmt}}" for v in values)
    print(f"{'':18} {'units still open':>43}    {'median scale of the open ones':>39}")
    print(
        f"{'masks':18} {cols([f't={t}' for t in shown], '>10'):>44}   "
        f"{cols([f't={t}' for t in shown], '>9'):>40}"
    )
    for label, options in VARIANTS[1:]:
        r = cell_path(with_rate(options))
        alive = (r != 0).mean(axis=1)
        scale = np.array([np.median(row[row != 0]) if (row != 0).any() else np.nan for row in r])
        paths[label] = (alive, scale)
        print(
            f"{label:18} {cols(alive[np.array(shown) - 1], '10.4g'):>44}   "
            f"{cols(scale[np.array(shown) - 1], '9.4g'):>40}"
        )
    print(
        f"{'(1-p)^t, (1-p)^-t':18} {cols([(1 - P) ** t for t in shown], '10.4g'):>44}   "
        f"{cols([(1 - P) ** -t for t in shown], '9.4g'):>40}"
    )

    print(
        f"\n2. Remember the first of {T} steps: LSTM({HIDDEN}), batch {BATCH}, Adam 0.01, "
        f"{args.steps} steps, seeds 0..{args.seeds - 1}, p = {P}, masks per example"
    )
    x_test, y_test = memory_batch(np.random.default_rng(999), 1000)
    results = {}
    with blas_threads(1):
        for label, options in VARIANTS:
            results[label] = [
                train_variant(with_rate(options), args.steps, seed, x_test, y_test)
                for seed in range(args.seeds)
            ]
    print(
        f"{'dropout':18} {'solved at step':>24} {'evaluation accuracy of each seed':>34} "
        f"{'mean':>5} {'train mode':>10} {'|c_T| eval':>10} {'|c_T| train':>11}"
    )
    for label, runs in results.items():
        solved = ",".join("-" if r["solved"] is None else str(r["solved"]) for r in runs)
        each = " ".join(f"{r['eval_accuracy']:.2f}" for r in runs)
        mean = {key: np.mean([r[key] for r in runs]) for key in ("eval_accuracy", "train_accuracy")}
        c_eval = np.mean([r["eval_c_norm"][-1] for r in runs])
        c_train = np.mean([r["train_c_norm"][-1] for r in runs])
        print(
            f"{label:18} {solved:>24} {each:>34} {mean['eval_accuracy']:5.3f} "
            f"{mean['train_accuracy']:10.3f} {c_eval:10.3g} {c_train:11.3g}"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    (a, b), (c, d) = axes
    for k, (label, (alive, scale)) in enumerate(paths.items()):
        a.plot(ts, alive, color=f"C{k + 1}", label=label)
        b.plot(ts, scale, color=f"C{k + 1}", label=label)
    a.plot(ts, (1 - P) ** ts, "k--", lw=1, label="$(1-p)^t$")
    b.plot(ts, (1 - P) ** -ts, "k--", lw=1, label="$(1-p)^{-t}$")
    a.set(
        yscale="log",
        xlabel="t",
        ylabel="fraction of units",
        title="units whose cell path from $c_0$ to $c_t$ is still open\n"
        "(U = 0; g and h: all of them, the lines coincide)",
    )
    b.set(
        yscale="log",
        xlabel="t",
        ylabel="training / evaluation (median over units)",
        title="$\\partial c_t / \\partial c_0$ on the open paths, training over evaluation\n"
        "(g and h: 1; both kinds of c masks: $(1-p)^{-t}$)",
    )
    for k, (label, runs) in enumerate(results.items()):
        curve = np.mean([r["accuracy_curve"] for r in runs], axis=0)
        smooth = np.convolve(curve, np.ones(20) / 20, mode="valid")
        c.plot(np.arange(20, len(curve) + 1), smooth, color=f"C{k}", label=label)
        d.plot(ts, runs[0]["train_c_norm"], color=f"C{k}", label=f"{label}, training")
        d.plot(ts, runs[0]["eval_c_norm"], "--", color=f"C{k}", lw=1)
    c.set(
        xlabel="step",
        ylabel="training accuracy (running mean of 20, mean of seeds)",
        title=f"remember the first of {T} steps, p = {P}",
    )
    d.set(
        yscale="log",
        xlabel="t",
        ylabel="mean $|c_t|$",
        title="trained models (seed 0): training mode (solid), evaluation (dashed)",
    )
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Recurrent dropout on the LSTM, p = {P}: on c the memory is cut or "
        f"rescaled at every step, on g it is not"
    )
    fig.tight_layout()
    png = out / "memory.png"
    fig.savefig(png, dpi=110)
    print(f"\nfigure: {png}  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
