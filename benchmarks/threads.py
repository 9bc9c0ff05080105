"""Two ways to use more than one core for a training step, against one thread:

    python benchmarks/threads.py [--threads 2] [--repeats 30] [--cases lstm cnn ...]

For each model, one training step (forward, loss, backward, Adam), timed four ways
in turns within each repeat, so that a change in the machine's load moves all alike:

``whole``
    the whole batch on one thread, one BLAS thread (``model.loss_and_backward``);
``shards``
    the batch cut into ``minirnn.parallel.SHARDS`` shards computed one after the
    other on one thread: what splitting costs by itself;
``split``
    the same shards on ``--threads`` threads, one BLAS thread each
    (``minirnn.parallel.ShardedStep``, what ``python -m minirnn train`` runs);
``blas``
    the whole batch on one thread, with ``--threads`` BLAS threads: each matrix
    product split across the cores (``minirnn.threads.blas_threads``).

Models: the LSTM, GRU, RNN and BN-LSTM on row-MNIST (batch 64, time 28, input 28,
hidden 100; the BN-LSTM cannot be split, so its ``shards`` and ``split`` are the
whole batch; the RNN is split here although training runs it whole, see
``minirnn.parallel.MIN_SHARD_FLOP``), and the Qiita batch-norm CNN note's CNN
without batch norm (``cnn``) and with it (``cnn-bn``, in segments: the batch norms
on the whole batch, the rest on the shards). Subnormals are flushed and freed memory
is kept throughout, as in training. Times are medians of ``--repeats`` steps;
speed-up = ``whole`` / the column. Each way runs in turns of ``BURST`` steps in a
row, as a training loop runs them (after a few milliseconds of idleness this virtual
machine's second core comes back late, and the first step after a pause runs its
threads on one core), and the ``blas`` way's turn is followed by a pause of
``SETTLE_S``: OpenBLAS's threads keep spinning for about 0.1 s after their last
product and would take a core from the next way.
The table and the records go to ``results/threads.txt`` and ``.json`` beside this
script (``--out DIR`` elsewhere).
"""

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from minirnn.memory import keep_freed_memory
from minirnn.nn import CNNClassifier, SequenceClassifier
from minirnn.optim import Adam
from minirnn.parallel import SHARDS, ShardedStep
from minirnn.subnormals import flush_subnormals
from minirnn.threads import blas_threads

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ("lstm", "gru", "rnn", "bnlstm", "cnn", "cnn-bn")
WAYS = ("whole", "shards", "split", "blas")
BURST = 5  # steps in a row per turn, as a training loop runs them
SETTLE_S = 0.3  # after the blas turn: OpenBLAS's threads spin ~0.1 s before they sleep


def model_and_data(name, batch):
    rng = np.random.default_rng(0)
    if name.startswith("cnn"):
        model = CNNClassifier(batchnorm=name == "cnn-bn", rng=rng)
        x = rng.random((batch or 100, 1, 28, 28), dtype=np.float32)
    else:
        model = SequenceClassifier(name, 28, 100, 10, rng=rng)
        x = rng.standard_normal((batch or 64, 28, 28), dtype=np.float32)
    return model, x, rng.integers(0, 10, len(x))


def timers(name, threads, batch=None):
    """{way: a function that runs one training step and returns its milliseconds},
    and the steps to close. Each way has its own model, so Adam's state is its own."""
    made, closers = {}, []
    for way in WAYS:
        model, x, y = model_and_data(name, batch)
        adam = Adam(model.params, lr=1e-3)
        if way in ("shards", "split"):
            # min_shard_flop=0: split even the RNN, which training runs whole
            step = ShardedStep(model, threads=1 if way == "shards" else threads, min_shard_flop=0)
            closers.append(step)
        else:
            step = model.loss_and_backward
        blas = threads if way == "blas" else 1

        def run(step=step, model=model, adam=adam, x=x, y=y, blas=blas):
            with blas_threads(blas):  # set outside the timed part
                t0 = time.perf_counter()
                step(x, y)
                adam.step(model.grads)
                return 1e3 * (time.perf_counter() - t0)

        made[way] = run
    return made, closers


def take_turns(fns, repeats, warmup=1, burst=BURST, settle=SETTLE_S):
    """Median of each function's returned milliseconds over ``repeats`` calls, the
    functions called in turns of ``burst`` calls in a row, with a pause of
    ``settle`` seconds after the last one's turn (the ``blas`` way's)."""
    turns = -(-repeats // burst)
    times = np.empty((turns * burst, len(fns)))
    for r in range(-warmup, turns):
        for k, fn in enumerate(fns):
            for b in range(burst):
                ms = fn()
                if r >= 0:
                    times[r * burst + b, k] = ms
        time.sleep(settle)
    return np.median(times, axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Splitting the batch across threads against BLAS threads and one thread."
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument(
        "--batch", type=int, default=None, help="instead of 64 (recurrent) and 100 (CNN)"
    )
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args(argv)
    kept = keep_freed_memory()
    records = []
    with flush_subnormals() as flushed:
        for name in args.cases:
            fns, closers = timers(name, args.threads, args.batch)
            try:
                ms = take_turns([fns[way] for way in WAYS], args.repeats)
            finally:
                for step in closers:
                    step.close()
            records.append(
                {
                    "case": name,
                    "threads": args.threads,
                    "shards": closers[0].shards,
                    **{f"{way}_ms": float(t) for way, t in zip(WAYS, ms)},
                    **{f"{way}_speedup": float(ms[0] / t) for way, t in zip(WAYS, ms)},
                }
            )
    settings = (
        f"freed memory {'kept' if kept else 'returned'}, subnormals "
        f"{'flushed' if flushed else 'kept'}"
    )
    lines = [
        (
            f"training step (forward, loss, backward, Adam), float32; {args.threads} "
            f"threads; median of {args.repeats}; {datetime.datetime.now():%Y-%m-%d %H:%M}, "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {settings}"
        ),
        f"{'case':7} {'shards':>6} "
        + " ".join(f"{way + ' ms':>9}" for way in WAYS)
        + "   speed-up: "
        + " ".join(f"{way:>6}" for way in WAYS[1:]),
    ]
    for r in records:
        lines.append(
            f"{r['case']:7} {r['shards']:6d} "
            + " ".join(f"{r[way + '_ms']:9.2f}" for way in WAYS)
            + "             "
            + " ".join(f"{r[way + '_speedup']:5.2f}x" for way in WAYS[1:])
        )
    lines.append(
        f"whole: one thread; shards: {SHARDS} shards one after the other; split: the "
        f"shards on {args.threads} threads; blas: the whole batch with {args.threads} "
        f"BLAS threads; speed-up = whole / that"
    )
    table = "\n".join(lines)
    print(json.dumps(records, indent=1) if args.json else table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "threads.txt").write_text(table + "\n")
    (args.out / "threads.json").write_text(
        json.dumps(
            {
                "threads": args.threads,
                "repeats": args.repeats,
                "freed_memory_kept": kept,
                "subnormals_flushed": flushed,
                "records": records,
            },
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
