"""The Qiita batch-norm CNN note's CNN with batch norm for 5 epochs: the 99.0% target, over seeds.

    python benchmarks/cnn_5epochs.py [--seeds 0 1 2 3 4] [--out benchmarks/results/cnn_5epochs]

Every run is what ``python -m minirnn train --task mnist --model cnn --epochs 5
--batch-size 100`` does (pixels scaled to [0, 1], stable cost, Adam, 10% of the
training images held out), through the same ``train``:

* the note's constant learning rate 0.01, and 0.001, seed 0 only;
* learning rate 0.01 falling geometrically to 1e-4 at the last step (``--lr-end
  1e-4``), with batch norm's TensorFlow convention (the note's: momentum 0.99,
  eps 1e-3) and with PyTorch's (0.1 as the new value's weight, eps 1e-5), one
  run per seed (the seed draws the initial weights, the held-out images and the
  batch order).

Prints one row per run and the mean, lowest and highest test accuracy of each
seeded setting, and draws ``<out>/accuracy.png``: validation accuracy against the
step for the constant rates and for seed 0 of each decay, and every seed's test
accuracy beside the 99.0% line. A run
folder already finished with the same settings is read, not trained again (about
3 minutes per run on one core of the 2-core CI machine).
"""

import argparse
from pathlib import Path

import numpy as np

from minirnn.train import TrainConfig, read_metrics, train
from train_row_mnist import finished

RESULTS = Path(__file__).resolve().parent / "results"  # whatever the working directory

BASE = dict(task="mnist", model="cnn", epochs=5, batch_size=100)


def settings(seeds):
    """(run name, TrainConfig settings, group) for every run."""
    runs = [("lr0.01-constant", dict(lr=0.01), None), ("lr0.001-constant", dict(lr=0.001), None)]
    for convention in ("tensorflow", "pytorch"):
        for seed in seeds:
            runs.append(
                (
                    f"decay-{convention}-seed{seed}",
                    dict(lr=0.01, lr_end=1e-4, bn_convention=convention, seed=seed),
                    f"lr 0.01 -> 1e-4, BN {convention}",
                )
            )
    return runs


def command(options):
    flags = "".join(f" --{k.replace('_', '-')} {v}" for k, v in options.items())
    return f"python -m minirnn train --task mnist --model cnn --epochs 5 --batch-size 100{flags}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=RESULTS / "cnn_5epochs")
    args = parser.parse_args()
    out = Path(args.out)
    groups = {}
    print("| run | test accuracy | s / epoch | command |\n|---|---|---|---|")
    for name, options, group in settings(args.seeds):
        config = TrainConfig(**BASE, **options)
        run_dir = out / name
        summary = finished(run_dir, config)
        if summary is None:
            summary = train(config, run_dir, progress=False, print_fn=lambda *a: None)
        acc = summary["test_accuracy"]
        print(
            f"| {name} | {100 * acc:.2f}% | {summary['seconds_per_epoch']:.1f} | "
            f"`{command(options)}` |",
            flush=True,
        )
        if group:
            groups.setdefault(group, []).append(acc)
    print("\n| setting | seeds | mean | lowest | highest | runs at 99.0% or more |")
    print("|---|---|---|---|---|---|")
    for group, accs in groups.items():
        a = 100 * np.array(accs)
        print(
            f"| {group} | {len(a)} | {a.mean():.2f}% | {a.min():.2f}% | {a.max():.2f}% | "
            f"{int((a >= 99.0).sum())} of {len(a)} |"
        )
    print(f"\nfigure: {figure(out, groups)}")


def figure(out, groups):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, label in (
        ("lr0.01-constant", "lr 0.01 constant"),
        ("lr0.001-constant", "lr 0.001 constant"),
        ("decay-tensorflow-seed0", "lr 0.01 -> 1e-4, BN tensorflow"),
        ("decay-pytorch-seed0", "lr 0.01 -> 1e-4, BN pytorch"),
    ):
        val = [r for r in read_metrics(out / name) if r["split"] == "val"]
        left.plot([r["step"] for r in val], [100 * r["accuracy"] for r in val], "o-", label=label)
    left.set(
        xlabel="step (batch 100)",
        ylabel="validation accuracy %",
        ylim=(96, 99.5),
        title="validation accuracy after each epoch (seed 0)",
    )
    left.legend(fontsize=8)
    for k, accs in enumerate(groups.values()):
        right.plot(np.full(len(accs), k), 100 * np.array(accs), "o", alpha=0.7)
        right.plot([k - 0.2, k + 0.2], [100 * np.mean(accs)] * 2, "k-")
    right.axhline(99.0, color="gray", linestyle="--", label="target 99.0%")
    right.set(
        xticks=range(len(groups)),
        xlim=(-0.6, len(groups) - 0.4),
        ylabel="test accuracy %",
        title="test accuracy after 5 epochs, one dot a seed",
    )
    right.set_xticklabels(list(groups), fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    path = out / "accuracy.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
