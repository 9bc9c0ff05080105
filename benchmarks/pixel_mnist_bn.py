"""Pixel-by-pixel MNIST (784 steps of one pixel), LSTM against BN-LSTM for the same
number of steps: the setting where Cooijmans et al. (2016) show batch-normalized
LSTMs learning much faster. Validation accuracy is measured every ``--eval-every``
steps on the first ``--eval-limit`` validation images; BN-LSTM is evaluated with
its population statistics, as in the paper.

    python benchmarks/pixel_mnist_bn.py [--steps 700] [--runs lstm bnlstm] [--parallel]

Settings: 100 units, batch 64, Adam at learning rate 0.001, gradient clipping at
norm 1 (the paper used RMSProp at 1e-3 with clipping at 1). Each run goes to
``benchmarks/results/pixel_mnist/<cell>/``; the figure plots validation
accuracy against steps, with the test accuracy at the end in the legend.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "pixel_mnist"  # whatever the working directory
# The first ~100 pixels of every image are 0, so for ~100 steps every example of a
# batch is in the same state and each batch norm sees zero variance, where its
# derivative is gamma / sqrt(eps). With eps = 1e-5 that compounds over the blank
# steps and the first gradient overflowed float32 (NaN at step 1); so did 1e-3
# (in float64 the gradient of b reached 5e28). 1e-2 gives gradients of normal size.
CELL_OPTIONS = {"bnlstm": {"eps": 1e-2}}


def run(cell, args):
    from minirnn.train import TrainConfig, train
    config = TrainConfig(task="pixel-mnist", cell=cell, cell_options=CELL_OPTIONS.get(cell, {}),
                         hidden=100, batch_size=64, lr=1e-3,
                         clip=1.0, epochs=100, max_steps=args.steps, eval_every=args.eval_every,
                         eval_limit=args.eval_limit, log_every=20)
    summary = train(config, OUT / cell, progress=False)
    print(json.dumps({"cell": cell, **{k: summary[k] for k in (
        "step", "test_accuracy", "train_seconds")}}), flush=True)


def figure():
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, cell in enumerate(("lstm", "bnlstm")):
        path = OUT / cell / "metrics.jsonl"
        if not path.exists():
            continue
        records = [json.loads(line) for line in path.read_text().splitlines()]
        val = [r for r in records if r["split"] == "val"]
        test = [r for r in records if r["split"] == "test"]
        label = cell + (f" (test {100 * test[-1]['accuracy']:.1f}%)" if test else "")
        ax.plot([r["step"] for r in val], [r["accuracy"] for r in val], "o-", color=f"C{k}",
                label=label)
    ax.set_xlabel("step (batch 64)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("pixel-by-pixel MNIST, 100 units, Adam 1e-3, clip 1")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "validation_accuracy.png", dpi=100)
    print(f"wrote {OUT / 'validation_accuracy.png'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-limit", type=int, default=1000)
    parser.add_argument("--runs", nargs="+", default=["lstm", "bnlstm"])
    parser.add_argument("--parallel", action="store_true", help="one process per run")
    parser.add_argument("--figure-only", action="store_true")
    args = parser.parse_args()
    if not args.figure_only:
        if args.parallel:
            procs = [subprocess.Popen([sys.executable, __file__, "--runs", cell, "--steps",
                                       str(args.steps), "--eval-every", str(args.eval_every),
                                       "--eval-limit", str(args.eval_limit)])
                     for cell in args.runs]
            for p in procs:
                p.wait()
        else:
            for cell in args.runs:
                run(cell, args)
    figure()


if __name__ == "__main__":
    main()
