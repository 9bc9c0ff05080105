"""Row-MNIST targets: LSTM(100), vanilla RNN(100) and GRU(100), 3 epochs each, with
the Qiita BN-LSTM note's settings (batch 64, Adam, learning rate 0.01), and the RNN again at
learning rate 0.001 with clipping, through the same
``train`` that ``python -m minirnn train`` runs.

    python benchmarks/train_row_mnist.py [--epochs 3] [--out benchmarks/results/row_mnist]
    python benchmarks/train_row_mnist.py --figure-only    # redraw from the run folders

Prints one row per cell (test accuracy, seconds per epoch, the equivalent
command; a run already finished with the same settings is not trained again) and writes
all curves into one PNG next to the run folders. ``--figure-only`` trains nothing: it
reads the metrics the run folders hold and draws the PNG and the table again.
"""

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from minirnn.plot import plot_runs
from minirnn.train import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"  # whatever the working directory

# (run name, cell, cell options, other settings): the note's settings for each
# cell, and the vanilla RNN once more with what the NaN message suggests trying
# when training is unstable, a lower learning rate and gradient clipping.
RUNS = [
    ("lstm", "lstm", {}, {}),
    ("rnn", "rnn", {}, {}),
    ("gru", "gru", {}, {}),
    ("rnn-lr0.001-clip1", "rnn", {}, {"lr": 0.001, "clip": 1.0}),
]


def finished(run_dir, config=None):
    """The summary of a run already finished with the same config, else None, so an
    interrupted suite continues where it stopped. With ``config=None`` any finished run
    in ``run_dir`` counts, whatever its settings."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        records = [
            json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        ]
    except (OSError, ValueError):
        return None
    test = [r for r in records if r["split"] == "test"]
    if (config is not None and saved != asdict(config)) or not test:
        return None
    val = [r for r in records if r["split"] == "val"]
    seconds = test[-1]["seconds"] / max(len(val), 1)
    return {"test_accuracy": test[-1]["accuracy"], "seconds_per_epoch": seconds}


def run_suite(runs, out, epochs, title, figure_only=False):
    """Train each (name, cell, cell options, settings) run for ``epochs`` on row-MNIST,
    print a markdown table and draw all curves into ``out/curves.png``. With
    ``figure_only`` nothing is trained: every run folder must hold a finished run."""
    out = Path(out)
    rows, dirs = [], []
    for name, cell, options, settings in runs:
        config = TrainConfig(cell=cell, cell_options=options, epochs=epochs, **settings)
        run_dir = out / name
        summary = finished(run_dir, None if figure_only else config)
        if summary is None and figure_only:
            raise SystemExit(f"error: {run_dir} holds no finished run to draw")
        if summary is None:
            summary = train(config, run_dir, progress=False, print_fn=lambda *a: None)
        flags = "".join(f" --cell-option {k}={str(v).lower()}" for k, v in options.items())
        flags += "".join(f" --{k} {v}" for k, v in settings.items())
        rows.append(
            (
                config.label(),
                summary["test_accuracy"],
                summary["seconds_per_epoch"],
                f"python -m minirnn train --cell {cell}{flags} --epochs {epochs}",
            )
        )
        dirs.append(run_dir)
        print(f"{name}: test accuracy {summary['test_accuracy']:.4f}", flush=True)
    png = plot_runs(dirs, out / "curves.png", title=title)
    print("\n| run | test accuracy | s / epoch | command |\n|---|---|---|---|")
    for label, acc, sec, cmd in rows:
        print(f"| {label} | {100 * acc:.2f}% | {sec:.1f} | `{cmd}` |")
    print(f"\ncurves: {png}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "row_mnist")
    parser.add_argument(
        "--figure-only",
        action="store_true",
        help="train nothing; redraw curves.png from the run folders' metrics",
    )
    args = parser.parse_args()
    run_suite(
        RUNS,
        args.out,
        args.epochs,
        f"row-MNIST, 100 units, batch 64, {args.epochs} epochs",
        figure_only=args.figure_only,
    )


if __name__ == "__main__":
    main()
