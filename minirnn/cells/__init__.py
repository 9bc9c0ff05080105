"""Recurrent cells, one module each, all on the same contract (see docs/design.md)::

    params = cell.init(input_size, hidden_size, *, rng, dtype=np.float32, **options)
    hs, cache = cell.forward(params, x, state=None, *, training=True, rng=None, **options)
    dx, grads = cell.backward(params, dhs, cache)

``CELLS`` maps the names used on the command line to the modules.
"""
from . import bnlstm, gru, lngru, lnlstm, lstm, rnn, vcgru, vclstm, vcrnn

CELLS = {"rnn": rnn, "lstm": lstm, "gru": gru, "bnlstm": bnlstm, "lnlstm": lnlstm,
         "lngru": lngru, "vcrnn": vcrnn, "vcgru": vcgru, "vclstm": vclstm}


def get_cell(name):
    """The cell module registered under ``name``."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(CELLS)}") from None
