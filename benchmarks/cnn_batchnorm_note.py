"""The Qiita batch-norm CNN note's experiment: a small CNN on MNIST with Adam at learning
rate 0.01, with and without batch norm.

    python benchmarks/cnn_batchnorm_note.py [--epochs 1] [--limit N] [--settings a,b,...]

The note (a TensorFlow blog post) finds that at learning rate 0.01 (Adam, batch
100) the cost falls steadily with batch norm and does not fall without it, and that
without batch norm learning rate 0.001 works. Three details of its code decide
that outcome and are kept here unless a setting says otherwise:

* raw pixel values 0..255, never divided by 255 (``scale``: False);
* Glorot-uniform weights with zero biases (TensorFlow's defaults; ``CNNClassifier``'s);
* the clipped cost ``-mean(sum(t * log(clip(softmax, 1e-10, 1))))`` (``cost``:
  "clipped"), whose gradient is zero for every example whose correct class has a
  probability below 1e-10.

Data: the first 54,000 MNIST training images train, the last 6,000 (10%, as in
the note's ``test_size=0.1``) validate, the official 10,000 test. ``--limit N``
trains on the first N training images only (validation and test stay whole).

Each setting trains from the same initial weights and the same batch order (one
run per ``--seeds`` entry), prints its test accuracy and seconds per epoch (training
steps only; CPU seconds too, which stay honest on a busy machine), and writes
``<out>/cnn_batchnorm_note/<setting>-seed<k>.json``. The figure
``<out>/cnn_batchnorm_note.png`` (training cost against steps, one line per setting)
and ``<out>/cnn_batchnorm_note.json`` are rebuilt from every setting's file present,
so settings can run in separate processes (``--settings``) and be drawn together
(``--plot-only``).
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from minirnn.data import load_mnist
from minirnn.nn import CNNClassifier
from minirnn.nn.cnn import CLIP_LOW, softmax_forward
from minirnn.optim import Adam
from minirnn.threads import blas_threads

RESULTS = Path(__file__).resolve().parent / "results"  # whatever the working directory
TRAIN, VALIDATION, BATCH, EVAL_BATCH = 54000, 6000, 100, 1000

# name -> (batch norm, learning rate, pixels / 255, cost)
SETTINGS = {
    "bn-lr0.01": (True, 0.01, False, "clipped"),
    "nobn-lr0.01": (False, 0.01, False, "clipped"),
    "nobn-lr0.001": (False, 0.001, False, "clipped"),
    "bn-lr0.01-scaled": (True, 0.01, True, "clipped"),
    "nobn-lr0.01-scaled": (False, 0.01, True, "clipped"),
    "nobn-lr0.01-stable": (False, 0.01, False, "stable"),
    "bn-lr0.01-stable": (True, 0.01, False, "stable"),
}


def describe(name):
    bn, lr, scaled, cost = SETTINGS[name]
    return (
        f"{'BN' if bn else 'no BN'}, lr {lr:g}, "
        f"{'pixels/255' if scaled else 'raw pixels'}, {cost} cost"
    )


def batches(x, y, scaled):
    """Yield (images (n, 1, 28, 28) float32, labels) in chunks of EVAL_BATCH."""
    for start in range(0, len(x), EVAL_BATCH):
        xb = x[start : start + EVAL_BATCH, None].astype(np.float32)
        yield (xb / 255 if scaled else xb), y[start : start + EVAL_BATCH]


def evaluate(model, x, y, scaled):
    """Over a split, in evaluation mode: the mean cost (the model's own), the
    accuracy, the fraction of examples whose correct class has a probability below
    the clip (1e-10: zero gradient under the clipped cost), and each digit's recall."""
    model.eval()
    total, hits, clipped = 0.0, np.zeros(len(y), bool), 0
    for start, (xb, yb) in zip(range(0, len(x), EVAL_BATCH), batches(x, y, scaled)):
        logits = model.predict(xb)
        total += float(model.cost_forward(logits, yb)[0]) * len(xb)
        hits[start : start + len(xb)] = logits.argmax(axis=1) == yb
        p_true = softmax_forward(logits.astype(np.float64))[0][np.arange(len(yb)), yb]
        clipped += int((p_true < CLIP_LOW).sum())
    model.train()
    recall = [float(hits[y == d].mean()) for d in range(10)]
    return {
        "cost": total / len(x),
        "accuracy": float(hits.mean()),
        "clipped": clipped / len(x),
        "recall": recall,
    }


def run(name, splits, epochs, seed, print_fn=print):
    batchnorm, lr, scaled, cost = SETTINGS[name]
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits
    model = CNNClassifier(batchnorm=batchnorm, rng=np.random.default_rng(seed), cost=cost)
    optimizer = Adam(model.params, lr=lr)
    n = len(x_train)
    steps_per_epoch = math.ceil(n / BATCH)
    costs, val, epoch_seconds, epoch_cpu = [], [], [], []
    diverged = None
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        t0, c0 = time.perf_counter(), time.process_time()
        for b in range(steps_per_epoch):
            idx = order[b * BATCH : (b + 1) * BATCH]
            xb = x_train[idx, None].astype(np.float32)
            if scaled:
                xb /= 255
            loss, _ = model.loss_and_backward(xb, y_train[idx])
            costs.append(float(loss))
            if not np.isfinite(loss):
                diverged = f"cost {loss} at step {len(costs)}"
                break
            optimizer.step(model.grads)
        epoch_seconds.append(time.perf_counter() - t0)
        epoch_cpu.append(time.process_time() - c0)
        if diverged:
            print_fn(f"  {name}: stopped, {diverged}")
            break
        v = evaluate(model, x_val, y_val, scaled)
        val.append({"step": len(costs), **v})
        print_fn(
            f"  {name} epoch {epoch + 1}: validation cost {v['cost']:.4f}, accuracy "
            f"{v['accuracy']:.4f}, {100 * v['clipped']:.1f}% clipped; last-100-step "
            f"training cost {np.mean(costs[-100:]):.4f} ({epoch_seconds[-1]:.1f} s)",
            flush=True,
        )
    test = evaluate(model, x_test, y_test, scaled)
    return {
        "name": name,
        "label": describe(name),
        "batchnorm": batchnorm,
        "lr": lr,
        "scaled": scaled,
        "cost": cost,
        "epochs": epochs,
        "train_images": n,
        "batch_size": BATCH,
        "seed": seed,
        "train_cost": costs,
        "val": val,
        "test_cost": test["cost"],
        "test_accuracy": test["accuracy"],
        "test_clipped": test["clipped"],
        "test_recall": test["recall"],
        "diverged": diverged,
        "seconds_per_epoch": float(np.mean(epoch_seconds)),
        "cpu_seconds_per_epoch": float(np.mean(epoch_cpu)),
    }


def moving_mean(values, window):
    values = np.asarray(values, dtype=float)
    if len(values) < window:
        return np.arange(1, len(values) + 1), values
    kernel = np.ones(window) / window
    return np.arange(window, len(values) + 1), np.convolve(values, kernel, mode="valid")


def plot(results, path, window=20):
    """One line per setting: its run with the smallest seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = {}
    for r in results:
        first.setdefault(r["name"], r)
    fig, ax = plt.subplots(figsize=(10, 6.5))
    for k, r in enumerate(first.values()):
        color = f"C{k % 10}"
        steps = np.arange(1, len(r["train_cost"]) + 1)
        ax.plot(steps, r["train_cost"], color=color, lw=0.5, alpha=0.25)
        s, m = moving_mean(r["train_cost"], window)
        ax.plot(
            s,
            m,
            color=color,
            lw=1.6,
            ls="-" if not r["scaled"] else "--",
            label=f"{r['label']}: test acc {100 * r['test_accuracy']:.1f}%"
            + (f" (seed {r['seed']})" if r["seed"] else ""),
        )
    ax.axhline(-np.log(1e-10), color="grey", lw=0.8, ls=":")
    ax.text(
        1,
        -np.log(1e-10) * 1.08,
        "-log(1e-10) = 23.0: every example clipped",
        color="grey",
        fontsize=8,
    )
    ax.set_yscale("log")
    ax.set_xlabel(f"step (batch {BATCH}; {TRAIN // BATCH} steps per epoch)")
    ax.set_ylabel(f"training cost (faint: per step; bold: mean of {window})")
    ax.set_title(
        "The Qiita batch-norm CNN note's experiment: a small CNN on MNIST, Adam, "
        "with and without batch norm"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def result_path(out, name, seed):
    return out / "cnn_batchnorm_note" / f"{name}-seed{seed}.json"


def collect(out):
    """Every saved result, in the order of SETTINGS, then by seed."""
    results = []
    for name in SETTINGS:
        found = [
            json.loads(p.read_text())
            for p in (out / "cnn_batchnorm_note").glob(f"{name}-seed*.json")
        ]
        results += sorted(found, key=lambda r: r["seed"])
    return results


def summarize(results, out, print_fn=print):
    print_fn(
        "\n| setting | seed | test accuracy | test cost | test examples clipped "
        "| digits never recognised | training cost, last 100 steps | s / epoch (CPU s) "
        "| epochs | training images |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for r in results:
        dead = [d for d, v in enumerate(r["test_recall"]) if v < 0.01]
        print_fn(
            f"| {r['label']} | {r['seed']} | {100 * r['test_accuracy']:.2f}% | "
            f"{r['test_cost']:.3f} | {100 * r['test_clipped']:.1f}% | "
            f"{', '.join(map(str, dead)) or '-'} | {np.mean(r['train_cost'][-100:]):.3f} | "
            f"{r['seconds_per_epoch']:.0f} "
            f"({r.get('cpu_seconds_per_epoch', float('nan')):.0f}) "
            f"| {r['epochs']} | {r['train_images']} |"
        )
    summary = [
        {k: v for k, v in r.items() if k != "train_cost"}
        | {"train_cost_every_step": r["train_cost"]}
        for r in results
    ]
    (out / "cnn_batchnorm_note.json").write_text(json.dumps(summary) + "\n")
    png = plot(results, out / "cnn_batchnorm_note.png")
    print_fn(f"\nfigure: {png}\nnumbers: {out / 'cnn_batchnorm_note.json'}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings:\n" + "\n".join(f"  {k:20s} {describe(k)}" for k in SETTINGS),
    )
    parser.add_argument("--epochs", type=int, default=5, help="the note trains 5 (default)")
    parser.add_argument(
        "--limit", type=int, default=None, help="train on the first N training images only"
    )
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help="comma-separated names (default: all)"
    )
    parser.add_argument(
        "--seeds",
        default="0",
        help="comma-separated seeds of the initial weights and batch order "
        "(default 0); the figure shows the smallest of each setting",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="redraw the figure and JSON from the saved settings",
    )
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "cnn_batchnorm_note").mkdir(parents=True, exist_ok=True)
    names = [s for s in args.settings.split(",") if s]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; choose from {list(SETTINGS)}")
    if not args.plot_only:
        (x, y), (x_test, y_test) = load_mnist()
        y, y_test = y.astype(np.int64), y_test.astype(np.int64)
        x_train, y_train = x[:TRAIN], y[:TRAIN]
        if args.limit:
            x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        splits = (
            (x_train, y_train),
            (x[TRAIN : TRAIN + VALIDATION], y[TRAIN : TRAIN + VALIDATION]),
            (x_test, y_test),
        )
        with blas_threads(args.blas_threads):
            for name, seed in [(n, int(k)) for n in names for k in args.seeds.split(",")]:
                print(f"{name} (seed {seed}): {describe(name)}", flush=True)
                result = run(name, splits, args.epochs, seed)
                print(
                    f"{name}: test accuracy {100 * result['test_accuracy']:.2f}%, "
                    f"test cost {result['test_cost']:.4f}, "
                    f"{100 * result['test_clipped']:.1f}% clipped, recall per digit "
                    f"{' '.join(f'{r:.2f}' for r in result['test_recall'])}, "
                    f"{result['seconds_per_epoch']:.1f} s per epoch "
                    f"({result['cpu_seconds_per_epoch']:.1f} s of CPU)",
                    flush=True,
                )
                result_path(out, name, seed).write_text(json.dumps(result) + "\n")
    summarize(collect(out), out)


if __name__ == "__main__":
    main()
