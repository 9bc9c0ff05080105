"""Names for the types in the public signatures.

A cell, a functional op and a layer pass the same few kinds of value around;
these aliases name them once, so that a signature says what it takes::

    def forward(params: Params, x: np.ndarray, state: State | None = None, ...
                ) -> tuple[np.ndarray, Cache]

They are plain aliases (a ``Params`` is a ``dict`` like any other), for the reader
and for type checkers; nothing checks them at run time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Params = dict[str, np.ndarray]
"""Parameters by name, e.g. ``{"W": (input, 4*hidden), "U": ..., "b": ...}``."""

Grads = dict[str, np.ndarray]
"""Gradients: the keys and shapes of ``Params`` (and ``"h0"``, ``"c0"`` when the
forward pass was given an initial state)."""

Shapes = dict[str, tuple[int, ...]]
"""The shape of each parameter, by name (a cell's ``param_shapes``)."""

Cache = dict[str, Any]
"""What a forward pass keeps for its backward pass: activations, masks, options."""

State = np.ndarray | tuple[np.ndarray, ...]
"""A recurrent state: ``h: (batch, hidden)``, or ``(h, c)`` for the LSTM family."""
