"""Models: a network of layers plus its loss.

``loss_and_backward(x, y)`` runs forward, the loss, and backward, leaving the
gradients in ``model.grads``; ``predict(x)`` runs forward only. The loss it
returns includes the layers' ``penalty()`` (a cell that adds a penalty also adds
its gradient in its own backward).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .. import functional as F
from .layers import Dense, Dropout, Recurrent, Sequential
from .normalization import BatchNorm


def _recurrent_stack(
    cell,
    input_size,
    hidden_size,
    layers,
    return_last,
    rng,
    dtype,
    dropout,
    output_batchnorm,
    cell_options,
):
    stack, size = [], input_size
    for k in range(layers):
        last = k == layers - 1
        # the first layer reads the data: no gradient of x to compute
        stack.append(
            Recurrent(
                cell,
                size,
                hidden_size,
                return_sequences=not (last and return_last),
                rng=rng,
                dtype=dtype,
                input_grad=k > 0,
                **cell_options,
            )
        )
        if output_batchnorm:
            # the Stack Overflow BN-in-LSTM question:
            # tf.layers.batch_normalization(outputs, momentum=0.4)
            stack.append(BatchNorm(hidden_size, momentum=0.4, convention="tensorflow", dtype=dtype))
        if dropout:
            stack.append(Dropout(dropout, rng=rng))
        size = hidden_size
    return stack


class SequenceClassifier(Sequential):
    """Reads a sequence, classifies it from the last hidden state.

    x: (B, T, input) -> recurrent layers -> h_T: (B, hidden) -> Dense -> logits
    (B, classes); loss: softmax cross-entropy, averaged over the batch.
    ``dropout`` > 0 puts a plain (non-recurrent) Dropout after each recurrent
    layer, on its outputs, as in Zaremba et al. (2014). ``output_batchnorm``
    puts batch norm on each recurrent layer's outputs, before that dropout, with
    the Stack Overflow BN-in-LSTM question's settings (TensorFlow's convention,
    momentum 0.4). The input is data: the first recurrent layer does not compute
    its gradient, and ``backward`` returns None.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        n_classes: int,
        *,
        layers: int = 1,
        rng: np.random.Generator,
        dtype: DTypeLike = np.float32,
        dropout: float = 0.0,
        output_batchnorm: bool = False,
        **cell_options,
    ) -> None:
        super().__init__(
            *_recurrent_stack(
                cell,
                input_size,
                hidden_size,
                layers,
                True,
                rng,
                dtype,
                dropout,
                output_batchnorm,
                cell_options,
            ),
            Dense(hidden_size, n_classes, rng=rng, dtype=dtype),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def loss_and_backward(
        self, x: np.ndarray, labels: np.ndarray
    ) -> tuple[np.floating, np.ndarray]:
        """Returns (mean loss, logits: (B, classes)); gradients land in self.grads."""
        logits = self.forward(x)
        loss, cache = F.softmax_cross_entropy_forward(logits, labels)
        self.backward(F.softmax_cross_entropy_backward(1.0, cache))
        return loss + self.penalty(), logits


class SequenceRegressor(Sequential):
    """Many-to-many regression: an output at every step through one dense layer
    shared over time. x: (B, T, input) -> hs: (B, T, hidden) -> y: (B, T, outputs);
    loss: mean squared error over every element. ``dropout`` and
    ``output_batchnorm`` as in ``SequenceClassifier``: the model of the
    Stack Overflow BN-in-LSTM question is
    ``SequenceRegressor("rnn", 1, H, 1, output_batchnorm=True, dropout=p)``.
    As there, ``backward`` returns None (no gradient for the input data)."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        n_outputs: int,
        *,
        layers: int = 1,
        rng: np.random.Generator,
        dtype: DTypeLike = np.float32,
        dropout: float = 0.0,
        output_batchnorm: bool = False,
        **cell_options,
    ) -> None:
        super().__init__(
            *_recurrent_stack(
                cell,
                input_size,
                hidden_size,
                layers,
                False,
                rng,
                dtype,
                dropout,
                output_batchnorm,
                cell_options,
            ),
            Dense(hidden_size, n_outputs, rng=rng, dtype=dtype),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def loss_and_backward(self, x: np.ndarray, y: np.ndarray) -> tuple[np.floating, np.ndarray]:
        """Returns (mean squared error, predictions: (B, T, outputs))."""
        pred = self.forward(x)
        loss, cache = F.mse_forward(pred, y)
        self.backward(F.mse_backward(1.0, cache))
        return loss + self.penalty(), pred
