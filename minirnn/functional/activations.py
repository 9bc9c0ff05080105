"""Elementwise nonlinearities: sigmoid, tanh, relu.

Two kinds of function live here:

* the scalar ``sigmoid(a)`` and ``tanh(a)`` that the compiled cell kernels call
  once per unit inside their loops over (batch, hidden);
* the array pairs ``*_forward(x) -> (out, cache)`` / ``*_backward(dout, cache)``.

The local derivatives are written in terms of the *output*, which is what the
caches keep and what the cells' backward passes use as well:

$$\\sigma'(a) = \\sigma(a)\\,(1 - \\sigma(a)), \\qquad \\tanh'(a) = 1 - \\tanh^2(a),
\\qquad \\mathrm{relu}'(a) = [a > 0].$$

Why the kernels have their own scalar tanh: inside a Numba loop, ``math.tanh``
is a call into the C library for every element, about 50 times slower than
NumPy's vectorized ``np.tanh`` (15 ns against 0.3 ns per float32 on this
project's CI machine). For float32, the kernels therefore use a rational
approximation, ``tanh(x) ~ x P(x^2) / Q(x^2)`` on ``|x| < 7.905`` and ``+-1``
beyond (the coefficients of Eigen's float32 ``ptanh``), which the compiler turns
into SIMD code; its error is within 3e-7 of the exact value, the size of
float32 rounding. float64, the precision of the gradient checks, uses the exact
``math.tanh``. Under ``NUMBA_DISABLE_JIT=1`` both dtypes use ``math.tanh``.
"""

import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

_f32 = np.float32
_HALF = _f32(0.5)
_ONE = _f32(1.0)

# Eigen's float32 tanh: odd numerator of degree 13, even denominator of degree 6.
_P1, _P3, _P5, _P7, _P9, _P11, _P13 = map(
    _f32,
    (
        4.89352455891786e-03,
        6.37261928875436e-04,
        1.48572235717979e-05,
        5.12229709037114e-08,
        -8.60467152213735e-11,
        2.00018790482477e-13,
        -2.76076847742355e-16,
    ),
)
_Q0, _Q2, _Q4, _Q6 = map(
    _f32, (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
)
_CLAMP = _f32(7.90531110763549805)  # beyond it tanh rounds to +-1 in float32


@register_jitable(error_model="numpy")
def tanh_float32(x):
    """Rational approximation of tanh for a float32 scalar (see the module notes)."""
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x * (_P1 + x2 * (_P3 + x2 * (_P5 + x2 * (_P7 + x2 * (_P9 + x2 * (_P11 + x2 * _P13))))))
    q = _Q0 + x2 * (_Q2 + x2 * (_Q4 + x2 * _Q6))
    return p / q


def tanh(a):
    """Scalar tanh for the kernels: exact in float64, approximated in float32.

    This Python body runs only under ``NUMBA_DISABLE_JIT=1``; it keeps the NumPy
    scalar type of ``a`` so that float64 stays float64 in the kernels' arithmetic.
    """
    return type(a)(math.tanh(a)) if isinstance(a, np.floating) else math.tanh(a)


@overload(tanh, jit_options={"error_model": "numpy"})
def _tanh_compiled(a):
    if a == types.float32:
        return lambda a: tanh_float32(a)
    return lambda a: math.tanh(a)


def sigmoid(a):
    """Scalar logistic sigmoid for the kernels, as ``(1 + tanh(a/2)) / 2``.

    The tanh form never overflows (``1 / (1 + exp(-a))`` computes ``exp(1000)``
    for ``a = -1000``) and costs one transcendental call, like the exp form.
    """
    return tanh(a * 0.5) * 0.5 + 0.5


@overload(sigmoid, jit_options={"error_model": "numpy"})
def _sigmoid_compiled(a):
    # Compiled, a literal 0.5 is float64: float32 needs its own constants.
    if a == types.float32:
        return lambda a: _HALF * tanh_float32(_HALF * a) + _HALF
    return lambda a: 0.5 * math.tanh(0.5 * a) + 0.5


def sigmoid_forward(x):
    """x: any shape -> (s, cache) with s = sigmoid(x), by the same tanh form."""
    s = _HALF * np.tanh(_HALF * x) + _HALF
    return s, s


def sigmoid_backward(dout, cache):
    """dout: like x -> dx = dout * s * (1 - s)."""
    s = cache
    return dout * s * (_ONE - s)


def tanh_forward(x):
    """x: any shape -> (t, cache) with t = tanh(x)."""
    t = np.tanh(x)
    return t, t


def tanh_backward(dout, cache):
    """dout: like x -> dx = dout * (1 - t^2)."""
    t = cache
    return dout * (_ONE - t * t)


def relu_forward(x):
    """x: any shape -> (max(x, 0), cache)."""
    out = np.maximum(x, 0)
    return out, x > 0


def relu_backward(dout, cache):
    """dout: like x -> dx = dout where x > 0, else 0 (the subgradient at 0 is 0)."""
    return dout * cache
