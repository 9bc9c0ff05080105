"""The Qiita BN-LSTM note's recurrent-dropout comparison on row-MNIST: the base LSTM(100) and
the same LSTM with recurrent dropout at keep probability 0.8 (rate 0.2) on the
candidate g ("update", Semeniuta et al.), one mask per sequence shared over the
batch, as the note draws it; batch 64, Adam, learning rate 0.01, through the
same ``train`` that ``python -m minirnn train`` runs.

    python benchmarks/dropout_row_mnist.py [--epochs 3] [--out benchmarks/results/dropout_row_mnist]

Prints one row per run (test accuracy, best validation accuracy, seconds per
epoch, the equivalent command) and draws every run's curves into one PNG next
to the run folders. To compare another variant, append a ``Run`` to ``RUNS``.

One difference from the note on purpose: its TensorFlow graph multiplies the
mask in at test time as well (it has no training flag), so its test accuracy
is that of one random mask; here the masks are scaled by 1/keep_prob in
training and evaluation uses none.
"""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from minirnn.plot import plot_runs
from minirnn.train import TrainConfig, read_metrics, train
from train_row_mnist import finished

RESULTS = Path(__file__).resolve().parent / "results"  # whatever the working directory


@dataclass
class Run:
    name: str  # the run folder under --out
    cell: str = "lstm"
    cell_options: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # other TrainConfig fields


# p = 1 - keep_prob = 0.2, one mask per sequence shared over the batch; the place
# is g ("update") and the mask kind per sequence, the defaults, left out so that
# the run's label (and the legend of the curves) stays short.
NOTE_DROPOUT = {"recurrent_dropout": 0.2, "dropout_shared": True}

RUNS = [
    Run("lstm"),
    Run("bnlstm", cell="bnlstm"),
    Run("lstm-recurrent-dropout", cell_options=NOTE_DROPOUT),
]


def command(run, epochs):
    flags = "".join(
        f" --cell-option {k}={str(v).lower() if isinstance(v, bool) else v}"
        for k, v in run.cell_options.items()
    )
    flags += "".join(f" --{k.replace('_', '-')} {v}" for k, v in run.settings.items())
    return f"python -m minirnn train --cell {run.cell}{flags} --epochs {epochs}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N examples (quick runs)")
    parser.add_argument("--out", type=Path, default=RESULTS / "dropout_row_mnist")
    args = parser.parse_args()
    out = Path(args.out)
    rows, dirs = [], []
    for run in RUNS:
        # the note's settings: 100 units, batch 64, learning rate 0.01 (Adam is our choice)
        config = TrainConfig(
            task="row-mnist",
            cell=run.cell,
            cell_options=run.cell_options,
            hidden=100,
            batch_size=64,
            optimizer="adam",
            lr=0.01,
            epochs=args.epochs,
            seed=args.seed,
            limit=args.limit,
            **run.settings,
        )
        run_dir = out / run.name
        summary = finished(run_dir, config)  # a finished run is not trained again
        if summary is None:
            summary = train(config, run_dir, progress=False, print_fn=lambda *a: None)
        val = [r["accuracy"] for r in read_metrics(run_dir) if r["split"] == "val"]
        rows.append(
            (
                run.name,
                summary["test_accuracy"],
                max(val),
                val[-1],
                summary["seconds_per_epoch"],
                command(run, args.epochs),
            )
        )
        dirs.append(run_dir)
        print(
            f"{run.name}: test accuracy {summary['test_accuracy']:.4f} "
            f"({summary['seconds_per_epoch']:.1f} s / epoch)",
            flush=True,
        )
    png = plot_runs(
        dirs,
        out / "curves.png",
        title=f"row-MNIST, 100 units, batch 64, Adam lr 0.01, {args.epochs} epochs; "
        f"recurrent dropout: keep 0.8 on g, one mask per sequence and batch",
    )
    print(
        "\n| run | test accuracy | best val. accuracy | last val. accuracy | s / epoch | command |"
    )
    print("|---|---|---|---|---|---|")
    for name, acc, best, last, sec, cmd in rows:
        print(
            f"| {name} | {100 * acc:.2f}% | {100 * best:.2f}% | {100 * last:.2f}% | {sec:.1f} "
            f"| `{cmd}` |"
        )
    print(f"\ncurves: {png}")


if __name__ == "__main__":
    main()
