"""Pixel-by-pixel MNIST (784 steps of one pixel): LSTM against BN-LSTM for the same
number of steps, the setting where Cooijmans et al. (2017) show batch-normalized
LSTMs learning faster. Validation accuracy is measured every ``--eval-every``
steps on the first ``--eval-limit`` validation images; the BN-LSTM is evaluated
with its population statistics.

    python benchmarks/pixel_mnist_bn.py [--steps 9000] [--runs lstm bnlstm]
    python benchmarks/pixel_mnist_bn.py --runs lstm-chrono lstm-rmsprop
    python benchmarks/pixel_mnist_bn.py --figure-only

Each run is the command line's training (100 units, batch 64, Adam at learning rate
0.001, gradient clipping at norm 1), the BN-LSTM with its default options. Two
remedies for the plain LSTM from the literature change one thing each:
``lstm-chrono`` draws the gate biases with the chrono initialization for 784 steps
(Tallec and Ollivier 2018), and ``lstm-rmsprop`` trains with RMSProp at 1e-3, the
paper's optimizer. A run goes to ``results/pixel_mnist_long/<run>/`` beside this
script and writes a checkpoint after every epoch (860 steps) and on Ctrl-C; started
again, the script resumes each unfinished run from its checkpoint. At about 0.25 s
(LSTM) and 0.3 s (BN-LSTM) per step on one core, 9,000 steps take 40-45 minutes
each. The figure plots validation accuracy against steps.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "pixel_mnist_long"

# run name: (legend label, the options that set it apart from the common ones)
RUNS = {
    "lstm": ("LSTM", ["--cell", "lstm"]),
    "bnlstm": ("BN-LSTM", ["--cell", "bnlstm"]),
    "lstm-chrono": ("LSTM, chrono init", ["--cell", "lstm", "--cell-option", "chrono=784"]),
    "lstm-rmsprop": ("LSTM, RMSProp", ["--cell", "lstm", "--optimizer", "rmsprop"]),
}


def run(name, args):
    """Train (or resume) one run through the command line, which checkpoints it."""
    run_dir = OUT / name
    command = [sys.executable, "-m", "minirnn", "train", "--quiet"]
    if (run_dir / "checkpoint.npz").exists():
        command += ["--resume", str(run_dir), "--epochs", "20"]
    else:
        command += RUNS[name][1] + [
            "--task",
            "pixel-mnist",
            "--lr",
            "0.001",
            "--clip",
            "1",
            "--epochs",
            "20",
            "--max-steps",
            str(args.steps),
            "--eval-every",
            str(args.eval_every),
            "--eval-limit",
            str(args.eval_limit),
            "--log-every",
            "50",
            "--out",
            str(run_dir),
        ]
    print(" ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def records(cell):
    path = OUT / cell / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def figure():
    fig, ax = plt.subplots(figsize=(7.5, 5.4))
    for k, (name, (label, _)) in enumerate(RUNS.items()):
        rows = records(name)
        val = [r for r in rows if r["split"] == "val"]
        if not val:
            continue
        test = [r for r in rows if r["split"] == "test"]
        label += (
            f" (test {100 * test[-1]['accuracy']:.1f}% at step {test[-1]['step']})"
            if test
            else f" (running, step {val[-1]['step']})"
        )
        ax.plot(
            [r["step"] for r in val],
            [100 * r["accuracy"] for r in val],
            "o-" if k < 2 else "s--",
            ms=3,
            lw=1.5 if k < 2 else 1.0,
            color=f"C{k}",
            label=label,
        )
    ax.axhline(10, color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xlabel("training step (batch 64)")
    ax.set_ylabel("validation accuracy, 1,000 images (%)")
    ax.set_title("Pixel-by-pixel MNIST: 100 units, lr 1e-3, clip 1 (Adam unless named)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=9)
    fig.tight_layout()
    path = OUT / "validation_accuracy.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=9000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-limit", type=int, default=1000)
    parser.add_argument("--runs", nargs="+", default=["lstm", "bnlstm"], choices=list(RUNS))
    parser.add_argument("--figure-only", action="store_true")
    args = parser.parse_args()
    if not args.figure_only:
        for cell in args.runs:
            run(cell, args)
    figure()


if __name__ == "__main__":
    main()
