"""minirnn against PyTorch on the CPU: one training step of each recurrent cell with a
linear head, softmax cross-entropy and Adam, on the same shapes, dtype and thread
count, timed alternately in the same run so both see the same machine.

    python benchmarks/compare_torch.py [--threads 1] [--repeats 30] [--pixel-mnist]
                                       [--return-freed-memory] [--keep-subnormals]

PyTorch is optional (never a dependency of minirnn): without it this script says
so and exits. Its GRU is the reset_after=True convention, so minirnn's GRU is
timed in that convention here. Both run in one process, so both get the
allocator setting of ``minirnn/memory.py`` (freed memory kept for reuse, as
``python -m minirnn train`` does) unless ``--return-freed-memory``, and both
flush subnormal floats to zero (``minirnn/subnormals.py``; PyTorch's
``torch.set_flush_denormal(True)``) unless ``--keep-subnormals``.
"""
import argparse
import sys
import time

import numpy as np

CASES = [("rnn", {}, "RNN"), ("lstm", {}, "LSTM"), ("gru", {"reset_after": True}, "GRU")]


def torch_step(torch, kind, batch, steps, inputs, hidden, threads):
    torch.manual_seed(0)
    rnn = getattr(torch.nn, kind)(inputs, hidden, batch_first=True)
    head = torch.nn.Linear(hidden, 10)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-3)
    x = torch.randn(batch, steps, inputs)
    y = torch.randint(0, 10, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        loss = loss_fn(head(out[:, -1]), y)
        loss.backward()
        opt.step()
    return step


def minirnn_step(name, options, batch, steps, inputs, hidden):
    from minirnn.nn import SequenceClassifier
    from minirnn.optim import Adam
    rng = np.random.default_rng(0)
    model = SequenceClassifier(name, inputs, hidden, 10, rng=rng, **options)
    adam = Adam(model.params, lr=1e-3)
    x = rng.standard_normal((batch, steps, inputs), dtype=np.float32)
    y = rng.integers(0, 10, batch)

    def step():
        model.loss_and_backward(x, y)
        adam.step(model.grads)
    return step


def alternate(a, b, repeats):
    """Median times (ms) of a and b, run in turns after a warm-up of each."""
    for _ in range(3):
        a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, acc in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ta)), 1e3 * float(np.median(tb))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch's intra-op threads and minirnn's BLAS threads")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--pixel-mnist", action="store_true", help="784 steps of 1 input")
    parser.add_argument("--return-freed-memory", action="store_true",
                        help="leave malloc's default (see minirnn/memory.py)")
    parser.add_argument("--keep-subnormals", action="store_true",
                        help="do not flush subnormal floats to zero (minirnn/subnormals.py)")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed; `pip install torch` to compare (it is optional).")
        return 0
    from minirnn.memory import keep_freed_memory
    from minirnn.threads import blas_threads
    from minirnn.subnormals import flush_subnormals
    kept = False if args.return_freed_memory else keep_freed_memory()
    steps, inputs = (784, 1) if args.pixel_mnist else (28, 28)
    torch.set_num_threads(args.threads)
    with blas_threads(args.threads), flush_subnormals(not args.keep_subnormals) as flushed:
        torch.set_flush_denormal(flushed)       # the same two bits, for PyTorch's threads
        print(f"training step (cell + linear head + cross-entropy + Adam), batch "
              f"{args.batch}, time {steps}, input {inputs}, hidden {args.hidden}, float32, "
              f"{args.threads} thread(s), median of {args.repeats}; torch "
              f"{torch.__version__}; freed memory {'kept' if kept else 'returned to the OS'}; "
              f"subnormals {'flushed' if flushed else 'kept'}")
        print(f"{'cell':6} {'minirnn ms':>10} {'torch ms':>9} {'ratio':>6}")
        for name, options, kind in CASES:
            ours = minirnn_step(name, options, args.batch, steps, inputs, args.hidden)
            theirs = torch_step(torch, kind, args.batch, steps, inputs, args.hidden, args.threads)
            t_ours, t_theirs = alternate(ours, theirs, args.repeats)
            print(f"{name:6} {t_ours:10.2f} {t_theirs:9.2f} {t_ours / t_theirs:5.2f}x")
    print("ratio = minirnn time / PyTorch time (below 1: minirnn is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
