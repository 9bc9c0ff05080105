"""Small synthetic sequence tasks that train in seconds.

Sine to cosine (many-to-many regression)
----------------------------------------
The Stack Overflow BN-in-LSTM question builds a cell that emits an output at every
step and maps each one through a shared dense layer to a prediction of the same size
as the input, trained on (batch, time, input) windows. The classic task for that
setup: read a window of sin(t) and predict cos(t) at every step.

Every sequence starts at its own random phase phi, drawn uniformly from [0, 2*pi),
and advances by ``step_size`` radians per step:

    t_k   = phi + k * step_size,    k = 0 .. steps-1
    x[k]  = sin(t_k)
    y[k]  = cos(t_k) = sin(t_k + pi/2)

The target leads the input by a quarter period, so a model must know where it is on
the wave, not just copy the current value: sin(t) = 0 occurs with cos(t) = +1 and with
cos(t) = -1, and only the direction of travel, visible in earlier steps, tells them
apart. The default step size pi/10 puts 20 steps in one period.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SINE_STEP_SIZE", "sine_cos_dataset"]

SINE_STEP_SIZE = np.pi / 10


def sine_cos_dataset(n, steps, *, seed=0, step_size=SINE_STEP_SIZE, dtype=np.float32):
    """Windows of sin(t) as input, cos(t) at every step as target.

    n:         number of sequences
    steps:     time steps per sequence, T
    seed:      seeds the start phases; the same seed gives the same data
    step_size: radians per step (default pi/10, i.e. 20 steps per period)
    returns:
      x: (n, T, 1) dtype, x[i, k, 0] = sin(phi_i + k * step_size)
      y: (n, T, 1) dtype, y[i, k, 0] = cos(phi_i + k * step_size)
    with phi_i uniform in [0, 2*pi).
    """
    if n < 0 or steps < 1:
        raise ValueError(f"expected n >= 0 and steps >= 1, got n={n} and steps={steps}")
    phases = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, size=(n, 1))
    t = phases + step_size * np.arange(steps)  # (n, T), in float64 for accuracy
    return np.sin(t)[..., None].astype(dtype), np.cos(t)[..., None].astype(dtype)
