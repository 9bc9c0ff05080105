r"""Using every core: the batch split across threads.

In most models the examples of a batch do not meet: each example's forward and
backward pass read the parameters and nothing of the other examples, and the
loss is a mean over the examples. Cut the batch of $N$ examples into shards of
$N_s$ examples and let $L_s$ be the mean loss of shard $s$:

```math
L = \frac{1}{N} \sum_n \ell_n = \sum_s \frac{N_s}{N} L_s ,
\qquad
\frac{\partial L}{\partial \theta} = \sum_s \frac{N_s}{N} \frac{\partial L_s}{\partial \theta} .
```

So each shard runs the model's whole forward and backward pass on a thread of
its own, on a copy of the model that shares the parameters (read only) and has
its own caches and gradients; at the end the shard gradients are weighted and
added into ``model.grads``. The threads meet once per step. The calling thread
is one of them, and each thread takes the next shard nobody has taken yet, so a
thread that starts late (a core that was idle for a few milliseconds can take
that long to come back) leaves its share to the others. Splitting each
matrix product across BLAS threads instead meets at every product, 56 times in
an LSTM step at 28 steps, each product too small ((64, 100) by (100, 400)) to
repay it; ``benchmarks/threads.py`` measures both.

**The same bits for any thread count.** The batch is always cut into the same
``SHARDS`` pieces (fewer only when the batch is smaller), whatever the number of
threads; each shard computes alone, with one BLAS thread and subnormals
flushed, and the shard gradients are added in shard order on the calling
thread. Which thread ran which shard changes nothing, so any number of
threads gives bit-identical parameters (``tests/test_parallel.py``). The
rounding is that of the shards: the unsplit batch gives the same gradients to
float rounding, not to the bit.

**Too small to split.** A recurrent model whose shards would each do fewer than
``MIN_SHARD_FLOP`` (50 million) floating-point operations in their matrix
products runs whole on the calling thread: the RNN on row-MNIST (34 million per
shard) does, the GRU and the LSTM (103 and 138 million) and anything at
pixel-MNIST's length do not. The rule reads the model and the batch, never the
thread count, so results still do not depend on the number of threads.

**The CNN with batch norm runs in segments.** Its batch norms need the whole
batch's statistics, and nothing else in it mixes the examples. So the runs of
layers between two batch norms (convolution, ReLU, max-pool, the dense head) run
on the shards in parallel, and each batch norm, forwards and backwards, on the
whole batch, its input gathered from the shards and its output cut into them
again; the loss is taken on the whole batch. The shards' weight gradients are
added in shard order: the same bits for any thread count here too
(``can_segment``, ``segments``).

**What cannot be split** keeps one shard, the whole batch on the calling thread,
exactly as ``model.loss_and_backward``:

- batch statistics in a recurrent model (the BN-LSTM, batch norm on a layer's
  outputs): each example's output depends on the whole batch's mean and
  variance, at every timestep;
- random draws in the forward pass (dropout, recurrent dropout): a shard would
  draw its masks from another part of the stream than the batch does.

**The GIL.** Threads compute at the same time only where Python's global
interpreter lock is released: in NumPy's large operations and products, and in
the cells' compiled timestep loops (``njit(nogil=True)``). The Python between
them, the layers and the loss, runs one thread at a time, and that bounds the
speed-up.

Use it as ``python -m minirnn train`` does::

    step = ShardedStep(model, threads=2)        # default: MINIRNN_THREADS or every core
    with blas_threads(1), flush_subnormals():
        loss, out = step(x, y)                  # gradients in model.grads
        optimizer.step(model.grads)
    step.close()
"""

import copy
import functools
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import OptionError
from .nn.cnn import CNNClassifier
from .nn.conv import Conv2D, Flatten, MaxPool2D, ReLU
from .nn.layers import Dense, Dropout, Recurrent
from .nn.models import SequenceClassifier, SequenceRegressor
from .nn.normalization import BatchNorm
from .subnormals import flush_subnormals

SHARDS = 4  # pieces of every batch, whatever the number of threads
# A recurrent model whose shards would each do fewer floating-point operations than
# this in their matrix products runs whole: the Python around each shard's compiled
# loops then costs more than another core saves (the RNN on row-MNIST, 34 million
# per shard, took 1.3 times as long split over two threads as whole on one).
MIN_SHARD_FLOP = 50e6

# Layers whose output for one example depends on that example alone and that draw
# nothing random (Dropout and Recurrent are checked further in can_split).
_PER_EXAMPLE = (Dense, Conv2D, ReLU, MaxPool2D, Flatten, Dropout, Recurrent)


def default_threads():
    """The threads a training step uses: ``MINIRNN_THREADS`` if set, else every
    core this process may run on."""
    value = os.environ.get("MINIRNN_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise OptionError(f"MINIRNN_THREADS: expected a positive integer, got {value!r}")
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_split(model):
    """Whether ``model``'s loss is a mean of per-example terms that each depend on
    one example alone, and its forward pass draws nothing random: a sequence
    model or the CNN whose layers have no batch statistics and no dropout."""
    if not isinstance(model, (SequenceClassifier, SequenceRegressor, CNNClassifier)):
        return False
    for layer in model.layers:
        if not isinstance(layer, _PER_EXAMPLE):
            return False  # BatchNorm, or a layer we know nothing about
        if isinstance(layer, Dropout) and layer.p > 0:
            return False
        if isinstance(layer, Recurrent) and (
            layer.stats is not None or layer.forward_options.get("recurrent_dropout")
        ):
            return False
    return True


def can_segment(model):
    """Whether ``model`` is a CNN whose only layers that mix the examples are batch
    norms (and that draws nothing random): it then runs in segments, the layers
    between two batch norms on shards, each batch norm on the whole batch."""
    if not isinstance(model, CNNClassifier):
        return False
    per_example = [layer for layer in model.layers if not isinstance(layer, BatchNorm)]
    return len(per_example) < len(model.layers) and all(
        isinstance(layer, _PER_EXAMPLE) and not (isinstance(layer, Dropout) and layer.p > 0)
        for layer in per_example
    )


def segments(model):
    """[(kind, layer indices)] in order: ("shards", a run of per-example layers) and
    ("whole", [the index of one batch norm])."""
    plan = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, BatchNorm):
            plan.append(("whole", [i]))
        elif plan and plan[-1][0] == "shards":
            plan[-1][1].append(i)
        else:
            plan.append(("shards", [i]))
    return plan


def _forward_through(layers, x):
    for layer in layers:
        x = layer.forward(x)
    return x


def _backward_through(layers, d):
    for layer in reversed(layers):
        d = layer.backward(d)
    return d


def recurrent_flop(model, x):
    """Floating-point operations of the recurrent layers' matrix products in one
    training step of x: (batch, time, ...): every weight matrix meets every example
    at every step, once forwards and twice backwards (dx and dW)."""
    batch, time = x.shape[:2]
    per_step = sum(
        p.size
        for layer in model.layers
        if isinstance(layer, Recurrent)
        for p in layer.params.values()
        if p.ndim == 2
    )
    return 3 * 2 * batch * time * per_step


def shard_bounds(batch, shards=SHARDS):
    """[(start, stop)] of min(shards, batch) consecutive pieces whose sizes differ
    by one at most (the larger first), covering range(batch)."""
    n = min(shards, batch)
    sizes = [batch // n + (k < batch % n) for k in range(n)]
    stops = np.cumsum(sizes)
    return [(int(stop - size), int(stop)) for size, stop in zip(sizes, stops)]


def replica(model):
    """A copy of ``model`` for one shard: the same layers' parameters (the very
    arrays, so an optimizer's in-place update reaches it), forward options and
    mode, with gradients and caches of its own."""
    twin = copy.copy(model)
    twin.layers = [copy.copy(layer) for layer in model.layers]
    twin.grads = {}
    for i, layer in enumerate(twin.layers):
        layer.grads = {k: np.zeros_like(g) for k, g in layer.grads.items()}
        layer.cache = None
        for key, g in layer.grads.items():
            twin.grads[f"{i}.{key}"] = g
    return twin


class ShardedStep:
    """``step(x, y)`` does what ``model.loss_and_backward(x, y)`` does, the batch
    split into ``shards`` pieces run on ``threads`` threads (see the module
    notes): returns (mean loss, output for the whole batch) and leaves the
    gradients in ``model.grads``. ``metrics()`` gives the model's metrics of the
    last step (the shards' weighted by their sizes). The CNN with batch norm runs
    in segments (``can_segment``); another model that cannot be split
    (``can_split``) runs whole on the calling thread. ``close()`` ends the
    threads. Call it with one BLAS thread (``blas_threads(1)``) when ``threads``
    is above 1, or the two kinds of threads take the cores from each other."""

    def __init__(
        self, model, *, threads=None, shards=SHARDS, flush=True, min_shard_flop=MIN_SHARD_FLOP
    ):
        self.model = model
        self.threads = default_threads() if threads is None else threads
        if self.threads < 1:
            raise OptionError(f"threads: expected a positive integer, got {self.threads}")
        self.segmented = not can_split(model) and can_segment(model)
        self.plan = segments(model) if self.segmented else None
        self.shards = shards if can_split(model) or self.segmented else 1
        self.recurrent = any(isinstance(layer, Recurrent) for layer in model.layers)
        self.last_shards = None  # the pieces the last step was cut into
        self.min_shard_flop = min_shard_flop
        self.flush = flush
        self.replicas = [replica(model) for _ in range(self.shards)] if self.shards > 1 else []
        self._pool = None
        self._weights = []

    def _in_parallel(self, tasks):
        """Run the functions ``tasks`` on the threads and return their results in
        order. The calling thread runs tasks too, and every thread takes the next
        task left: a helper thread that wakes late (an idle core can take
        milliseconds to come back) leaves its share to the others."""
        results = [None] * len(tasks)
        next_task = itertools.count()  # next() on it is atomic under the GIL

        def work():
            with flush_subnormals(self.flush):
                for k in iter(lambda: next(next_task), None):
                    if k >= len(tasks):
                        return
                    results[k] = tasks[k]()

        helpers = min(self.threads, len(tasks)) - 1
        if helpers > 0 and self._pool is None:
            self._pool = ThreadPoolExecutor(helpers, thread_name_prefix="minirnn")
        running = [self._pool.submit(work) for _ in range(helpers)]
        work()
        for future in running:
            future.result()
        return results

    def __call__(self, x, y):
        model = self.model
        bounds = shard_bounds(len(x), self.shards)
        if self.recurrent and recurrent_flop(model, x) < self.min_shard_flop * len(bounds):
            bounds = [(0, len(x))]  # too little work per shard (MIN_SHARD_FLOP)
        self.last_shards = len(bounds)
        self._weights = []
        if len(bounds) == 1:
            return model.loss_and_backward(x, y)
        for twin in self.replicas:  # the mode may have changed since
            for mine, theirs in zip(twin.layers, model.layers):
                mine.training = theirs.training
        if self.segmented:
            return self._segmented_step(model.checked_input(x), y, bounds)
        results = self._in_parallel(
            [
                functools.partial(twin.loss_and_backward, x[a:b], y[a:b])
                for twin, (a, b) in zip(self.replicas, bounds)
            ]
        )
        # weights N_s / N; the shards' gradients added in shard order, here
        self._weights = [(b - a) / len(x) for a, b in bounds]
        for key, g in model.grads.items():
            w = g.dtype.type(self._weights[0])
            np.multiply(self.replicas[0].grads[key], w, out=g)
            for k in range(1, len(bounds)):
                g += g.dtype.type(self._weights[k]) * self.replicas[k].grads[key]
        loss = sum(w * float(loss) for w, (loss, _) in zip(self._weights, results))
        return loss, np.concatenate([out for _, out in results])

    def _on_shards(self, through, indices, pieces):
        """``through`` (forwards or backwards) the layers ``indices`` of each shard's
        replica, each over its own piece, in parallel."""
        return self._in_parallel(
            [
                functools.partial(through, [twin.layers[i] for i in indices], piece)
                for twin, piece in zip(self.replicas, pieces)
            ]
        )

    def _segmented_step(self, x, y, bounds):
        """A CNN with batch norm: the runs of per-example layers on the shards, in
        parallel; each batch norm, forwards and backwards, on the whole batch; the
        loss on the whole batch. The gradients of the per-example layers are the
        sums of the shards' (the loss's 1/N is already in the shards' dlogits)."""
        model, shards = self.model, range(len(bounds))

        def cut(a):
            return [a[lo:hi] for lo, hi in bounds]

        pieces = cut(x)
        for kind, indices in self.plan:
            if kind == "whole":
                pieces = cut(model.layers[indices[0]].forward(np.concatenate(pieces)))
            else:
                pieces = self._on_shards(_forward_through, indices, pieces)
        logits = np.concatenate(pieces)
        loss, cache = model.cost_forward(logits, y)
        pieces = cut(model.cost_backward(1.0, cache))
        for kind, indices in reversed(self.plan):
            if kind == "whole":
                pieces = cut(model.layers[indices[0]].backward(np.concatenate(pieces)))
            else:
                pieces = self._on_shards(_backward_through, indices, pieces)
                if pieces[0] is None:  # the first layer computes no input gradient
                    break
        for kind, indices in self.plan:
            for i in indices if kind == "shards" else ():
                for key, g in model.layers[i].grads.items():  # added in shard order
                    np.copyto(g, self.replicas[0].layers[i].grads[key])
                    for k in shards[1:]:
                        g += self.replicas[k].layers[i].grads[key]
        return loss, logits

    def metrics(self):
        """The model's metrics of the last step: name -> float."""
        if not self._weights:
            return self.model.metrics()
        total = {}
        for w, twin in zip(self._weights, self.replicas):
            for key, value in twin.metrics().items():
                total[key] = total.get(key, 0.0) + w * float(value)
        return total

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
