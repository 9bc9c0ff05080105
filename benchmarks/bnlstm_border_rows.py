"""Why BN-LSTM's per-timestep statistics break on row-MNIST's border rows.

Three measurements, written as PNGs and one JSON under
``benchmarks/results/bnlstm_eval_gap/``:

1. ``ink_per_row.png``: how many training images have ink (a pixel > 0) in each
   of the 28 rows. The first and last rows are almost always blank.
2. ``batch_variance_per_step.png``: over many training batches of 64, the batch
   variance of x_t W, h_{t-1} U and c_t at each timestep (averaged over the
   units), as a distribution per step on a log scale, for a trained model. A
   batch whose variance is exactly 0 is drawn at the bottom edge.
3. The float32 gradient of ``b`` against the float64 one, for the same
   parameters, batch and loss, at several eps: at the default command's first
   step (initial parameters, first batch), and for a trained model.

It also splits the test accuracy of the models by whether an image has ink in
rows 25-27, with population and with batch statistics.

    python benchmarks/bnlstm_border_rows.py [--runs DIR ...] [--batches 200]

``--runs``: run folders of trained BN-LSTMs (default: the 3-epoch seed-0 runs of
``bnlstm_eval_gap.py`` for the paper's eps 1e-5 and the default options); the
first one is the model of plots 2 and 3.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from minirnn.cells import bnlstm
from minirnn.cli import set_bn_statistics
from minirnn.tasks import load_task
from minirnn.train import evaluate, load_trained_model

OUT = Path(__file__).resolve().parent / "results" / "bnlstm_eval_gap"
RUNS = [OUT / "runs" / "cooijmans-e3-s0", OUT / "runs" / "default-e3-s0"]
EPS_VALUES = (1e-5, 1e-3, 1e-2, 1e-1, 1.0)
LATE_ROWS = slice(25, 28)


def ink_per_row(images):
    """images: (N, 28, 28) -> (28,) number of images with a pixel > 0 in each row."""
    return (images > 0).any(axis=2).sum(axis=0)


def batch_variances(params, images, batches, batch_size, rng, options):
    """Per batch and timestep, the batch variance of x_t W, h_{t-1} U and c_t,
    averaged over units: {"x", "h", "c"} -> (batches, T)."""
    out = {part: [] for part in "xhc"}
    for _ in range(batches):
        idx = rng.choice(len(images), batch_size, replace=False)
        _, cache = bnlstm.forward(params, images[idx], training=True, **options)
        for part in "xhc":
            out[part].append(cache["batch_stats"][f"var_{part}"].mean(axis=1))
    return {part: np.array(v) for part, v in out.items()}


def bias_gradient(params, head, x, y, eps, dtype):
    """The gradient of the loss with respect to b (summed over the steps, as the
    optimizer receives it): the classifier's softmax cross-entropy on h_T, the
    paper's cell (statistics per step) with the given eps, computed in ``dtype``."""
    p = {k: v.astype(dtype) for k, v in params.items()}
    W_out, b_out = (head.params[k].astype(dtype) for k in ("W", "b"))
    hs, cache = bnlstm.forward(p, x.astype(dtype), eps=eps, x_stats="step")
    logits = hs[:, -1] @ W_out + b_out
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    prob[np.arange(len(y)), y] -= 1
    dhs = np.zeros_like(hs)
    dhs[:, -1] = prob @ W_out.T / len(y)
    return bnlstm.backward(p, dhs, cache, input_grad=False)[1]["b"]


def precision_table(params, head, batches):
    """eps -> max|g32 - g64| / max|g64| of the gradient of b, float32 against
    float64, the median and the largest over ``batches`` [(x, y), ...]."""
    result = {}
    for eps in EPS_VALUES:
        errors = []
        for x, y in batches:
            g64 = bias_gradient(params, head, x, y, eps, np.float64)
            g32 = bias_gradient(params, head, x, y, eps, np.float32)
            errors.append(float(np.abs(g32 - g64).max() / np.abs(g64).max()))
        result[f"{eps:g}"] = {"median": float(np.median(errors)), "max": float(np.max(errors))}
    return result


def initial_model():
    """(cell parameters, output layer) of the default command's model before training."""
    from minirnn.train import TrainConfig, build_model

    config = TrainConfig(cell="bnlstm")
    task = load_task(config.task, seed=config.seed, limit=64)
    model = build_model(config, task, np.random.default_rng(config.seed))
    return model.layers[0].params, model.layers[-1]


def split_accuracy(run_dir, late_ink):
    """Test accuracy of a run on images with and without ink in rows 25-27."""
    config, task, model = load_trained_model(run_dir)
    x, y = task.test
    out = {"options": config.cell_options}
    for which in ("population", "batch"):
        set_bn_statistics(model, which)
        model.eval()
        pred = np.concatenate(
            [model.predict(x[s : s + 1000]).argmax(axis=1) for s in range(0, len(x), 1000)]
        )
        out[which] = {
            "ink in rows 25-27": float((pred == y)[late_ink].mean()),
            "no ink there": float((pred == y)[~late_ink].mean()),
            "all": float(evaluate(model, task.test, task.kind)[1]),
        }
    out["test images with ink in rows 25-27"] = int(late_ink.sum())
    return out


def plot_ink(counts, n, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(np.arange(28), counts, color="tab:blue")
    for row in (0, 1, 26, 27):
        ax.annotate(f"{counts[row]}", (row, counts[row]), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("row of the image = timestep t - 1")
    ax.set_ylabel("training images with ink")
    ax.set_title(f"Row-MNIST: images (of {n}) with a pixel > 0 in each row")
    ax.set_xticks(range(0, 28, 3))
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_variances(var, title, path, floor=1e-12):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"x": "x_t W", "h": "h_(t-1) U", "c": "c_t"}
    fig, axes = plt.subplots(3, 1, figsize=(8.5, 8), sharex=True)
    for ax, part in zip(axes, "xhc"):
        v = var[part]
        T = v.shape[1]
        ax.boxplot(
            [np.maximum(v[:, t], floor) for t in range(T)],
            positions=range(1, T + 1),
            widths=0.6,
            whis=(0, 100),
            showfliers=False,
        )
        zero = (v == 0).mean(axis=0)
        for t in range(T):
            if zero[t] > 0:  # staggered, so neighbouring labels do not overlap
                ax.annotate(
                    f"{100 * zero[t]:.0f}%",
                    (t + 1, floor),
                    xytext=(0, 4 + 10 * (t % 2)),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                    color="tab:red",
                )
        ax.set_yscale("log")
        ax.set_ylim(floor / 3, None)
        ax.set_ylabel(f"batch variance of {names[part]}")
    axes[0].set_title(title)
    axes[-1].set_xlabel("timestep t (red: share of batches with variance exactly 0)")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=[str(r) for r in RUNS])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    task = load_task("row-mnist", seed=0)
    images, labels = task.train
    counts = ink_per_row(images)
    plot_ink(counts, len(images), out / "ink_per_row.png")
    late_ink = (task.test[0][:, LATE_ROWS] > 0).any(axis=(1, 2))
    result = {"training images": len(images), "ink per row": counts.tolist(), "splits": {}}
    runs = [Path(r) for r in args.runs if (Path(r) / "checkpoint.npz").exists()]
    for run in runs:
        result["splits"][run.name] = split_accuracy(run, late_ink)
    if runs:
        _, _, model = load_trained_model(runs[0])
        layer, head = model.layers[0], model.layers[-1]
        eps = layer.forward_options.get("eps", 1e-5)
        var = batch_variances(
            layer.params, images, args.batches, 64, rng, {"eps": eps, "x_stats": "step"}
        )
        plot_variances(
            var,
            f"{args.batches} training batches of 64, BN-LSTM of {runs[0].name}",
            out / "batch_variance_per_step.png",
        )
        result["batch variance model"] = runs[0].name
        result["batch variance median"] = {p: np.median(v, axis=0).tolist() for p, v in var.items()}
        result["batches with variance exactly 0"] = {
            p: (v == 0).mean(axis=0).tolist() for p, v in var.items()
        }
        # the first step of the default command: initial parameters, its first batch
        first = np.random.default_rng([0, 0]).permutation(len(images))[:64]
        picks = [rng.choice(len(images), 64, replace=False) for _ in range(10)]
        result["float32 vs float64 gradient of b"] = {
            "initial parameters, first training batch": precision_table(
                *initial_model(), [(images[first], labels[first])]
            ),
            f"trained parameters of {runs[0].name}, 10 batches": precision_table(
                layer.params, head, [(images[i], labels[i]) for i in picks]
            ),
        }
    (out / "border_rows.json").write_text(json.dumps(result, indent=1) + "\n")
    print(
        json.dumps(
            {
                k: v
                for k, v in result.items()
                if k not in ("batch variance median", "batches with variance exactly 0")
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
