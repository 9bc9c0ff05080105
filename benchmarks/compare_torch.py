"""minirnn against PyTorch on the CPU: one training step (forward, loss, backward, Adam)
of the same model on the same shapes and dtype, the two libraries timed in turns
within one run, so that a change in the machine's load moves both alike.

    python benchmarks/compare_torch.py [--repeats 30] [--cases lstm cnn ...] [--json]
    python benchmarks/compare_torch.py --torch-defaults [--repeats 30] ...
    python benchmarks/compare_torch.py --runs 3 [--torch-defaults] ...

Two modes:

one thread each (the default)
    Both libraries in this process, one thread each, and both under minirnn's
    process settings (freed memory kept, ``minirnn/memory.py``; subnormals flushed
    to zero, ``minirnn/subnormals.py`` and ``torch.set_flush_denormal(True)``)
    unless ``--return-freed-memory`` / ``--keep-subnormals``. This compares the
    implementations.
``--torch-defaults``
    Each library as its users run it. PyTorch runs in a process of its own,
    started without thread variables (``OMP_NUM_THREADS`` and the like), so it
    has its default thread count, glibc's default allocator and no flush to
    zero. minirnn runs in this process at the defaults of ``python -m minirnn
    train``: freed memory kept, subnormals flushed, one BLAS thread, and the
    batch split across every core (``minirnn/parallel.py``; ``MINIRNN_THREADS``
    changes the count) where the model allows it. This process sends PyTorch's
    its turn and waits for the answer, so one library runs at a time; a pause of
    ``PAUSE_S`` between turns lets the idle threads of each go to sleep. A turn is
    ``BURST`` steps in a row, as in a training loop: after a few milliseconds of
    idleness this virtual machine's second core comes back late (the threads of
    the first step share one core), which no training loop meets but every
    step of a one-step turn would.

Cases (``--cases``): ``rnn``, ``lstm``, ``gru`` (row-MNIST: batch 64, time 28, input
28, hidden 100; the GRU in PyTorch's convention, ``reset_after=True``);
``pixel-lstm`` (pixel-MNIST: time 784, input 1; ``pixel-rnn`` and ``pixel-gru``
too, all three with ``--pixel-mnist``); ``cnn-bn`` and ``cnn`` (the Qiita batch-norm
CNN note's CNN with and without batch norm, batch 100 of 28x28 images). The
recurrent models are a cell and a linear head on the last hidden state, softmax
cross-entropy, Adam. The CNN's PyTorch twin (``torch_cnn``) computes the same loss
and gradients as minirnn's from the same parameters, to float64 rounding
(``check_cnn``, run by ``--check`` and by ``tests/test_compare_torch.py``).

Every time is the median of ``--repeats`` steps after three warm-up steps of
each; ratio = minirnn's time / PyTorch's (below 1: minirnn is faster). ``--runs N``
measures everything N times over and ends with each case's median ratio and its
range over the runs. The tables and the records go to
``results/compare_torch/<mode>.txt`` and ``.json`` beside this script (``--out DIR``
elsewhere). PyTorch is optional, never a dependency
of minirnn: without it this script says so and exits.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from minirnn.bench import torch_recurrent_step

RESULTS = Path(__file__).resolve().parent / "results" / "compare_torch"
PAUSE_S = 0.005
BURST = 5  # steps in a row per turn, --torch-defaults

_ROW = {"batch": 64, "time": 28, "input": 28, "hidden": 100}
_PIXEL = {"batch": 64, "time": 784, "input": 1, "hidden": 100}
_IMAGES = {"batch": 100, "time": None, "input": 28 * 28, "hidden": None}
CASES = {
    "rnn": {"model": "rnn", "torch": "RNN", **_ROW},
    "lstm": {"model": "lstm", "torch": "LSTM", **_ROW},
    "gru": {"model": "gru", "torch": "GRU", "options": {"reset_after": True}, **_ROW},
    "pixel-rnn": {"model": "rnn", "torch": "RNN", **_PIXEL},
    "pixel-lstm": {"model": "lstm", "torch": "LSTM", **_PIXEL},
    "pixel-gru": {"model": "gru", "torch": "GRU", "options": {"reset_after": True}, **_PIXEL},
    "cnn-bn": {"model": "cnn", "options": {"batchnorm": True}, **_IMAGES},
    "cnn": {"model": "cnn", "options": {"batchnorm": False}, **_IMAGES},
}
DEFAULT_CASES = ("rnn", "lstm", "gru", "pixel-lstm", "cnn-bn", "cnn")


# ---------------------------------------------------------------- the models


def torch_cnn(torch, batchnorm):
    """The Qiita batch-norm CNN note's CNN in PyTorch, layer for layer as
    ``minirnn.nn.CNNClassifier``: the same indices in an ``nn.Sequential``, so
    minirnn's parameter ``"4.W"`` is PyTorch's ``"4.weight"``. Batch norm with
    TensorFlow's eps 1e-3 and momentum 0.99 (PyTorch's 0.01) as minirnn's default."""
    nn = torch.nn
    layers, channels = [], 1
    for filters in (32, 64):
        layers.append(nn.Conv2d(channels, filters, 3))
        if batchnorm:
            layers.append(nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        channels = filters
    layers += [nn.Flatten(), nn.Linear(64 * 5 * 5, 10)]
    return nn.Sequential(*layers)


_TORCH_NAME = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}


def torch_name(key):
    """minirnn's CNN parameter name -> its twin's: "0.W" -> "0.weight"."""
    index, name = key.split(".")
    return f"{index}.{_TORCH_NAME[name]}"


def copy_cnn_params(torch, model, net):
    """Give ``net`` (``torch_cnn``) the parameters of ``model`` (``CNNClassifier``),
    in the net's dtype. A dense layer's W is (in, out) in minirnn, (out, in) there."""
    named = dict(net.named_parameters())
    with torch.no_grad():
        for key, value in model.params.items():
            target = named[torch_name(key)]
            target.copy_(torch.from_numpy(value.T if value.ndim == 2 else value))


def check_cnn(torch, batchnorm, batch=4, seed=0):
    """Largest relative differences between minirnn's CNN and its PyTorch twin in
    float64 from the same parameters and data: of the loss, of the gradient of
    each parameter under that loss, and of each under a random upstream gradient
    of the logits. Returns {"loss": ..., "<key>": ..., "<key> (random upstream)": ...}.

    A gradient's difference is relative to its largest entry, or to a thousandth
    of the model's largest gradient entry if that is more: with batch norm the
    convolutions' biases have gradient zero (the batch mean cancels them), which
    both libraries compute as rounding noise of order 1e-17."""
    from minirnn.nn import CNNClassifier

    rng = np.random.default_rng(seed)
    model = CNNClassifier(batchnorm=batchnorm, rng=rng, dtype=np.float64)
    for value in model.params.values():  # batch norm's gamma 1 and beta 0 are too easy
        value += 0.1 * rng.standard_normal(value.shape)
    x = rng.random((batch, 1, 28, 28))
    labels = rng.integers(0, 10, batch)
    dlogits = rng.standard_normal((batch, 10))
    net = torch_cnn(torch, batchnorm).double()
    copy_cnn_params(torch, model, net)
    named = dict(net.named_parameters())

    def rel(a, b, floor=1e-300):
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), floor))

    def grad_errors(named_grads, suffix=""):
        floor = 1e-3 * max(np.max(np.abs(g)) for g in model.grads.values())
        for key, g in model.grads.items():
            t = named_grads[torch_name(key)].grad.numpy()
            errors[key + suffix] = rel(g, t.T if g.ndim == 2 else t, floor)

    loss, _ = model.loss_and_backward(x, labels)
    theirs_loss = torch.nn.functional.cross_entropy(
        net(torch.from_numpy(x)), torch.from_numpy(labels)
    )
    theirs_loss.backward()
    errors = {"loss": rel(np.asarray(loss), theirs_loss.detach().numpy())}
    grad_errors(named)
    net.zero_grad()
    model.forward(x)
    model.backward(dlogits)
    net(torch.from_numpy(x)).backward(torch.from_numpy(dlogits))
    grad_errors(named, " (random upstream)")
    return errors


def case_sizes(name, batch=None, hidden=None):
    """A case's settings with ``batch`` / ``hidden`` overridden where given."""
    case = dict(CASES[name], name=name)
    if batch is not None:
        case["batch"] = batch
    if hidden is not None and case["hidden"] is not None:
        case["hidden"] = hidden
    return case


def minirnn_model(case):
    from minirnn.nn import CNNClassifier, SequenceClassifier

    rng = np.random.default_rng(0)
    if case["model"] == "cnn":
        model = CNNClassifier(rng=rng, **case["options"])
        x = rng.random((case["batch"], 1, 28, 28), dtype=np.float32)
    else:
        model = SequenceClassifier(
            case["model"], case["input"], case["hidden"], 10, rng=rng, **case.get("options", {})
        )
        x = rng.standard_normal((case["batch"], case["time"], case["input"]), dtype=np.float32)
    return model, x, rng.integers(0, 10, case["batch"])


def minirnn_step(case, sharded=None):
    """One training step of minirnn: ``model.loss_and_backward`` then Adam, or, with
    ``sharded`` = a ``minirnn.parallel.ShardedStep`` factory, the batch split as
    ``python -m minirnn train`` splits it. Returns (step, description)."""
    from minirnn.optim import Adam

    model, x, labels = minirnn_model(case)
    adam = Adam(model.params, lr=1e-3)
    run = model.loss_and_backward if sharded is None else sharded(model)

    def step():
        run(x, labels)
        adam.step(model.grads)

    return step, run


def torch_step(torch, case):
    """The same training step in PyTorch (float32, default initialisation)."""
    if case["model"] != "cnn":
        return torch_recurrent_step(
            torch, case["torch"], case["batch"], case["time"], case["input"], case["hidden"]
        )
    torch.manual_seed(0)
    net = torch_cnn(torch, **case["options"])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(case["batch"], 1, 28, 28)
    labels = torch.randint(0, 10, (case["batch"],))

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), labels).backward()
        opt.step()

    return step


# ---------------------------------------------------------------- timing


def timed(fn):
    """fn -> a function that runs fn once and returns its time in milliseconds."""

    def run():
        t0 = time.perf_counter()
        fn()
        return 1e3 * (time.perf_counter() - t0)

    return run


def take_turns(timers, repeats, warmup=3, pause=0.0, burst=1):
    """Median milliseconds of each timer (a function that runs one step and returns
    its time), called in turns of ``burst`` steps: ``warmup`` turns untimed, then
    enough turns for ``repeats`` steps of each."""
    turns = -(-repeats // burst)
    times = np.empty((turns * burst, len(timers)))
    for r in range(-warmup, turns):
        for k, timer in enumerate(timers):
            if pause:
                time.sleep(pause)
            for b in range(burst):
                ms = timer()
                if r >= 0:
                    times[r * burst + b, k] = ms
    return [float(t) for t in np.median(times, axis=0)]


def default_env():
    """This process's environment without the variables that set thread counts."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_", "MINIRNN_"))
    }


class TorchProcess:
    """PyTorch in a process of its own, at its defaults: this script run with
    ``--worker`` and an environment without thread variables. One JSON line each
    way: {"case": {...}} builds a step and answers {"threads": n, "version": v};
    {"step": true} runs it once and answers {"ms": t}, timed inside the process."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=default_env(),
        )

    def ask(self, message):
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the PyTorch process ended (exit status {self.proc.wait()})")
        return json.loads(line)

    def build(self, case):
        return self.ask({"case": case})

    def step(self):
        return self.ask({"step": True})["ms"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def worker():
    """The loop of ``TorchProcess``'s process (``--worker``)."""
    import torch

    step = None
    for line in sys.stdin:
        message = json.loads(line)
        if "case" in message:
            step = torch_step(torch, message["case"])
            answer = {
                "threads": torch.get_num_threads(),
                "version": torch.__version__,
                "flush_denormal": False,
            }
        else:
            answer = {"ms": timed(step)()}
        print(json.dumps(answer), flush=True)
    return 0


# ---------------------------------------------------------------- the two modes


def one_thread_each(torch, cases, repeats, keep_subnormals=False, return_freed_memory=False):
    """Both libraries here, one thread each, the same process settings."""
    from minirnn.memory import keep_freed_memory
    from minirnn.subnormals import flush_subnormals
    from minirnn.threads import blas_threads

    kept = False if return_freed_memory else keep_freed_memory()
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    records = []
    try:
        with blas_threads(1), flush_subnormals(not keep_subnormals) as flushed:
            torch.set_flush_denormal(flushed)  # the same two bits, for PyTorch's thread
            for case in cases:
                ours, _ = minirnn_step(case)
                theirs = torch_step(torch, case)
                t_ours, t_theirs = take_turns([timed(ours), timed(theirs)], repeats)
                records.append(
                    {
                        **case,
                        "minirnn_ms": t_ours,
                        "torch_ms": t_theirs,
                        "ratio": t_ours / t_theirs,
                        "minirnn_threads": 1,
                        "shards": 1,
                        "torch_threads": 1,
                    }
                )
    finally:
        torch.set_num_threads(torch_threads)
        torch.set_flush_denormal(False)
    settings = {
        "mode": "one thread each",
        "freed_memory_kept": kept,
        "subnormals_flushed": flushed,
        "torch_version": torch.__version__,
    }
    return settings, records


def torch_defaults(cases, repeats):
    """PyTorch at its defaults in a process of its own, minirnn at its defaults here."""
    from minirnn.memory import keep_freed_memory
    from minirnn.parallel import ShardedStep, default_threads
    from minirnn.subnormals import flush_subnormals
    from minirnn.threads import blas_threads

    threads = default_threads()
    kept = keep_freed_memory()
    theirs = TorchProcess()
    records = []
    try:
        with blas_threads(1), flush_subnormals() as flushed:
            for case in cases:
                info = theirs.build(case)
                ours, run = minirnn_step(case, lambda m: ShardedStep(m, threads=threads))
                try:
                    t_ours, t_theirs = take_turns(
                        [timed(ours), theirs.step], repeats, pause=PAUSE_S, burst=BURST
                    )
                finally:
                    run.close()
                records.append(
                    {
                        **case,
                        "minirnn_ms": t_ours,
                        "torch_ms": t_theirs,
                        "ratio": t_ours / t_theirs,
                        "minirnn_threads": run.threads,
                        "shards": run.last_shards,
                        "torch_threads": info["threads"],
                    }
                )
    finally:
        theirs.close()
    settings = {
        "mode": "each at its defaults",
        "freed_memory_kept": kept,
        "subnormals_flushed": flushed,
        "torch_version": info["version"],
        "torch_settings": "default threads, default allocator, subnormals kept",
    }
    return settings, records


def format_table(settings, records, repeats):
    memory = "kept" if settings["freed_memory_kept"] else "returned"
    subnormals = "flushed" if settings["subnormals_flushed"] else "kept"
    lines = [
        (
            f"minirnn against PyTorch {settings['torch_version']}, {settings['mode']}; "
            f"{datetime.datetime.now():%Y-%m-%d %H:%M}; CPU {cpu_model()} "
            f"({os.cpu_count()} cores), load average {os.getloadavg()[0]:.2f}"
        ),
        (
            f"training step (forward, loss, backward, Adam), float32, median of {repeats}; "
            f"minirnn: freed memory {memory}, subnormals {subnormals}, one BLAS thread"
        ),
    ]
    if "torch_settings" in settings:
        lines.append(f"PyTorch in its own process: {settings['torch_settings']}")
    lines.append(
        f"{'case':11} {'batch':>5} {'time':>4} {'input':>5} {'hidden':>6} "
        f"{'minirnn ms':>10} {'threads':>7} {'shards':>6} {'torch ms':>9} "
        f"{'threads':>7} {'ratio':>6}"
    )
    for r in records:
        sizes = " ".join(
            f"{'-' if r[k] is None else r[k]:>{w}}"
            for k, w in (("batch", 5), ("time", 4), ("input", 5), ("hidden", 6))
        )
        lines.append(
            f"{r['name']:11} {sizes} {r['minirnn_ms']:10.2f} {r['minirnn_threads']:7d} "
            f"{r['shards']:6d} {r['torch_ms']:9.2f} {r['torch_threads']:7d} "
            f"{r['ratio']:5.2f}x"
        )
    lines.append(
        "ratio = minirnn time / PyTorch time (below 1: minirnn is faster); shards: "
        "pieces of the batch minirnn computes apart (1: the whole batch at once)"
    )
    return "\n".join(lines)


def format_summary(runs):
    """Each case's ratio over several runs: median, lowest, highest."""
    lines = [f"over {len(runs)} runs: ratio minirnn / PyTorch, median (lowest-highest)"]
    for k, record in enumerate(runs[0]):
        ratios = [records[k]["ratio"] for records in runs]
        times = (
            [records[k]["minirnn_ms"] for records in runs],
            [records[k]["torch_ms"] for records in runs],
        )
        lines.append(
            f"{record['name']:11} {np.median(ratios):5.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            f"   minirnn {np.median(times[0]):8.2f} ms, PyTorch {np.median(times[1]):8.2f} ms"
        )
    return "\n".join(lines)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--torch-defaults",
        action="store_true",
        help="each library at its defaults (PyTorch in its own process)",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=list(CASES),
        default=None,
        help=f"default: {' '.join(DEFAULT_CASES)}",
    )
    parser.add_argument(
        "--pixel-mnist",
        action="store_true",
        help="the three recurrent cells at 784 steps of 1 input",
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--runs", type=int, default=1, help="measure N times over; report medians and ranges"
    )
    parser.add_argument("--batch", type=int, default=None, help="instead of each case's")
    parser.add_argument("--hidden", type=int, default=None, help="instead of each case's")
    parser.add_argument(
        "--return-freed-memory",
        action="store_true",
        help="one thread each: leave malloc's default (minirnn/memory.py)",
    )
    parser.add_argument(
        "--keep-subnormals",
        action="store_true",
        help="one thread each: do not flush subnormal floats to zero",
    )
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only compare the CNN's loss and gradients with its twin",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker()
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed; `pip install torch` to compare (it is optional).")
        return 0
    if args.check:
        for batchnorm in (True, False):
            errors = check_cnn(torch, batchnorm)
            print(
                f"CNN {'with' if batchnorm else 'without'} batch norm, float64: largest "
                f"relative difference {max(errors.values()):.1e} (loss {errors['loss']:.1e})"
            )
        return 0
    names = args.cases or (
        ("pixel-rnn", "pixel-lstm", "pixel-gru") if args.pixel_mnist else DEFAULT_CASES
    )
    if args.runs < 1:
        parser.error(f"--runs: expected a count of at least 1, got {args.runs}")
    cases = [case_sizes(name, args.batch, args.hidden) for name in names]
    stem = "torch_defaults" if args.torch_defaults else "one_thread"
    tables, runs = [], []
    for _ in range(args.runs):
        if args.torch_defaults:
            settings, records = torch_defaults(cases, args.repeats)
        else:
            settings, records = one_thread_each(
                torch, cases, args.repeats, args.keep_subnormals, args.return_freed_memory
            )
        tables.append(format_table(settings, records, args.repeats))
        runs.append(records)
        if not args.json:
            print(("\n" if len(tables) > 1 else "") + tables[-1], flush=True)
    if args.runs > 1:
        tables.append(format_summary(runs))
        if not args.json:
            print("\n" + tables[-1])
    if args.json:
        print(json.dumps({"settings": settings, "runs": runs}, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.txt").write_text("\n\n".join(tables) + "\n")
    (args.out / f"{stem}.json").write_text(
        json.dumps({"settings": settings, "repeats": args.repeats, "runs": runs}, indent=1) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
