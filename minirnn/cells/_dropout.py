"""Recurrent dropout: the options, the masks, and how a kernel reads them.

The rnn, lstm, gru, bnlstm, lnlstm and lngru cells take four forward options
(``tutorials/08_recurrent_dropout.md`` derives what each placement does to the
forward and backward step)::

    recurrent_dropout=0.0     the rate p: the probability that a unit is dropped
    dropout_where="update"    where the mask multiplies (the RNN's default: "hidden")
    dropout_per="sequence"    one mask for every timestep of a forward call, or "step"
    dropout_shared=False      True: one mask for the whole batch (the Qiita BN-LSTM note)

(The rate is not called ``dropout``: that name is the models' plain dropout on
a layer's outputs, ``TrainConfig.dropout`` and ``--dropout``.)

``dropout_where`` is one of

* ``"update"``: the candidate after its tanh, before the input gate (LSTM:
  ``c_t = f c_{t-1} + i (g m)``) or the update gate (GRU:
  ``h_t = z h_{t-1} + (1 - z)(n m)``) mixes it in; Semeniuta et al. (2016),
  "recurrent dropout without memory loss", and TensorFlow's
  ``LayerNormBasicLSTMCell(dropout_keep_prob=...)``.
* ``"hidden"``: h_{t-1} where it feeds the gates, ``(h_{t-1} m) U``; Gal &
  Ghahramani (2016). The GRU's ``z h_{t-1}`` term keeps the unmasked state.
* ``"cell"``: the LSTM's cell after its update, ``c_t = m (f c_{t-1} + i g)``,
  so the state carried to the next step is masked; Moon et al. (2015).

Masks use inverted scaling: an entry is 0 with probability p and ``1/(1-p)``
otherwise, so that its mean is 1 and evaluation (``training=False``) needs no
mask at all. A unit is kept when ``u >= p`` for ``u`` uniform in [0, 1), which is
the Qiita BN-LSTM note's ``floor(keep_prob + u)``. The drawn mask has shape
``(T or 1, B or 1, H)``: T with ``dropout_per="step"``, B unless
``dropout_shared``. It is drawn from the ``rng`` passed to ``forward``, before
the loop, in one call, and kept in ``cache["masks"]``, so backward sees the very
same mask, and a generator with the same seed draws it again (which is what the
gradient checker relies on).

The kernels get each mask as ``(T or 1, B, H)``, contiguous (``kernel_mask``),
or ``None`` where there is no dropout; ``mask_at(M, t)`` is the (B, H) mask of
step t. Numba compiles a kernel separately for ``None`` and removes the
``if m is not None:`` branches from that version, so a cell without dropout
runs the same machine code as before dropout existed.

The normalized cells (bnlstm, lnlstm in both flavours, lngru) take the same
options and draw their masks here too. Their "cell" mask multiplies the cell that
is carried to the next step: before the normalization of c where the raw cell is
carried (bnlstm, lnlstm paper), after it where the normalized cell is (bnlstm
with ``carry_normalized_c=True``, lnlstm tensorflow); each module's notes say so.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

OPTIONS = ("recurrent_dropout", "dropout_where", "dropout_per", "dropout_shared")
PLACEMENTS = ("update", "hidden", "cell")
PER = ("sequence", "step")


def draw_mask(rng, p, time, batch, hidden, *, per="sequence", shared=False, dtype=np.float32):
    """One inverted-dropout mask of shape (time or 1, batch or 1, hidden):
    0 with probability p, 1/(1-p) otherwise, of ``dtype``."""
    shape = (time if per == "step" else 1, 1 if shared else batch, hidden)
    keep = rng.random(shape) >= p
    return np.where(keep, np.asarray(1.0 / (1.0 - p), dtype=dtype), np.asarray(0, dtype=dtype))


def recurrent_masks(
    name, placements, *, rate, where, per, shared, training, rng, time, batch, hidden, dtype
):
    """Check the dropout options of cell ``name`` (which accepts ``placements``) and
    draw its mask. Returns ``{}`` when nothing is dropped (p = 0, or evaluation)
    and ``{where: mask}`` otherwise."""
    if (
        isinstance(rate, bool)
        or not isinstance(rate, (int, float, np.floating))
        or not 0 <= rate < 1
    ):
        raise ValueError(
            f"{name}.forward: recurrent_dropout: expected a rate 0 <= p < 1, got {rate!r}"
        )
    if where not in placements:
        others = [w for w in PLACEMENTS if w not in placements]
        hint = f" ({where!r} has no meaning for this cell)" if where in others else ""
        raise ValueError(
            f"{name}.forward: dropout_where: expected one of {list(placements)}, "
            f"got {where!r}{hint}"
        )
    if per not in PER:
        raise ValueError(f"{name}.forward: dropout_per: expected one of {list(PER)}, got {per!r}")
    if not isinstance(shared, (bool, np.bool_)):
        raise TypeError(f"{name}.forward: dropout_shared: expected True or False, got {shared!r}")
    if rate == 0 or not training:
        return {}
    if rng is None:
        raise ValueError(
            f"{name}.forward: recurrent_dropout={rate} in training draws its "
            f"masks from rng, and rng is None; pass "
            f"rng=np.random.default_rng(seed), or training=False to evaluate "
            f"without dropout"
        )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name}.forward: rng: expected a numpy.random.Generator "
            f"(np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return {
        where: draw_mask(
            rng, float(rate), time, batch, hidden, per=per, shared=bool(shared), dtype=dtype
        )
    }


def kernel_mask(masks, where, batch):
    """The mask at ``where`` as the kernels read it: (T or 1, batch, H), contiguous
    and writeable (repeated over the batch when shared), or None."""
    m = masks.get(where)
    if m is None:
        return None
    return m if m.shape[1] == batch else np.repeat(m, batch, axis=1)


def mask_at(M, t):
    """The (B, H) mask of step t: ``M[t]`` for per-step masks, ``M[0]`` for one
    mask per sequence, None for no mask. (This Python body runs under
    ``NUMBA_DISABLE_JIT=1``; compiled, the overload below returns the same.)"""
    if M is None:
        return None
    return M[t if M.shape[0] > 1 else 0]


@overload(mask_at)
def _mask_at_compiled(M, t):
    # Resolved by type at compile time, so that None stays None (not an Optional
    # array) and the kernels' ``if m is not None`` branches are removed.
    if isinstance(M, (types.NoneType, types.Omitted)):
        return lambda M, t: None
    return lambda M, t: M[t if M.shape[0] > 1 else 0]


@njit(cache=True, nogil=True)
def apply_mask(h, m, out):
    """h * m written into ``out`` and returned, for the product a "hidden" mask
    sits in, ``(h * m) U``; ``h`` itself when m is None (no copy). h, m, out: (B, H);
    ``out`` is a scratch buffer of the loop, so that nothing is allocated per step."""
    if m is None:
        return h
    np.multiply(h, m, out)
    return out


def lstm_kernel_masks(masks, batch):
    """The LSTM family's masks as its loops take them: (M_h, M_g, M_c), each
    (T or 1, B, H) or None."""
    return tuple(kernel_mask(masks, where, batch) for where in ("hidden", "update", "cell"))
