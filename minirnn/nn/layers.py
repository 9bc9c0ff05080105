"""Stateful layers on top of ``cells/`` and ``functional/``.

A layer holds ``params`` and ``grads``, two dicts with the same keys and shapes.
``forward(x)`` keeps what backward needs in ``self.cache``; ``backward(dout)``
writes the parameter gradients *into* ``self.grads`` (the arrays stay the same
objects, so an optimizer holding them sees the new values) and returns dL/dx.
``train()`` / ``eval()`` switch the mode that dropout (and batch norm) look at.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .. import functional as F
from ..cells import get_cell, split_options
from ..initializers import glorot_uniform
from ..types import Grads


class Layer:
    """Base class: parameters, gradients, mode, and nested layers by name."""

    def __init__(self) -> None:
        self.params, self.grads = {}, {}
        self.training = True
        self.cache = None

    def train(self) -> Layer:
        self.training = True
        return self

    def eval(self) -> Layer:
        self.training = False
        return self

    def buffers(self) -> dict[str, np.ndarray]:
        """State that is not trained but belongs in a checkpoint (batch-norm
        population statistics): name -> array."""
        return {}

    def load_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        """Restore what ``buffers()`` returned."""
        if buffers:
            raise KeyError(f"{type(self).__name__} has no buffers, got {sorted(buffers)}")

    def penalty(self) -> float:
        """Extra loss terms the layer added in its last forward (0.0 for most
        layers; a variable-computation cell's computation penalty). Backward
        already includes their gradients."""
        return 0.0

    def metrics(self) -> dict[str, float]:
        """Numbers about the last forward worth logging (e.g. the fraction of
        units a variable-computation cell updated): name -> float."""
        return {}

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g.fill(0)

    def _store(self, grads: Grads) -> None:
        """Write freshly computed gradients into the existing arrays."""
        for key, g in grads.items():
            if key in self.grads:
                self.grads[key][...] = g

    def __repr__(self):
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


class Dense(Layer):
    """y = x W + b. x: (..., in) -> y: (..., out); on sequences (B, T, in) it is the
    time-distributed dense layer: the same W and b at every step."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        rng: np.random.Generator,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        self.params = {
            "W": glorot_uniform(rng, in_features, out_features, dtype),
            "b": np.zeros(out_features, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self.cache = F.affine_forward(x, self.params["W"], self.params["b"])
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, dW, db = F.affine_backward(dy, self.cache)
        self._store({"W": dW, "b": db})
        return dx


TimeDistributedDense = Dense


class Dropout(Layer):
    """Inverted dropout: in training, each unit is zeroed with probability ``p`` and
    the kept ones are scaled by 1/(1-p), so evaluation needs no change at all.
    One fresh mask per call, drawn from the layer's ``rng``."""

    def __init__(self, p: float, *, rng: np.random.Generator) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout p: expected 0 <= p < 1, got {p}")
        self.p, self.rng = p, rng

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0:
            self.cache = None
            return x
        keep = 1 - self.p
        self.cache = (self.rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self.cache

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self.cache is None else dout * self.cache


class Recurrent(Layer):
    """A recurrent layer: any cell module of ``minirnn.cells`` over a sequence.

    x: (B, T, input) -> hs: (B, T, hidden) with ``return_sequences``, else the last
    hidden state h_T: (B, hidden). Each forward starts from a zero state.
    ``cell_options`` go to the cell's ``init`` and/or ``forward`` as it declares,
    over the cell's ``TRAINING_DEFAULTS`` where it has them.
    A cell with population statistics (BN-LSTM) gets them from the layer in
    every forward (it reads them in evaluation mode, and in training only with
    options that use them); after each training forward the layer moves them
    towards the batch's, by ``stats_momentum`` (the weight of the new batch; None:
    the cell's own, which BN-LSTM takes as its forward option ``stats_momentum``).
    ``input_grad=False`` (a model's first layer, whose input is data): backward
    does not compute the gradient of x and returns None.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        return_sequences: bool = True,
        *,
        rng: np.random.Generator,
        dtype: DTypeLike = np.float32,
        stats_momentum: float | None = None,
        input_grad: bool = True,
        **cell_options,
    ) -> None:
        super().__init__()
        self.cell_name = cell
        self.cell = get_cell(cell)
        self.return_sequences = return_sequences
        # a cell may name the options its models start from (BN-LSTM's TRAINING_DEFAULTS)
        cell_options = {**getattr(self.cell, "TRAINING_DEFAULTS", {}), **cell_options}
        self.init_options, self.forward_options = split_options(self.cell, cell_options)
        self.rng = rng
        self.params = self.cell.init(
            input_size, hidden_size, rng=rng, dtype=dtype, **self.init_options
        )
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        # Cells with batch norm keep population statistics for evaluation; the
        # layer holds them and moves them after every training forward.
        self.stats = (
            self.cell.init_statistics(hidden_size, 1, dtype)
            if hasattr(self.cell, "init_statistics")
            else None
        )
        self.stats_momentum = stats_momentum
        self._recent = []  # last training inputs, for refreshing the statistics
        self.input_grad = input_grad

    def forward(self, x: np.ndarray) -> np.ndarray:
        extra = {} if self.stats is None else {"stats": self.stats}
        hs, self.cache = self.cell.forward(
            self.params, x, training=self.training, rng=self.rng, **self.forward_options, **extra
        )
        if self.stats is not None and self.training:
            self.stats = self.cell.update_statistics(
                self.stats, self.cache, momentum=self.stats_momentum
            )
            keep = self.forward_options.get("refresh_batches", 0)
            if keep:  # the last `keep` training batches, for eval()
                self._recent = (self._recent + [x])[-keep:]
        self._T = hs.shape[1]
        return hs if self.return_sequences else hs[:, -1]

    def eval(self) -> Layer:
        """Evaluation mode. A cell given ``refresh_batches`` (BN-LSTM) first gets its
        population statistics recomputed from the last training batches with the
        parameters as they are now (``cell.population_statistics``)."""
        recent = self._recent
        if recent and self.forward_options.get("train_stats", "batch") != "population":
            self.stats = self.cell.population_statistics(
                self.params, recent, self.stats, **self.forward_options
            )
        self._recent = []
        return super().eval()

    def buffers(self) -> dict[str, np.ndarray]:
        return dict(self.stats) if self.stats is not None else {}

    def load_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        if self.stats is None:
            return super().load_buffers(buffers)
        if set(buffers) != set(self.stats):
            raise KeyError(
                f"{self.cell_name} statistics: expected {sorted(self.stats)}, got {sorted(buffers)}"
            )
        self.stats = {k: np.array(v, dtype=self.stats[k].dtype) for k, v in buffers.items()}

    def penalty(self) -> float:
        return float(self.cache.get("penalty", 0.0)) if self.cache else 0.0

    def metrics(self) -> dict[str, float]:
        return dict(self.cache.get("metrics", {})) if self.cache else {}

    def set_option(self, name: str, value: object) -> None:
        """Change a forward option between steps (e.g. a sharpness schedule)."""
        if name not in self.cell.FORWARD_OPTIONS:
            raise KeyError(
                f"{self.cell_name} has no forward option {name!r}; it has "
                f"{list(self.cell.FORWARD_OPTIONS)}"
            )
        self.forward_options[name] = value

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self.return_sequences:
            dhs = dout
        else:  # only h_T was used: the other steps' outputs get zero gradient
            dhs = np.zeros((dout.shape[0], self._T, dout.shape[1]), dtype=dout.dtype)
            dhs[:, -1] = dout
        dx, grads = self.cell.backward(self.params, dhs, self.cache, input_grad=self.input_grad)
        self._store(grads)
        return dx


class Sequential(Layer):
    """Layers applied in order. ``params``/``grads`` are flat dicts whose keys are
    ``"<index>.<name>"`` and whose arrays *are* the layers' own arrays."""

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            for key in layer.params:
                self.params[f"{i}.{key}"] = layer.params[key]
                self.grads[f"{i}.{key}"] = layer.grads[key]

    def train(self) -> Layer:
        for layer in self.layers:
            layer.train()
        return super().train()

    def eval(self) -> Layer:
        for layer in self.layers:
            layer.eval()
        return super().eval()

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def penalty(self) -> float:
        return sum(layer.penalty() for layer in self.layers)

    def buffers(self) -> dict[str, np.ndarray]:
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.buffers().items()
        }

    def load_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        for i, layer in enumerate(self.layers):
            prefix = f"{i}."
            layer.load_buffers(
                {k[len(prefix) :]: v for k, v in buffers.items() if k.startswith(prefix)}
            )

    def metrics(self) -> dict[str, float]:
        """The layers' metrics, keyed "<index>.<name>"."""
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.metrics().items()
        }

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def __repr__(self):
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"{type(self).__name__}(\n{inner}\n)"
