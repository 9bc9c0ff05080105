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
"""
import time

import numpy as np

from .cells import CELLS, get_cell, split_options

GATES = {"rnn": 1, "lstm": 4, "gru": 3, "bnlstm": 4, "lnlstm": 4, "lngru": 3,
         "vcrnn": 1, "vcgru": 3, "vclstm": 4}
# The option combinations worth timing separately (default: the cell's defaults).
BENCH_CASES = {"gru": ({"reset_after": False}, {"reset_after": True}),
               "lnlstm": ({"flavour": "paper"}, {"flavour": "tensorflow"})}


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
    return 2 * n ** 3 / (_median_ms(lambda: a @ b, repeats) / 1e3) / 1e9


def step_flops(cell, batch, time_steps, input_size, hidden, n_classes=10):
    """Floating-point operations in the matrix products of one training step.

    Forward: x W and h U over all steps, the head; backward: three products for
    each (the input gradient and the weight gradient of each product)."""
    g = GATES.get(cell, 4) * hidden
    forward = 2 * batch * time_steps * (input_size * g + hidden * g) + 2 * batch * hidden * n_classes
    return 3 * forward


def time_cell(name, *, batch=64, time_steps=28, input_size=28, hidden=100,
              dtype=np.float32, repeats=20, options=None, train_step=True):
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
    masks_rng = np.random.default_rng(1)        # for options that draw dropout masks

    def fwd():
        return cell.forward(params, x, rng=masks_rng, **fwd_opts)

    def fwd_bwd():
        hs, cache = fwd()
        return cell.backward(params, dhs, cache)

    t0 = time.perf_counter()
    fwd_bwd()
    first = 1e3 * (time.perf_counter() - t0)
    fwd_bwd()
    record = {"cell": name, "options": options, "batch": batch, "time": time_steps,
              "input": input_size, "hidden": hidden, "dtype": np.dtype(dtype).name,
              "first_call_ms": first, "forward_ms": _median_ms(fwd, repeats),
              "forward_backward_ms": _median_ms(fwd_bwd, repeats)}
    if train_step:
        model = SequenceClassifier(name, input_size, hidden, 10, rng=rng, dtype=dtype, **options)
        adam = Adam(model.params, lr=1e-3)

        def step():
            loss, _ = model.loss_and_backward(x, labels)
            adam.step(model.grads)

        step()
        record["train_step_ms"] = _median_ms(step, repeats)
    per_step = record.get("train_step_ms", record["forward_backward_ms"])
    record["sequences_per_s"] = batch / (per_step / 1e3)
    return record


CNN_BATCH = 100         # the Qiita batch-norm CNN note's batch size


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
            f, c, kh, kw = layer.params["W"].shape
            flops += 2 * out.size * c * kh * kw          # out.size = N * F * OH * OW
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
    record = {"cell": "cnn", "options": {"batchnorm": batchnorm}, "batch": batch,
              "time": None, "input": 28 * 28, "hidden": None, "dtype": np.dtype(dtype).name,
              "first_call_ms": first, "forward_ms": _median_ms(fwd, repeats),
              "forward_backward_ms": _median_ms(fwd_bwd, repeats),
              "train_step_ms": _median_ms(step, repeats)}
    record["sequences_per_s"] = batch / (record["train_step_ms"] / 1e3)
    record["step_flops"] = cnn_step_flops(model, x)
    return record


def run(cells=None, *, batch=64, time_steps=28, input_size=28, hidden=100, dtype=np.float32,
        repeats=20):
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
                r.update(matmul_gflops=rate, step_gflop=flops / 1e9,
                         floor_ms=flops / (rate * 1e9) * 1e3)
                records.append(r)
            continue
        for options in BENCH_CASES.get(name, ({},)):
            r = time_cell(name, batch=batch, time_steps=time_steps, input_size=input_size,
                          hidden=hidden, dtype=dtype, repeats=repeats, options=options)
            flops = step_flops(name, batch, time_steps, input_size, hidden)
            r.update(matmul_gflops=rate, step_gflop=flops / 1e9,
                     floor_ms=flops / (rate * 1e9) * 1e3)
            records.append(r)
    return records


def format_table(records):
    lines = [f"{'cell':24} {'first call s':>12} {'forward ms':>10} {'fwd+bwd ms':>10} "
             f"{'train step ms':>13} {'floor ms':>8} {'seq/s':>7}"]
    if any(r["cell"] == "cnn" for r in records):
        lines[0] += "   (cnn: batch 100 images of 28x28; seq/s counts images)"
    for r in records:
        label = r["cell"] + "".join(f" {k}={v}" for k, v in r["options"].items())
        lines.append(f"{label:24} {r['first_call_ms'] / 1e3:12.1f} {r['forward_ms']:10.2f} "
                     f"{r['forward_backward_ms']:10.2f} {r['train_step_ms']:13.2f} "
                     f"{r['floor_ms']:8.2f} {r['sequences_per_s']:7.0f}")
    if records:
        lines.append(f"matrix-multiply rate {records[0]['matmul_gflops']:.1f} GFLOP/s; floor = "
                     f"FLOPs of the step's products / that rate")
    return "\n".join(lines)
