"""The Qiita BN-LSTM note's comparison with normalization: LSTM, BN-LSTM, LN-LSTM (paper and
TensorFlow flavours) on row-MNIST, 100 units, batch 64, Adam at learning rate
0.01, through the same ``train`` as ``python -m minirnn train``.

    python benchmarks/norm_row_mnist.py [--epochs 3] [--out benchmarks/results/norm_row_mnist]
"""

import argparse
from pathlib import Path

from train_row_mnist import run_suite

RESULTS = Path(__file__).resolve().parent / "results"  # whatever the working directory

# eps is given explicitly for the layer-normalized runs: see lnlstm.py on why 1e-2.
RUNS = [
    ("lstm", "lstm", {}, {}),
    ("bnlstm", "bnlstm", {}, {}),
    ("lnlstm-paper", "lnlstm", {"flavour": "paper", "eps": 0.01}, {}),
    ("lnlstm-tensorflow", "lnlstm", {"flavour": "tensorflow", "eps": 0.01}, {}),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "norm_row_mnist")
    args = parser.parse_args()
    run_suite(
        RUNS,
        args.out,
        args.epochs,
        f"row-MNIST, 100 units, batch 64, Adam lr 0.01, {args.epochs} epochs",
    )


if __name__ == "__main__":
    main()
