"""Losses: softmax cross-entropy (via log-sum-exp) and mean squared error.

Both return the *mean* over examples, and backward takes the upstream scalar
gradient ``dloss`` (1.0 when the loss is the objective).

Softmax cross-entropy for logits $z \\in \\mathbb{R}^{N \\times K}$ and labels $y$:

$$L = \\frac{1}{N} \\sum_n \\Big( \\log \\sum_k e^{z_{nk}} - z_{n y_n} \\Big),
\\qquad \\frac{\\partial L}{\\partial z_{nk}} = \\frac{1}{N}\\big(p_{nk} - [k = y_n]\\big).$$

The log-sum-exp is computed after subtracting each row's maximum, so that no
``exp`` overflows whatever the logits are.
"""

import numpy as np


def log_softmax(z):
    """z: (N, K) -> log p: (N, K), stable for any finite logits."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy_forward(logits, labels):
    """logits: (N, K) float, labels: (N,) int in [0, K) -> (mean loss, cache)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (N, K), got {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"labels: expected shape ({logits.shape[0]},) to match logits "
            f"{logits.shape}, got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels: expected an integer dtype, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(
            f"labels: expected values in [0, {logits.shape[1]}), "
            f"got min {labels.min()} and max {labels.max()}"
        )
    logp = log_softmax(logits)
    n = logits.shape[0]
    loss = -logp[np.arange(n), labels].mean()
    return logits.dtype.type(loss), (logp, labels)


def softmax_cross_entropy_backward(dloss, cache):
    """dloss: scalar -> dlogits: (N, K) = dloss * (softmax - onehot) / N."""
    logp, labels = cache
    n = logp.shape[0]
    dlogits = np.exp(logp)
    dlogits[np.arange(n), labels] -= 1
    dlogits *= dloss / n
    return dlogits


def mse_forward(pred, target):
    """pred, target: same shape -> (mean of (pred - target)^2 over all elements, cache)."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"target: expected shape {pred.shape} (like pred), got {target.shape}")
    diff = pred - target
    return pred.dtype.type(np.mean(diff * diff)), diff


def mse_backward(dloss, cache):
    """dloss: scalar -> dpred = dloss * 2 (pred - target) / size."""
    diff = cache
    return (2 * dloss / diff.size) * diff
