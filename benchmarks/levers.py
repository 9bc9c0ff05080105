"""What each speed lever of the kernels gives, measured side by side: the code as
it was ("before") against the code as it is ("after"), on this machine.

    python benchmarks/levers.py [--out PATH]

prints its tables and writes them to ``results/levers.txt`` beside this script
(``--out`` elsewhere). Nine levers, one table each (before, after, and their ratio):

1. A loop over ``range(3H, 4H)`` against ``range(H)`` with the offset in the
   index: the first is not vectorized by Numba/LLVM, because its index cannot be
   proven non-negative and every access keeps the negative-index wraparound.
   Timed on the g block of the LSTM's forward step (tanh of a (64, 400) array's
   last quarter), with ``lstm.forward_loop`` at batch 64, time 28, hidden 100
   beside it to show what it is a part of.
2. The LSTM backward's elementwise work as one loop over six arrays against the
   short loops of ``lstm.state_gradients`` and ``lstm.gate_gradients``:
   LLVM vectorizes a loop only when it can check at run time that its arrays do
   not overlap, and it gives up when there are too many pairs to check.
3. Keeping freed memory in the process (``minirnn.memory.keep_freed_memory``):
   page faults and time per training step of an LSTM and a BN-LSTM classifier
   (batch 64, time 28, input 28, hidden 100, Adam), each in two fresh Python
   processes, one with the setting and one without (it is process-wide and
   cannot be undone, hence the subprocesses).
4. Flushing subnormal numbers to zero (``minirnn.subnormals.flush_subnormals``):
   the GRU's backward pass on pixel-MNIST sizes (time 784, input 1, hidden 100),
   with the gradient a classifier sends (at the last step only, so it vanishes
   into subnormals going back) and with a gradient at every step.
5. Skipping the input gradient of a model's first layer
   (``lstm.backward(..., input_grad=False)``), at batch 64, time 28, hidden 100.
6. Layer norm's row sums with reassociation (``fastmath={"reassoc"}``):
   ``layernorm.ln_forward_2d`` against the same code compiled without it.
7. Batch norm of images (N, C, H, W), forward and backward: the batch copied to
   (N*H*W, C) and back around the 2-D core, against the image kernels that read
   each channel in place (``batchnorm_forward`` / ``batchnorm_backward``).
8. Skipping the input gradient of the CNN's first convolution
   (``conv2d_backward(..., input_grad=False)``).
9. Max-pool's backward and col2im as compiled loops against their strided NumPy
   twins (``pooling.maxpool2d_backward_strided``, ``conv.col2im``).

The "before" variants are small kernels defined here, copied in spirit from the
old code; the "after" side calls the library's own functions (for lever 2, a
copy of the two loops of ``lstm.state_gradients``, then the library's ``gate_gradients``,
without the step's matrix product). Every pair
is checked to compute the same values before it is timed. Times are medians of
many repeats (``time.perf_counter``), the two sides called in turn within each
repeat so that a change in the machine's load moves both alike; the ratio is
the median of the per-repeat ratios. One BLAS thread throughout, as the
training and benchmark commands use. About half a minute on a 2-core
machine, most of it compiling and lever 4.
"""

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit

from minirnn.cells import gru, lstm
from minirnn.cells.lstm import gate_gradients
from minirnn.functional.activations import tanh
from minirnn.functional.batchnorm import (
    as_dtype_of,
    batchnorm_backward,
    batchnorm_forward,
    bn_backward_2d,
    bn_train_2d,
    from_2d,
    to_2d,
)
from minirnn.functional.conv import add_window_copies, col2im, conv2d_backward, conv2d_forward
from minirnn.functional.layernorm import ln_forward_2d
from minirnn.functional.pooling import (
    maxpool2d_backward,
    maxpool2d_backward_strided,
    maxpool2d_forward,
)
from minirnn.memory import keep_freed_memory
from minirnn.subnormals import flush_subnormals
from minirnn.threads import blas_threads

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
B, T, I, H = 64, 28, 28, 100  # the row-MNIST sizes
_ONE = np.float32(1.0)  # a literal 1.0 in a kernel is float64


# ---------------------------------------------------------------- timing


def paired(fns, repeats, number=1, setup=None):
    """Call each function ``number`` times in a row, the functions in turn, for
    ``repeats`` rounds (after one warm-up call each, which also compiles).
    ``setup()``, when given, runs before each round, outside the timing.
    Returns the median seconds per call of each function and the median of the
    per-round ratios of the first function's time to each one's."""
    for fn in fns:
        if setup is not None:
            setup()
        fn()
    times = np.empty((repeats, len(fns)))
    for r in range(repeats):
        for k, fn in enumerate(fns):
            if setup is not None:
                setup()
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            times[r, k] = (time.perf_counter() - t0) / number
    return np.median(times, axis=0), np.median(times[:, :1] / times, axis=0)


def row(label, before, after, ratio, unit):
    """One line of a table; ``ratio=None`` prints "-" (nothing left to divide by)."""
    shown = f"{ratio:8.2f}x" if ratio is not None else f"{'-':>9}"
    return f"   {label:40} {before:10.2f} {after:10.2f} {shown}   {unit}"


def table_head():
    return f"   {'':40} {'before':>10} {'after':>10} {'ratio':>9}"


def gates(rng, *shape):
    """Activated-gate-like values: sigmoid outputs in (0, 1), float32."""
    return (0.5 * np.tanh(rng.standard_normal(shape)) + 0.5).astype(np.float32)


# ---------------------------------------------------------------- lever 1


@njit(error_model="numpy")
def g_block_before(xw, ifog):
    # As the forward step was: j runs over the g block's own indices. j starts
    # at 3H, a runtime value, so LLVM cannot prove ifog[n, j] >= 0 and keeps the
    # wraparound test on every access; the loop runs one value at a time.
    n_rows, H = ifog.shape[0], ifog.shape[1] // 4
    for n in range(n_rows):
        for j in range(3 * H, 4 * H):
            ifog[n, j] = tanh(xw[n, j] + ifog[n, j])


@njit(error_model="numpy")
def g_block_after(xw, ifog):
    # As it is now: j runs from 0, so j >= 0 is known and so is 3H + j >= 0.
    n_rows, H = ifog.shape[0], ifog.shape[1] // 4
    for n in range(n_rows):
        for j in range(H):
            ifog[n, 3 * H + j] = tanh(xw[n, 3 * H + j] + ifog[n, 3 * H + j])


def lever_loop_range(rng):
    print("1. The g block's loop: range(3H, 4H) before, range(H) with 3H + j in the index after")
    print("   (an index not provably >= 0 keeps numba's negative-index check on every access,")
    print("   which stops LLVM from vectorizing the loop)")
    xw = rng.standard_normal((B, 4 * H)).astype(np.float32)
    ifog0 = rng.standard_normal((B, 4 * H)).astype(np.float32)
    a, b = ifog0.copy(), ifog0.copy()
    g_block_before(xw, a)
    g_block_after(xw, b)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # In place, as in the forward step; the repeated tanh keeps values in [-1, 1].
    (t_before, t_after), (_, ratio) = paired(
        [lambda: g_block_before(xw, a), lambda: g_block_after(xw, b)], repeats=200, number=50
    )
    print(table_head())
    print(
        row(
            f"tanh of the g block, ({B}, {4 * H})",
            1e6 * t_before,
            1e6 * t_after,
            ratio,
            "us per call (one timestep)",
        )
    )
    # The whole forward loop that contains it, for scale.
    params = lstm.init(I, H, rng=rng)
    xw_all = rng.standard_normal((T, B, 4 * H)).astype(np.float32)
    h0 = np.zeros((B, H), np.float32)
    c0 = np.zeros((B, H), np.float32)
    U = np.ascontiguousarray(params["U"])
    (t_loop,), _ = paired(
        [lambda: lstm.forward_loop(xw_all, h0, c0, U, params["b"])], repeats=100, number=5
    )
    print(
        f"   reference: lstm.forward_loop at batch {B}, time {T}, hidden {H}: "
        f"{1e3 * t_loop:.2f} ms; {T} steps x {1e6 * (t_before - t_after):.1f} us = "
        f"{1e3 * T * (t_before - t_after):.2f} ms of it saved"
    )


# ---------------------------------------------------------------- lever 2


@njit(error_model="numpy")
def lstm_elementwise_before(dh_out, dh, dc, c_prev, ifog, tanh_c, da):
    # The old step_backward: one loop per row reading six arrays and writing
    # two. LLVM would have to check at run time that none of the written arrays
    # overlaps any other, too many pairs: it gives up and runs it unvectorized.
    n_rows, H = dh.shape
    for n in range(n_rows):
        for j in range(H):
            i, f = ifog[n, j], ifog[n, H + j]
            o, g = ifog[n, 2 * H + j], ifog[n, 3 * H + j]
            tc = tanh_c[n, j]
            dh_t = dh_out[n, j] + dh[n, j]
            dc_t = dc[n, j] + dh_t * o * (_ONE - tc * tc)
            da[n, j] = dc_t * g * i * (_ONE - i)
            da[n, H + j] = dc_t * c_prev[n, j] * f * (_ONE - f)
            da[n, 2 * H + j] = dh_t * tc * o * (_ONE - o)
            da[n, 3 * H + j] = dc_t * i * (_ONE - g * g)
            dc[n, j] = dc_t * f


@njit(error_model="numpy")
def lstm_elementwise_after(dh_out, dh, dc, c_prev, ifog, tanh_c, da, dc_prev):
    # lstm.step_backward's elementwise work as it is now (without dropout masks
    # and without the final np.dot(da, U^T, dh)): its own two short loops, then
    # the library's gate_gradients, each loop touching few arrays. dh and dc are
    # rewritten in place (dh <- dL/dh_t, dc <- dL/dc_t); dc_prev <- dL/dc_{t-1}.
    n_rows, H = dh.shape
    for n in range(n_rows):
        for j in range(H):
            dh[n, j] = dh_out[n, j] + dh[n, j]
        for j in range(H):
            tc = tanh_c[n, j]
            dc[n, j] = dc[n, j] + dh[n, j] * ifog[n, 2 * H + j] * (_ONE - tc * tc)
    gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev)


def lever_split_loops(rng):
    print("2. The LSTM backward's elementwise work: one loop over seven arrays before, short")
    print("   loops after (LLVM gives up the run-time overlap checks a long loop would need)")
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    dh_out, dh0, dc0, c_prev = f32(B, H), f32(B, H), f32(B, H), f32(B, H)
    ifog = gates(rng, B, 4 * H)
    ifog[:, 3 * H :] = 2 * ifog[:, 3 * H :] - 1  # g = tanh, in (-1, 1)
    tanh_c = np.tanh(f32(B, H))
    state = {}

    def reset():  # both kernels rewrite dc (and "after" dh) in place
        for side in ("before", "after"):
            state[side] = (
                dh0.copy(),
                dc0.copy(),
                np.empty((B, 4 * H), np.float32),
                np.empty((B, H), np.float32),
            )

    reset()
    lstm_elementwise_before(dh_out, *state["before"][:2], c_prev, ifog, tanh_c, state["before"][2])
    lstm_elementwise_after(dh_out, *state["after"][:2], c_prev, ifog, tanh_c, *state["after"][2:])
    (_, dc_b, da_b, _), (dh_a, _, da_a, dc_prev_a) = state["before"], state["after"]
    np.testing.assert_allclose(da_a, da_b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dc_prev_a, dc_b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dh_a, dh_out + dh0, rtol=1e-6)  # dh <- dL/dh_t
    (t_before, t_after), (_, ratio) = paired(
        [
            lambda: lstm_elementwise_before(
                dh_out, *state["before"][:2], c_prev, ifog, tanh_c, state["before"][2]
            ),
            lambda: lstm_elementwise_after(
                dh_out, *state["after"][:2], c_prev, ifog, tanh_c, *state["after"][2:]
            ),
        ],
        repeats=200,
        number=20,
        setup=reset,
    )
    print(table_head())
    print(
        row(
            f"elementwise part, batch {B}, hidden {H}",
            1e6 * t_before,
            1e6 * t_after,
            ratio,
            "us per step",
        )
    )
    # The library's whole step, with its (64, 400) @ (400, 100) product, for scale.
    UT = np.ascontiguousarray(lstm.init(I, H, rng=rng)["U"].T)
    dh, dc, da = dh0.copy(), dc0.copy(), np.empty((B, 4 * H), np.float32)
    dh_prev, dc_prev = np.empty((B, H), np.float32), np.empty((B, H), np.float32)
    (t_step,), _ = paired(
        [
            lambda: lstm.step_backward(
                dh_out, dh, dc, c_prev, ifog, tanh_c, UT, da, dh_prev, dc_prev
            )
        ],
        repeats=200,
        number=20,
        setup=lambda: (dh.__setitem__(slice(None), dh0), dc.__setitem__(slice(None), dc0)),
    )
    print(
        f"   reference: the whole lstm.step_backward (with np.dot) {1e6 * t_step:.1f} us per "
        f"step; {T} steps x {1e6 * (t_before - t_after):.1f} us = "
        f"{1e3 * T * (t_before - t_after):.2f} ms per backward pass saved"
    )


# ---------------------------------------------------------------- lever 3

# Run in a fresh interpreter: argv[1] is the cell, argv[2] "keep" or "return".
TRAIN_STEPS = r"""
import json, resource, sys, time
import numpy as np
cell, mode = sys.argv[1], sys.argv[2]
if mode == "keep":
    from minirnn.memory import keep_freed_memory
    assert keep_freed_memory()
from minirnn.nn import SequenceClassifier
from minirnn.optim import Adam
from minirnn.subnormals import flush_subnormals
from minirnn.threads import blas_threads
B, T, I, H, WARMUP, STEPS = 64, 28, 28, 100, 5, 40
rng = np.random.default_rng(0)
x = rng.standard_normal((B, T, I)).astype(np.float32)
labels = rng.integers(0, 10, B)
model = SequenceClassifier(cell, I, H, 10, rng=rng, dtype=np.float32)
adam = Adam(model.params, lr=1e-3)
def step():
    model.loss_and_backward(x, labels)
    adam.step(model.grads)
times = []
with blas_threads(1), flush_subnormals():       # as `python -m minirnn train` runs
    for _ in range(WARMUP):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(STEPS):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"faults": faults / STEPS, "ms": 1e3 * float(np.median(times))}))
"""


def train_steps(cell, mode):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    out = subprocess.run(
        [sys.executable, "-c", TRAIN_STEPS, cell, mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def lever_freed_memory():
    print("3. Freed memory kept (minirnn.memory.keep_freed_memory): glibc otherwise returns")
    print("   the large freed blocks to the system and every step faults its pages in again")
    print(f"   (SequenceClassifier, batch {B}, time {T}, input {I}, hidden {H}, Adam; a fresh")
    print("   process per column; faults and median time over 40 steps after 5 warm-up steps)")
    print(table_head())
    for cell in ("lstm", "bnlstm"):
        before, after = train_steps(cell, "return"), train_steps(cell, "keep")
        ratio = before["faults"] / after["faults"] if after["faults"] else None
        print(
            row(f"{cell}: page faults per step", before["faults"], after["faults"], ratio, "faults")
        )
        print(
            row(
                f"{cell}: training step",
                before["ms"],
                after["ms"],
                before["ms"] / after["ms"],
                "ms",
            )
        )
        # glibc raises its mmap and trim thresholds by itself when a large mmapped
        # block is freed, so a loop that repeats one small step can stop faulting
        # without the setting; more freed memory per step (the BN-LSTM), or steps
        # of varying shapes between them (the bench's forward-only calls), still
        # exceed them. (With MALLOC_MMAP_THRESHOLD_ set, which turns the dynamic
        # thresholds off, this LSTM step faults about 3,700 times.)
        if before["faults"] < 1:
            print(
                f"   ({cell}: no faults even without the setting: glibc's dynamic "
                f"thresholds already keep this step's memory)"
            )


# ---------------------------------------------------------------- lever 4


def lever_subnormals(rng):
    print("4. Subnormals flushed to zero (minirnn.subnormals.flush_subnormals): a gradient")
    print("   that vanishes going back through time becomes subnormal, and x86 computes")
    print("   with subnormals through a slow microcode assist")
    Tp, Ip = 784, 1  # pixel MNIST
    params = gru.init(Ip, H, rng=rng)
    x = rng.standard_normal((B, Tp, Ip)).astype(np.float32)
    hs, cache = gru.forward(params, x)
    last = np.zeros((B, Tp, H), np.float32)
    last[:, -1] = rng.standard_normal((B, H))  # what a classifier sends
    every = rng.standard_normal((B, Tp, H)).astype(np.float32)

    def flushed(dhs):
        with flush_subnormals() as on:
            assert on
            return gru.backward(params, dhs, cache)

    # Flushing changes only values below 1.2e-38: the gradients agree.
    for dhs in (last, every):
        (_, g_plain), (_, g_flush) = gru.backward(params, dhs, cache), flushed(dhs)
        for k in g_plain:
            np.testing.assert_allclose(g_flush[k], g_plain[k], rtol=1e-5, atol=1e-30)
    print(f"   gru.backward, batch {B}, time {Tp}, input {Ip}, hidden {H}, float32; median of 5")
    print(table_head())
    for label, dhs in (("gradient at the last step only", last), ("gradient at every step", every)):
        (t_before, t_after), (_, ratio) = paired(
            [functools.partial(gru.backward, params, dhs, cache), functools.partial(flushed, dhs)],
            repeats=5,
        )
        print(row(label, 1e3 * t_before, 1e3 * t_after, ratio, "ms"))


# ---------------------------------------------------------------- lever 5


def lever_input_grad(rng):
    print("5. No input gradient for a model's first layer (backward(..., input_grad=False)):")
    print("   its input is data, so dx = da W^T, a (T*B, 4H) @ (4H, I) product, is not needed")
    params = lstm.init(I, H, rng=rng)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    dhs = rng.standard_normal((B, T, H)).astype(np.float32)
    hs, cache = lstm.forward(params, x)
    dx, g_with = lstm.backward(params, dhs, cache)
    none, g_without = lstm.backward(params, dhs, cache, input_grad=False)
    assert dx.shape == x.shape and none is None
    for k in g_with:
        np.testing.assert_array_equal(g_without[k], g_with[k])
    (t_before, t_after), (_, ratio) = paired(
        [
            lambda: lstm.backward(params, dhs, cache),
            lambda: lstm.backward(params, dhs, cache, input_grad=False),
        ],
        repeats=100,
    )
    print(table_head())
    print(
        row(
            f"lstm.backward, B {B}, T {T}, I {I}, H {H}", 1e3 * t_before, 1e3 * t_after, ratio, "ms"
        )
    )


# ---------------------------------------------------------------- lever 6


@njit(error_model="numpy")
def ln_forward_2d_into_strict(x, gain, shift, eps, y, xhat, inv_std):
    # layernorm.ln_forward_2d_into's body compiled without fastmath: each row
    # sum s += ... must add in order, one value after another, so it is not
    # vectorized.
    M, F = x.shape
    f, zero, one = as_dtype_of(F, x), as_dtype_of(0, x), as_dtype_of(1, x)
    eps = as_dtype_of(eps, x)
    for n in range(M):
        x0 = x[n, 0]
        s = zero
        for j in range(F):
            s += x[n, j] - x0
        mean = x0 + s / f
        v = zero
        for j in range(F):
            d = x[n, j] - mean
            v += d * d
        r = one / np.sqrt(v / f + eps)
        inv_std[n] = r
        for j in range(F):
            xhat[n, j] = (x[n, j] - mean) * r
        for j in range(F):
            y[n, j] = gain[j] * xhat[n, j] + shift[j]


@njit(error_model="numpy")
def ln_forward_2d_strict(x, gain, shift, eps):
    # The allocating wrapper, as layernorm.ln_forward_2d.
    y, xhat, inv_std = np.empty_like(x), np.empty_like(x), np.empty(x.shape[0], dtype=x.dtype)
    ln_forward_2d_into_strict(x, gain, shift, eps, y, xhat, inv_std)
    return y, xhat, inv_std


def lever_reassoc(rng):
    print('6. Layer norm with reassociated row sums (fastmath={"reassoc"}): summing in eight')
    print("   lanes rounds differently, which IEEE order forbids unless allowed, so the strict")
    print("   sums run one value at a time")
    print(table_head())
    for F in (4 * H, H):
        x = (rng.standard_normal((B, F)) + 3).astype(np.float32)
        gain = rng.standard_normal(F).astype(np.float32)
        shift = rng.standard_normal(F).astype(np.float32)
        for a, b in zip(
            ln_forward_2d_strict(x, gain, shift, 1e-5), ln_forward_2d(x, gain, shift, 1e-5)
        ):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)  # a rounding error apart
        (t_before, t_after), (_, ratio) = paired(
            [
                functools.partial(ln_forward_2d_strict, x, gain, shift, 1e-5),
                functools.partial(ln_forward_2d, x, gain, shift, 1e-5),
            ],
            repeats=200,
            number=50,
        )
        print(
            row(
                f"ln_forward_2d on ({B}, {F}) float32",
                1e6 * t_before,
                1e6 * t_after,
                ratio,
                "us per call",
            )
        )


# ---------------------------------------------------------------- lever 7


def batchnorm_images_before(x, gamma, beta, dy):
    """The way images went through batch norm before: the batch copied to
    (N*H*W, C), the 2-D core, and the result copied back; the same for backward."""
    y2, xhat, inv_std, _, _ = bn_train_2d(to_2d(x), gamma, beta, 1e-3)
    y = from_2d(y2, x.shape)
    dx2, dgamma, dbeta = bn_backward_2d(to_2d(dy), xhat, inv_std, gamma)
    return y, from_2d(dx2, x.shape), dgamma, dbeta


def batchnorm_images_after(x, gamma, beta, dy):
    y, cache = batchnorm_forward(x, gamma, beta, eps=1e-3)
    return (y, *batchnorm_backward(dy, cache))


def lever_batchnorm_images(rng):
    print("7. Batch norm of images, forward and backward: copied to (N*H*W, C) and back")
    print("   around the 2-D core before, kernels that read each channel in place after")
    print("   (the CNN's two batch norms, batch 100)")
    keep_freed_memory()  # as in training: the copies would page-fault otherwise
    print(table_head())
    for shape in ((100, 32, 26, 26), (100, 64, 11, 11)):
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        gamma = rng.uniform(0.5, 1.5, shape[1]).astype(np.float32)
        beta = rng.standard_normal(shape[1]).astype(np.float32)
        args = (x, gamma, beta, dy)
        for a, b in zip(batchnorm_images_before(*args), batchnorm_images_after(*args)):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-3 * np.abs(a).max())
        (t_before, t_after), (_, ratio) = paired(
            [
                functools.partial(batchnorm_images_before, *args),
                functools.partial(batchnorm_images_after, *args),
            ],
            repeats=60,
        )
        print(row(f"batch norm of {shape}", 1e3 * t_before, 1e3 * t_after, ratio, "ms"))


# ---------------------------------------------------------------- lever 8


def lever_conv_input_grad(rng):
    print("8. No input gradient for the CNN's first convolution (its input is the images):")
    print("   the product W_2^T delta and col2im skipped (batch 100, 1 -> 32 channels, 3x3)")
    x = rng.random((100, 1, 28, 28), dtype=np.float32)
    W = (0.3 * rng.standard_normal((32, 1, 3, 3))).astype(np.float32)
    b = np.zeros(32, np.float32)
    out, cache = conv2d_forward(x, W, b)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, dW, db = conv2d_backward(dout, cache)
    none, dW_data, db_data = conv2d_backward(dout, cache, input_grad=False)
    assert dx.shape == x.shape and none is None
    np.testing.assert_array_equal(dW_data, dW)
    np.testing.assert_array_equal(db_data, db)
    (t_before, t_after), (_, ratio) = paired(
        [
            functools.partial(conv2d_backward, dout, cache),
            functools.partial(conv2d_backward, dout, cache, input_grad=False),
        ],
        repeats=60,
    )
    print(table_head())
    print(row("conv2d_backward, first layer", 1e3 * t_before, 1e3 * t_after, ratio, "ms"))


# ---------------------------------------------------------------- levers 9 and 10


def lever_compiled_pool_and_col2im(rng):
    print("9. Max-pool's backward and col2im as compiled loops, one pass over the data,")
    print("   against their strided NumPy twins (a pass per window offset); the CNN's shapes,")
    print("   batch 100")
    print(table_head())
    for shape in ((100, 32, 26, 26), (100, 64, 11, 11)):
        x = rng.standard_normal(shape).astype(np.float32)
        out, cache = maxpool2d_forward(x, 2)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        args = (dout, cache)
        np.testing.assert_array_equal(maxpool2d_backward(*args), maxpool2d_backward_strided(*args))
        (t_before, t_after), (_, ratio) = paired(
            [
                functools.partial(maxpool2d_backward_strided, *args),
                functools.partial(maxpool2d_backward, *args),
            ],
            repeats=60,
        )
        print(row(f"max-pool backward of {shape}", 1e3 * t_before, 1e3 * t_after, ratio, "ms"))
    C, N, OH = 32, 100, 11  # the second convolution's input gradient
    dcols = rng.standard_normal((C * 9, N * OH * OH)).astype(np.float32)
    padded = (N, C, OH + 2, OH + 2)

    def compiled():
        dxp = np.zeros(padded, np.float32)
        add_window_copies(dcols, 3, 3, (1, 1), OH, OH, dxp)
        return dxp

    twin = functools.partial(col2im, dcols, padded, 3, 3, (1, 1), OH, OH)
    np.testing.assert_allclose(compiled(), twin(), rtol=1e-6, atol=1e-5)
    (t_before, t_after), (_, ratio) = paired([twin, compiled], repeats=60)
    print(row(f"col2im into {padded}", 1e3 * t_before, 1e3 * t_after, ratio, "ms"))


# ---------------------------------------------------------------- main


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Tee:
    """A stream that writes to several (the terminal and the results file)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="What each speed lever of the kernels gives: the code before and after it."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "levers.txt",
        help="where to write the tables (default: results/levers.txt here)",
    )
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as out, contextlib.redirect_stdout(Tee(sys.stdout, out)):
        run_levers()
    print(f"wrote {args.out}")


def run_levers():
    start = time.perf_counter()
    print(f"minirnn speed levers, {datetime.datetime.now():%Y-%m-%d %H:%M}")
    print(
        f"CPU {cpu_model()} ({platform.machine()}, {os.cpu_count()} cores), "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}; "
        f"one BLAS thread; ratio = before / after (median of per-repeat ratios)"
    )
    rng = np.random.default_rng(0)
    with blas_threads(1):
        for lever in (
            lambda: lever_loop_range(rng),
            lambda: lever_split_loops(rng),
            lever_freed_memory,
            lambda: lever_subnormals(rng),
            lambda: lever_input_grad(rng),
            lambda: lever_reassoc(rng),
            lambda: lever_batchnorm_images(rng),
            lambda: lever_conv_input_grad(rng),
            lambda: lever_compiled_pool_and_col2im(rng),
        ):
            print()
            lever()
            sys.stdout.flush()
    print(
        f"\n{time.perf_counter() - start:.0f} s in all, load average at the end "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
