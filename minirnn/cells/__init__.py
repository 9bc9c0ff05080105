"""Recurrent cells, one module each, all on the same contract (see docs/design.md)::

    params = cell.init(input_size, hidden_size, *, rng, dtype=np.float32, **options)
    hs, cache = cell.forward(params, x, state=None, *, training=True, rng=None, **options)
    dx, grads = cell.backward(params, dhs, cache)

``CELLS`` maps the names used on the command line to the modules; a cell's
options are split between its ``init`` and its ``forward`` by ``split_options``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import bnlstm, gru, lngru, lnlstm, lstm, rnn, vcgru, vclstm, vcrnn

CELLS = {
    "rnn": rnn,
    "lstm": lstm,
    "gru": gru,
    "bnlstm": bnlstm,
    "lnlstm": lnlstm,
    "lngru": lngru,
    "vcrnn": vcrnn,
    "vcgru": vcgru,
    "vclstm": vclstm,
}


def get_cell(name: str) -> ModuleType:
    """The cell module registered under ``name``."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(CELLS)}") from None


def split_options(
    cell: ModuleType, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a cell's options into those of ``init`` and those of ``forward``
    (an option may belong to both, like the GRU's ``reset_after``)."""
    accepted = set(cell.INIT_OPTIONS) | set(cell.FORWARD_OPTIONS)
    unknown = set(options) - accepted
    if unknown:
        name = cell.__name__.rsplit(".", 1)[-1]
        raise TypeError(
            f"{name}: unknown option(s) {sorted(unknown)}; it accepts {sorted(accepted) or 'none'}"
        )
    init_opts = {k: v for k, v in options.items() if k in cell.INIT_OPTIONS}
    fwd_opts = {k: v for k, v in options.items() if k in cell.FORWARD_OPTIONS}
    return init_opts, fwd_opts
