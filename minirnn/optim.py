r"""Optimizers and gradient-norm clipping for plain ``name -> array`` dicts.

A model exposes two dicts with the same keys, ``params`` and ``grads``. An optimizer
keeps a reference to ``params`` and, on ``step(grads)``, changes every parameter array
*in place*, so that a model, a cell or a test holding the same array sees the new
values. Per-parameter state (velocities, moments) is created with the parameter's
dtype, and the hyperparameters are cast to that dtype before use, so float32 training
stays float32 all the way through.

Symbols, used alike below and in the code: $\theta$ a parameter, $g$ its gradient,
$\eta$ the learning rate ``lr``, $t$ the step count (1 on the first step), all
operations elementwise.

SGD
    $\theta \leftarrow \theta - \eta\, g$

Momentum (``mu`` = ``momentum``; PyTorch's convention, ``dampening=0``)
    $v \leftarrow \mu v + g$, then
    $\theta \leftarrow \theta - \eta\, v$, or with Nesterov
    $\theta \leftarrow \theta - \eta\,(g + \mu v)$ using the *new* $v$.

    $v$ starts at zero, so plain momentum's first step is plain SGD (Nesterov's is
    $\eta (1 + \mu) g$). Other texts write
    $v \leftarrow \mu v - \eta g;\ \theta \leftarrow \theta + v$; the two agree while
    $\eta$ is constant and differ once a schedule changes $\eta$ (here a new $\eta$
    scales the whole accumulated velocity at once).

Adam (Kingma & Ba 2015, Algorithm 1; the same as PyTorch)
    $t \leftarrow t + 1$,
    $m \leftarrow \beta_1 m + (1 - \beta_1)\, g$,
    $v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2$,
    $\hat m = m / (1 - \beta_1^t)$, $\hat v = v / (1 - \beta_2^t)$,
    $\theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$.

    Defaults $\eta = 10^{-3}$, $\beta_1 = 0.9$, $\beta_2 = 0.999$, $\epsilon = 10^{-8}$
    are the paper's and PyTorch's. (Keras uses $\epsilon = 10^{-7}$ in the paper's
    "epsilon hat" form, added to $\sqrt{v_t}$ before bias correction, which differs
    slightly.) The bias correction makes the first step move every coordinate with
    a nonzero gradient by almost exactly $\eta\,\mathrm{sign}(g)$.

RMSProp (Hinton 2012; ``rho`` = $\rho$)
    $v \leftarrow \rho v + (1 - \rho)\, g^2$,
    $\theta \leftarrow \theta - \eta\, g / (\sqrt{v} + \epsilon)$.

    Defaults $\eta = 10^{-3}$, $\rho = 0.9$, $\epsilon = 10^{-7}$ are Keras's.
    $\epsilon$ sits *outside* the square root, as in PyTorch (whose defaults are
    $\eta = 10^{-2}$, $\alpha = 0.99$, $\epsilon = 10^{-8}$). Keras and TensorFlow put
    it inside, $\sqrt{v + \epsilon}$, so with the same numbers the two agree while
    $v \gg \epsilon$ and differ for coordinates whose gradients are ~0.
    No bias correction: $v$ starts at zero, so the first step moves each coordinate
    by about $\eta / \sqrt{1 - \rho} \approx 3.16\,\eta$.

Clipping
    ``clip_grad_norm(grads, c)`` computes $n = \sqrt{\sum_k \lVert g_k \rVert_2^2}$
    over all arrays and, if $n > c$, scales every gradient by $c / n$.

Schedules
    ``exponential_lr`` gives the learning rate of a step that decays geometrically
    over a run; ``sharpness_at`` the mask sharpness $\lambda$ of the
    variable-computation cells, raised over training (``minirnn/cells/vcrnn.py``).

``lr`` is a plain public attribute; a training loop may change it between steps.
``state_dict()`` / ``load_state_dict()`` save and restore everything needed to
continue a run bit-identically (hyperparameters, step count, per-parameter buffers).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from numba import njit

from .types import Grads, Params

__all__ = [
    "Optimizer",
    "SGD",
    "Momentum",
    "Adam",
    "RMSProp",
    "clip_grad_norm",
    "exponential_lr",
    "sharpness_at",
    "make_optimizer",
    "OPTIMIZERS",
]


def _check_same_arrays(what, expected, given):
    """Raise a ValueError naming the first key or shape by which ``given`` differs.

    ``expected`` maps names to shapes; ``given`` maps names to arrays.
    """
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{what} keys do not match the parameters: missing {missing}, unexpected {extra}"
        )
    for key, shape in expected.items():
        got = np.shape(given[key])
        if got != shape:
            raise ValueError(
                f"{what}[{key!r}] has shape {got}, but parameter {key!r} has shape {shape}"
            )


class Optimizer(ABC):
    """Base class: holds ``params``, ``lr`` and the per-parameter state buffers.

    A subclass sets ``name`` (the kind recorded in a state dict), ``hyper`` (the
    names of its scalar hyperparameters, saved in the state dict), ``buffers`` (the
    names of its per-parameter arrays, each a dict ``key -> array``) and writes
    ``_update(key, p, g)``.
    """

    name = "optimizer"
    hyper = ()
    buffers = ()

    def __init__(self, params: Params, lr: float) -> None:
        if not isinstance(params, dict):
            raise TypeError(
                f"params must be a dict name -> np.ndarray, got {type(params).__name__}"
            )
        for key, p in params.items():
            # Anything but a floating ndarray cannot be updated in place.
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(
                    f"params[{key!r}] must be a floating-point np.ndarray, "
                    f"got {type(p).__name__} {getattr(p, 'dtype', '')}".rstrip()
                )
        _check_nonnegative("lr", lr)
        self.params = params
        self.lr = lr
        # Remember the layout the buffers were built for, so that a params dict
        # changed behind our back is reported instead of silently broadcast.
        self._shapes = {key: p.shape for key, p in params.items()}
        for buf in self.buffers:
            setattr(self, buf, {key: np.zeros_like(p) for key, p in params.items()})

    def step(self, grads: Grads) -> None:
        """Update every parameter in place from ``grads`` (same keys and shapes)."""
        _check_same_arrays("params", self._shapes, self.params)
        _check_same_arrays("grads", self._shapes, grads)
        self._begin_step()
        for key, p in self.params.items():
            # Computing in the parameter's dtype keeps float32 training in float32
            # even if a gradient or a scheduled lr arrives as float64.
            g = np.asarray(grads[key], dtype=p.dtype)
            self._update(key, p, g)

    def _begin_step(self):  # noqa: B027  (a hook: most optimizers need nothing here)
        """Hook for state shared by all parameters (Adam's step count)."""

    @abstractmethod
    def _update(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        """Update one parameter ``p`` in place from its gradient ``g``."""

    # -- checkpoints ----------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: kind, lr, hyperparameters, buffers (copies)."""
        state = {"name": self.name, "lr": float(self.lr)}
        for h in self.hyper:
            value = getattr(self, h)
            state[h] = value if isinstance(value, (bool, int)) else float(value)
        for buf in self.buffers:
            # Copies: a snapshot must not change when training continues.
            state[buf] = {key: a.copy() for key, a in getattr(self, buf).items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict()`` of the same kind and parameter layout, exactly."""
        kind = state.get("name") if isinstance(state, dict) else None
        if kind != self.name:
            raise ValueError(
                f"state belongs to optimizer {kind!r}, cannot load it into {self.name!r}"
            )
        needed = ("lr",) + tuple(self.hyper) + tuple(self.buffers)
        absent = [k for k in needed if k not in state]
        if absent:
            raise ValueError(f"{self.name} state is missing entries {absent}")
        for buf in self.buffers:
            _check_same_arrays(f"state[{buf!r}]", self._shapes, state[buf])
        # Everything is validated before anything is written, so a bad state
        # leaves the optimizer as it was.
        self.lr = state["lr"]
        for h in self.hyper:
            setattr(self, h, state[h])
        for buf in self.buffers:
            for key, a in getattr(self, buf).items():
                np.copyto(a, state[buf][key], casting="same_kind")

    def __repr__(self):
        args = ", ".join(f"{h}={getattr(self, h)!r}" for h in ("lr",) + tuple(self.hyper))
        return f"{type(self).__name__}({args})"


def _check_nonnegative(name, value):
    if not (isinstance(value, (int, float, np.floating, np.integer)) and value >= 0):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def _check_unit_interval(name, value):
    if not (isinstance(value, (int, float, np.floating, np.integer)) and 0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


class SGD(Optimizer):
    r"""Plain gradient descent: $\theta \leftarrow \theta - \eta g$."""

    name = "sgd"

    def __init__(self, params: Params, lr: float = 0.01) -> None:
        super().__init__(params, lr)

    def _update(self, key, p, g):
        p -= p.dtype.type(self.lr) * g


class Momentum(Optimizer):
    r"""Heavy-ball or Nesterov momentum, in PyTorch's convention.

    $v \leftarrow \mu v + g$; $\theta \leftarrow \theta - \eta v$, or with
    ``nesterov=True`` $\theta \leftarrow \theta - \eta (g + \mu v)$.
    Defaults ``lr=0.01, momentum=0.9``. State: ``v`` per parameter.
    """

    name = "momentum"
    hyper = ("momentum", "nesterov")
    buffers = ("v",)

    def __init__(
        self, params: Params, lr: float = 0.01, momentum: float = 0.9, nesterov: bool = False
    ) -> None:
        _check_unit_interval("momentum", momentum)
        super().__init__(params, lr)
        self.momentum = momentum
        self.nesterov = bool(nesterov)

    def _update(self, key, p, g):
        lr, mu = p.dtype.type(self.lr), p.dtype.type(self.momentum)
        v = self.v[key]
        v *= mu
        v += g
        if self.nesterov:
            # Look ahead: the gradient step plus where the velocity is carrying us.
            p -= lr * (g + mu * v)
        else:
            p -= lr * v


class Adam(Optimizer):
    r"""Adam with bias correction (Kingma & Ba 2015, Algorithm 1).

    $m \leftarrow \beta_1 m + (1-\beta_1) g$, $v \leftarrow \beta_2 v + (1-\beta_2) g^2$,
    $\theta \leftarrow \theta - \eta \hat m / (\sqrt{\hat v} + \epsilon)$ with
    $\hat m = m / (1-\beta_1^t)$, $\hat v = v / (1-\beta_2^t)$.
    Defaults (paper, PyTorch): ``lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8``.
    State: step count ``t`` and ``m``, ``v`` per parameter.
    """

    name = "adam"
    hyper = ("beta1", "beta2", "eps", "t")
    buffers = ("m", "v")

    def __init__(
        self,
        params: Params,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        _check_unit_interval("beta1", beta1)
        _check_unit_interval("beta2", beta2)
        _check_nonnegative("eps", eps)
        super().__init__(params, lr)
        for key, p in params.items():
            if not p.flags.c_contiguous:  # adam_kernel updates it as one flat array
                raise TypeError(
                    f"params[{key!r}]: Adam updates each parameter in place as "
                    f"one flat array, so it must be C-contiguous; got a view "
                    f"with strides {p.strides}"
                )
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0

    def _begin_step(self):
        # One count for the whole step: every parameter shares the same t.
        self.t += 1

    def _update(self, key, p, g):
        dt = p.dtype.type
        # The moments start at zero and so underestimate early on; dividing by
        # (1 - beta^t) removes exactly that bias.
        adam_kernel(
            p.reshape(-1),
            np.ascontiguousarray(g).reshape(-1),
            self.m[key].reshape(-1),
            self.v[key].reshape(-1),
            dt(self.lr),
            dt(self.beta1),
            dt(1 - dt(self.beta1)),
            dt(self.beta2),
            dt(1 - dt(self.beta2)),
            dt(1 - self.beta1**self.t),
            dt(1 - self.beta2**self.t),
            dt(self.eps),
        )


@njit(cache=True, error_model="numpy")
def adam_kernel(p, g, m, v, lr, b1, one_minus_b1, b2, one_minus_b2, c1, c2, eps):
    """Adam's update of one parameter, entry by entry, in one pass: p, g, m, v are
    flat arrays of one dtype, the scalars of that dtype, c1 = 1 - beta1^t and
    c2 = 1 - beta2^t. The same operations in the same order as the equations
    above (NumPy's whole-array form of them made six temporary arrays and took
    0.18 ms per step for an LSTM's 53,000 parameters)."""
    for k in range(p.size):
        m[k] = b1 * m[k] + one_minus_b1 * g[k]
        v[k] = b2 * v[k] + one_minus_b2 * (g[k] * g[k])
        p[k] -= lr * (m[k] / c1) / (np.sqrt(v[k] / c2) + eps)


class RMSProp(Optimizer):
    r"""RMSProp without momentum: $v \leftarrow \rho v + (1-\rho) g^2$,
    $\theta \leftarrow \theta - \eta g / (\sqrt{v} + \epsilon)$.

    Defaults are Keras's (``lr=1e-3, rho=0.9, eps=1e-7``); PyTorch's are
    ``lr=1e-2, alpha=0.99, eps=1e-8``. ``eps`` is added *outside* the square root,
    as in PyTorch; Keras/TensorFlow add it inside, $\sqrt{v + \epsilon}$.
    State: ``v`` per parameter.
    """

    name = "rmsprop"
    hyper = ("rho", "eps")
    buffers = ("v",)

    def __init__(
        self, params: Params, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-7
    ) -> None:
        _check_unit_interval("rho", rho)
        _check_nonnegative("eps", eps)
        super().__init__(params, lr)
        self.rho, self.eps = rho, eps

    def _update(self, key, p, g):
        dt = p.dtype.type
        rho = dt(self.rho)
        v = self.v[key]
        v *= rho
        v += (1 - rho) * (g * g)
        p -= dt(self.lr) * g / (np.sqrt(v) + dt(self.eps))


def clip_grad_norm(grads: Grads, max_norm: float) -> float:
    """Scale all gradients in place so that their global L2 norm is at most ``max_norm``.

    The norm is taken over every array together, as if they were one vector. When it
    exceeds ``max_norm`` each gradient is multiplied by ``max_norm / norm`` (PyTorch's
    ``clip_grad_norm_`` adds 1e-6 to the denominator; here the clipped norm is
    ``max_norm`` itself). Returns the norm *before* clipping, as a Python float.

    A non-finite norm (an inf or nan gradient) is returned as is and the gradients are
    left untouched, since scaling would only turn them all into nan or 0; the caller
    should check ``math.isfinite`` and skip the step.
    """
    if not (isinstance(max_norm, (int, float, np.floating, np.integer)) and max_norm > 0):
        raise ValueError(f"max_norm must be a number > 0, got {max_norm!r}")
    # Squares summed in float64: float32 sums of many large squares overflow early.
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / total
        for g in grads.values():
            g *= g.dtype.type(scale)
    return total


def exponential_lr(step: int, lr: float, lr_end: float, total_steps: int) -> float:
    r"""The learning rate of update ``step`` (0 for the first) when it falls
    geometrically from ``lr`` at the first update to ``lr_end`` at the last
    (update ``total_steps - 1``):

    $$\eta_s = \eta_0 \left(\frac{\eta_{\text{end}}}{\eta_0}\right)^{s / (S - 1)},$$

    the same factor every step (TensorFlow's ``exponential_decay`` without
    staircase, PyTorch's ``ExponentialLR`` stepped every batch). Steps past the
    last keep ``lr_end``; a one-step run uses ``lr``.
    """
    if not (lr > 0 and lr_end > 0):
        raise ValueError(f"learning rates: expected lr > 0 and lr_end > 0, got {lr} and {lr_end}")
    if total_steps < 1:
        raise ValueError(f"total_steps: expected a positive integer, got {total_steps}")
    if total_steps == 1:
        return float(lr)
    fraction = min(step, total_steps - 1) / (total_steps - 1)
    return float(lr * (lr_end / lr) ** fraction)


def sharpness_at(step: int, start: float, end: float, steps: int, kind: str = "linear") -> float:
    """The sharpness lambda at training step ``step`` of a schedule from ``start``
    (step 0) to ``end`` (step ``steps`` and after).

    ``kind="linear"``: ``start + (end - start) * min(step / steps, 1)``.
    ``kind="exponential"``: geometric, ``start * (end / start) ** min(step / steps, 1)``,
    the same factor per step (a scale parameter's natural interpolation).

    A small lambda at the start gives a wide identity band, many units with a
    gradient to the scheduler; a large one at the end makes the masks (almost)
    binary, the computation the model is evaluated and timed with.
    """
    if steps <= 0:
        raise ValueError(f"sharpness_at: steps must be > 0, got {steps}")
    if start <= 0 or end <= 0:
        raise ValueError(f"sharpness_at: start and end must be > 0, got {start}, {end}")
    frac = min(max(step, 0) / steps, 1.0)
    if kind == "linear":
        return start + (end - start) * frac
    if kind == "exponential":
        return start * (end / start) ** frac
    raise ValueError(f"sharpness_at: kind must be 'linear' or 'exponential', got {kind!r}")


OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Momentum,
    "adam": Adam,
    "rmsprop": RMSProp,
}


def make_optimizer(name: str, params: Params, lr: float | None = None, **kwargs) -> Optimizer:
    """Build an optimizer by name: ``sgd``, ``momentum``, ``nesterov``, ``adam``, ``rmsprop``.

    ``lr=None`` keeps the optimizer's own default; other keyword arguments are passed
    through (``nesterov`` is ``momentum`` with ``nesterov=True``).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names are {', '.join(OPTIMIZERS)}")
    if key == "nesterov":
        if not kwargs.get("nesterov", True):
            raise ValueError("make_optimizer('nesterov', ...) cannot take nesterov=False")
        kwargs["nesterov"] = True
    if lr is not None:
        kwargs["lr"] = lr
    return OPTIMIZERS[key](params, **kwargs)
