"""What the readable twins share: the sigmoid on arrays, and one step's dropout mask."""

from ..functional.activations import sigmoid_forward


def sigmoid(a):
    """sigma(a) = 1 / (1 + exp(-a)), elementwise, computed as (1 + tanh(a/2)) / 2,
    which never overflows (``functional.sigmoid_forward``)."""
    return sigmoid_forward(a)[0]


def mask_at(masks, where, t):
    """The recurrent-dropout mask of step t at ``where`` ("hidden", "update" or
    "cell"), taken from ``masks``, a compiled cell's ``cache["masks"]``: a dict of
    arrays of shape (T or 1, B or 1, H), one mask per step or one for the whole
    sequence, one per example or one for the batch. Returns a (B or 1, H) array,
    or 1.0 where nothing is dropped (multiplying by 1.0 changes nothing)."""
    if not masks or where not in masks:
        return 1.0
    M = masks[where]
    return M[t if len(M) > 1 else 0]
