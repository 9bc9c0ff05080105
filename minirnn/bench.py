"""Timing of the cells: forward, forward+backward and a full training step.

A training step is what ``python -m minirnn train`` does per batch: the cell,
a dense head on the last hidden state, softmax cross-entropy, backward, and an
Adam update. Every figure is the median of ``repeats`` runs after a warm-up, so
a stray pause of the machine does not move it; the first call (compilation, or
loading it from Numba's cache) is reported separately.

Beside each figure stands the floor for this machine: the step's floating-point
operations in matrix products divided by the matrix-multiply rate measured in
the same run. Elementwise work is left out of the count, so the floor is a
lower bound no implementation can beat.

``bench_sweep`` (``python -m minirnn bench --sweep``) times the LSTM training
step while one size varies at a time (hidden, time, batch), beside PyTorch's when
it is installed (one thread each), and draws the times against the floor.
"""

import json
import time
from pathlib import Path

import numpy as np

from .cells import CELLS, get_cell, split_options

GATES = {
    "rnn": 1,
    "lstm": 4,
    "gru": 3,
    "bnlstm": 4,
    "lnlstm": 4,
    "lngru": 3,
    "vcrnn": 1,
    "vcgru": 3,
    "vclstm": 4,
}
# The option combinations worth timing separately (default: the cell's defaults).
BENCH_CASES = {
    "gru": ({"reset_after": False}, {"reset_after": True}),
    "lnlstm": ({"flavour": "paper"}, {"flavour": "tensorflow"}),
}


def _median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def matmul_gflops(dtype=np.float32, n=512, repeats=10):
    """The machine's matrix-multiply rate: an (n, n) @ (n, n) product, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    a @ b
    return 2 * n**3 / (_median_ms(lambda: a @ b, repeats) / 1e3) / 1e9


def step_flops(cell, batch, time_steps, input_size, hidden, n_classes=10):
    """Floating-point operations in the matrix products of one training step.

    Forward: x W and h U over all steps, the head; backward: three products for
    each (the input gradient and the weight gradient of each product)."""
    g = GATES.get(cell, 4) * hidden
    forward = (
        2 * batch * time_steps * (input_size * g + hidden * g) + 2 * batch * hidden * n_classes
    )
    return 3 * forward


def time_cell(
    name,
    *,
    batch=64,
    time_steps=28,
    input_size=28,
    hidden=100,
    dtype=np.float32,
    repeats=20,
    options=None,
    train_step=True,
):
    """One record: sizes, ``first_call_ms``, ``forward_ms``, ``forward_backward_ms``,
    ``train_step_ms`` (unless ``train_step=False``) and ``sequences_per_s`` of a
    training step (or of forward+backward)."""
    from .nn import SequenceClassifier
    from .optim import Adam

    cell = get_cell(name)
    options = dict(options or {})
    init_opts, fwd_opts = split_options(cell, options)
    rng = np.random.default_rng(0)
    params = cell.init(input_size, hidden, rng=rng, dtype=dtype, **init_opts)
    x = rng.standard_normal((batch, time_steps, input_size)).astype(dtype)
    dhs = rng.standard_normal((batch, time_steps, hidden)).astype(dtype)
    labels = rng.integers(0, 10, batch)
    masks_rng = np.random.default_rng(1)  # for options that draw dropout masks

    def fwd():
        return cell.forward(params, x, rng=masks_rng, **fwd_opts)

    def fwd_bwd():
        _, cache = fwd()
        return cell.backward(params, dhs, cache)

    t0 = time.perf_counter()
    fwd_bwd()
    first = 1e3 * (time.perf_counter() - t0)
    fwd_bwd()
    record = {
        "cell": name,
        "options": options,
        "batch": batch,
        "time": time_steps,
        "input": input_size,
        "hidden": hidden,
        "dtype": np.dtype(dtype).name,
        "first_call_ms": first,
        "forward_ms": _median_ms(fwd, repeats),
        "forward_backward_ms": _median_ms(fwd_bwd, repeats),
    }
    if train_step:
        model = SequenceClassifier(name, input_size, hidden, 10, rng=rng, dtype=dtype, **options)
        adam = Adam(model.params, lr=1e-3)

        def step():
            model.loss_and_backward(x, labels)
            adam.step(model.grads)

        step()
        record["train_step_ms"] = _median_ms(step, repeats)
    per_step = record.get("train_step_ms", record["forward_backward_ms"])
    record["sequences_per_s"] = batch / (per_step / 1e3)
    return record


CNN_BATCH = 100  # the Qiita batch-norm CNN note's batch size


def cnn_step_flops(model, x):
    """Floating-point operations in the products of one CNN training step: each
    convolution (as its im2col product) and the dense layer, forward, and twice
    that backward (the input's and the weights' gradients). ``x`` is run through
    ``model`` once to learn every layer's output size."""
    from .nn import Dense
    from .nn.conv import Conv2D

    flops, h = 0, x
    for layer in model.layers:
        out = layer.forward(h)
        if isinstance(layer, Conv2D):
            _, c, kh, kw = layer.params["W"].shape
            flops += 2 * out.size * c * kh * kw  # out.size = N * F * OH * OW
        elif isinstance(layer, Dense):
            flops += 2 * h.shape[0] * layer.params["W"].size
        h = out
    return 3 * flops


def time_cnn(*, batchnorm=True, batch=CNN_BATCH, dtype=np.float32, repeats=20):
    """One record for the Qiita batch-norm CNN note's CNN on 28x28 images, like
    ``time_cell``'s: ``cell`` is "cnn", ``time`` and ``hidden`` are None, ``input`` is
    784 pixels, ``sequences_per_s`` counts images."""
    from .nn import CNNClassifier
    from .optim import Adam

    rng = np.random.default_rng(0)
    model = CNNClassifier(batchnorm=batchnorm, rng=rng, dtype=dtype)
    x = rng.random((batch, 1, 28, 28)).astype(dtype)
    labels = rng.integers(0, 10, batch)
    dlogits = rng.standard_normal((batch, model.n_classes)).astype(dtype)
    adam = Adam(model.params, lr=1e-3)

    def fwd():
        return model.forward(x)

    def fwd_bwd():
        fwd()
        return model.backward(dlogits)

    def step():
        model.loss_and_backward(x, labels)
        adam.step(model.grads)

    t0 = time.perf_counter()
    step()
    first = 1e3 * (time.perf_counter() - t0)
    record = {
        "cell": "cnn",
        "options": {"batchnorm": batchnorm},
        "batch": batch,
        "time": None,
        "input": 28 * 28,
        "hidden": None,
        "dtype": np.dtype(dtype).name,
        "first_call_ms": first,
        "forward_ms": _median_ms(fwd, repeats),
        "forward_backward_ms": _median_ms(fwd_bwd, repeats),
        "train_step_ms": _median_ms(step, repeats),
    }
    record["sequences_per_s"] = batch / (record["train_step_ms"] / 1e3)
    record["step_flops"] = cnn_step_flops(model, x)
    return record


def run(
    cells=None, *, batch=64, time_steps=28, input_size=28, hidden=100, dtype=np.float32, repeats=20
):
    """Time every cell (with each option combination of ``BENCH_CASES``) and the Qiita
    batch-norm CNN note's CNN (``"cnn"``, with and without batch norm, at its batch of
    100), and attach the floor. Returns a list of records."""
    rate = matmul_gflops(dtype)
    records = []
    for name in cells or [*CELLS, "cnn"]:
        if name == "cnn":
            for batchnorm in (True, False):
                r = time_cnn(batchnorm=batchnorm, dtype=dtype, repeats=repeats)
                flops = r.pop("step_flops")
                r.update(
                    matmul_gflops=rate, step_gflop=flops / 1e9, floor_ms=flops / (rate * 1e9) * 1e3
                )
                records.append(r)
            continue
        for options in BENCH_CASES.get(name, ({},)):
            r = time_cell(
                name,
                batch=batch,
                time_steps=time_steps,
                input_size=input_size,
                hidden=hidden,
                dtype=dtype,
                repeats=repeats,
                options=options,
            )
            flops = step_flops(name, batch, time_steps, input_size, hidden)
            r.update(
                matmul_gflops=rate, step_gflop=flops / 1e9, floor_ms=flops / (rate * 1e9) * 1e3
            )
            records.append(r)
    return records


def format_table(records):
    lines = [
        (
            f"{'cell':24} {'first call s':>12} {'forward ms':>10} {'fwd+bwd ms':>10} "
            f"{'train step ms':>13} {'floor ms':>8} {'seq/s':>7}"
        )
    ]
    if any(r["cell"] == "cnn" for r in records):
        lines[0] += "   (cnn: batch 100 images of 28x28; seq/s counts images)"
    for r in records:
        label = r["cell"] + "".join(f" {k}={v}" for k, v in r["options"].items())
        lines.append(
            f"{label:24} {r['first_call_ms'] / 1e3:12.1f} {r['forward_ms']:10.2f} "
            f"{r['forward_backward_ms']:10.2f} {r['train_step_ms']:13.2f} "
            f"{r['floor_ms']:8.2f} {r['sequences_per_s']:7.0f}"
        )
    if records:
        lines.append(
            f"matrix-multiply rate {records[0]['matmul_gflops']:.1f} GFLOP/s; floor = "
            f"FLOPs of the step's products / that rate"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- scaling sweep

# One axis varied at a time around the row-MNIST sizes (input 28 throughout).
SWEEP = {
    "hidden": {"values": (32, 64, 128, 256, 512), "fixed": {"time_steps": 28, "batch": 64}},
    "time": {"values": (28, 112, 448, 784), "fixed": {"hidden": 100, "batch": 64}},
    "batch": {"values": (16, 64, 256), "fixed": {"time_steps": 28, "hidden": 100}},
}
SWEEP_INPUT = 28
_SIZE_NAME = {"hidden": "hidden", "time": "time_steps", "batch": "batch"}


def lstm_train_step(batch, time_steps, input_size, hidden, dtype=np.float32):
    """minirnn's LSTM training step as ``python -m minirnn train`` runs it: the cell,
    a dense head on h_T, softmax cross-entropy, backward and an Adam update, on
    random data. Returns a function of no arguments that runs one step."""
    from .nn import SequenceClassifier
    from .optim import Adam

    rng = np.random.default_rng(0)
    model = SequenceClassifier("lstm", input_size, hidden, 10, rng=rng, dtype=dtype)
    adam = Adam(model.params, lr=1e-3)
    x = rng.standard_normal((batch, time_steps, input_size)).astype(dtype)
    labels = rng.integers(0, 10, batch)

    def step():
        model.loss_and_backward(x, labels)
        adam.step(model.grads)

    return step


def torch_recurrent_step(torch, kind, batch, time_steps, input_size, hidden, dtype=np.float32):
    """The same training step in PyTorch (optional, never a dependency; pass the
    imported module): ``torch.nn.RNN``, ``LSTM`` or ``GRU`` (``kind``), a linear
    head on the last output, ``CrossEntropyLoss`` and ``torch.optim.Adam``."""
    torch.manual_seed(0)
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    rnn = getattr(torch.nn, kind)(input_size, hidden, batch_first=True).to(tdtype)
    head = torch.nn.Linear(hidden, 10).to(tdtype)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    x = torch.randn(batch, time_steps, input_size, dtype=tdtype)
    labels = torch.randint(0, 10, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        loss_fn(head(out[:, -1]), labels).backward()
        opt.step()

    return step


def alternate(fns, repeats, warmup=3):
    """Median milliseconds per call of each function, called in turns (after
    ``warmup`` calls of each) so that a change in the machine's load moves all alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = np.empty((repeats, len(fns)))
    for r in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[r, k] = time.perf_counter() - t0
    return [1e3 * float(t) for t in np.median(times, axis=0)]


def sweep(axes=None, *, repeats=10, with_torch=True, dtype=np.float32):
    """Time the LSTM training step (``lstm_train_step``) while one size varies at a
    time (``axes``, default ``SWEEP``: hidden, time, batch), beside PyTorch's
    (``torch_recurrent_step``) when ``with_torch`` and PyTorch is installed, one
    thread each (the caller limits minirnn's BLAS; PyTorch is set to one thread
    here and restored after). Returns one record per point: ``axis``, ``value``,
    the sizes, ``minirnn_ms``, ``torch_ms`` (None without PyTorch) and ``floor_ms``
    (the step's products at the matrix-multiply rate measured first)."""
    torch = None
    if with_torch:
        try:
            import torch
        except ImportError:
            pass
    rate = matmul_gflops(dtype)
    records = []
    torch_threads = torch.get_num_threads() if torch else None
    try:
        if torch:
            torch.set_num_threads(1)
        for axis, spec in (axes or SWEEP).items():
            for value in spec["values"]:
                sizes = {
                    "batch": 64,
                    "time_steps": 28,
                    "hidden": 100,
                    "input_size": SWEEP_INPUT,
                    **spec["fixed"],
                    _SIZE_NAME[axis]: value,
                }
                steps = [lstm_train_step(dtype=dtype, **sizes)]
                if torch:
                    steps.append(torch_recurrent_step(torch, "LSTM", dtype=dtype, **sizes))
                ms = alternate(steps, repeats)
                flops = step_flops(
                    "lstm",
                    sizes["batch"],
                    sizes["time_steps"],
                    sizes["input_size"],
                    sizes["hidden"],
                )
                records.append(
                    {
                        "axis": axis,
                        "value": value,
                        **sizes,
                        "dtype": np.dtype(dtype).name,
                        "minirnn_ms": ms[0],
                        "torch_ms": ms[1] if torch else None,
                        "torch_version": torch.__version__ if torch else None,
                        "floor_ms": flops / (rate * 1e9) * 1e3,
                        "matmul_gflops": rate,
                    }
                )
    finally:
        if torch:
            torch.set_num_threads(torch_threads)
    return records


def format_sweep(records):
    lines = [
        (
            f"{'size varied':12} {'value':>6} {'minirnn ms':>10} {'torch ms':>9} "
            f"{'ratio':>6} {'floor ms':>8}"
        )
    ]
    for r in records:
        torch_ms = f"{r['torch_ms']:9.2f}" if r["torch_ms"] else f"{'-':>9}"
        ratio = f"{r['minirnn_ms'] / r['torch_ms']:6.2f}" if r["torch_ms"] else f"{'-':>6}"
        lines.append(
            f"{r['axis']:12} {r['value']:6d} {r['minirnn_ms']:10.2f} {torch_ms} "
            f"{ratio} {r['floor_ms']:8.2f}"
        )
    lines.append(
        "LSTM training step (cell, dense head, cross-entropy, Adam), input 28; "
        "ratio = minirnn / PyTorch; floor = FLOPs of the step's products / "
        f"the matrix-multiply rate ({records[0]['matmul_gflops']:.1f} GFLOP/s)"
        if records
        else "no points"
    )
    return "\n".join(lines)


def draw_sweep(records, path):
    """Three panels (hidden, time, batch), milliseconds per training step against
    the size varied, both axes logarithmic: minirnn, PyTorch where measured, and
    the floor dashed. Writes ``path`` (PNG) and returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_names = list(dict.fromkeys(r["axis"] for r in records))
    fig, panels = plt.subplots(
        1, len(axes_names), figsize=(4.2 * len(axes_names), 3.8), squeeze=False
    )
    for ax, axis in zip(panels[0], axes_names):
        points = [r for r in records if r["axis"] == axis]
        x = [r["value"] for r in points]
        ax.plot(x, [r["minirnn_ms"] for r in points], "o-", color="C0", label="minirnn")
        if all(r["torch_ms"] for r in points):
            ax.plot(
                x,
                [r["torch_ms"] for r in points],
                "s-",
                color="C1",
                label=f"PyTorch {points[0]['torch_version'].split('+')[0]}",
            )
        ax.plot(
            x,
            [r["floor_ms"] for r in points],
            "--",
            color="0.4",
            label="floor (products at full speed)",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels([str(v) for v in x])
        ax.minorticks_off()
        fixed = ", ".join(
            f"{name} {points[0][key]}" for name, key in _SIZE_NAME.items() if name != axis
        )
        ax.set_title(f"{axis} varied ({fixed})", fontsize=10)
        ax.set_xlabel(axis)
        ax.grid(True, which="major", alpha=0.3)
    panels[0][0].set_ylabel("ms per training step")
    panels[0][0].legend(fontsize=8)
    first = records[0]
    fig.suptitle(
        f"LSTM training step (cell, dense head, cross-entropy, Adam), input "
        f"{first['input_size']}, {first['dtype']}, one thread each",
        fontsize=11,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def bench_sweep(
    figure,
    *,
    repeats=10,
    dtype=np.float32,
    blas=1,
    flush=True,
    as_json=False,
    axes=None,
    with_torch=True,
):
    """``python -m minirnn bench --sweep``: run ``sweep`` with ``blas`` BLAS threads and
    subnormals flushed (PyTorch too) unless ``flush`` is False, print the table (or
    the records as JSON) and draw ``figure``. Returns the exit status, 0."""
    from .subnormals import flush_subnormals
    from .threads import blas_threads

    with blas_threads(blas), flush_subnormals(flush) as flushed:
        if with_torch:
            try:
                import torch

                torch.set_flush_denormal(flushed)
            except ImportError:
                pass
        records = sweep(axes, repeats=repeats, with_torch=with_torch, dtype=dtype)
    for r in records:
        r["subnormals_flushed"] = flushed
    if as_json:
        print(json.dumps(records, indent=1))
    else:
        print(
            f"median of {repeats}, BLAS threads {blas}, subnormals "
            f"{'flushed to zero' if flushed else 'kept'}"
        )
        print(format_sweep(records))
    path = draw_sweep(records, figure)
    if not as_json:
        print(f"wrote {path}")
    return 0
