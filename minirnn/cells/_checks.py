"""Argument checks shared by the cells.

NumPy broadcasts silently: a state of shape ``(H,)`` or a bias of shape
``(1, 4H)`` would run and give wrong numbers. The cells call these checks on
entry so that a bad argument fails at once, with its name, the expected and
the actual shape or dtype. The checks of single arrays are those of the
functional ops (``minirnn/functional/checks.py``); here are the ones that know
a cell's parameters, sequences, states and options.
"""

import numpy as np

from ..functional import checks
from ..functional.checks import check_float_array


def check_params(params, shapes):
    """Check that ``params`` has exactly the keys of ``shapes``, with those shapes
    and one common floating dtype. Returns that dtype."""
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict of arrays, got {type(params).__name__}")
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(shapes))
    if missing or extra:
        raise KeyError(
            f"params: expected keys {sorted(shapes)}, got {sorted(params)}"
            f" (missing {missing}, unexpected {extra})"
        )
    dtype = None
    for key, shape in shapes.items():
        p = check_float_array(f"params['{key}']", params[key])
        if p.shape != tuple(shape):
            raise ValueError(f"params['{key}']: expected shape {tuple(shape)}, got {p.shape}")
        if dtype is None:
            dtype = p.dtype
        elif p.dtype != dtype:
            raise TypeError(
                f"params['{key}']: expected dtype {dtype} like the other parameters, got {p.dtype}"
            )
    return dtype


def check_matrix(params, key):
    """The 2-D parameter ``params[key]``, from which a cell reads its sizes."""
    if not isinstance(params, dict) or key not in params:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise KeyError(f"params: expected a dict with key '{key}', got {got}")
    p = check_float_array(f"params['{key}']", params[key])
    if p.ndim != 2:
        raise ValueError(f"params['{key}']: expected a 2-D array, got shape {p.shape}")
    return p


def check_sequence(x, input_size, dtype, name="x"):
    """x: (batch, time, input) of the parameters' dtype, with time >= 1."""
    check_float_array(name, x)
    if x.ndim != 3:
        raise ValueError(
            f"{name}: expected shape (batch, time, {input_size}), got {x.shape}"
            f" ({x.ndim}-D); add the missing axis, e.g. x[None] or x[..., None]"
        )
    if x.shape[2] != input_size:
        raise ValueError(
            f"{name}: expected input size {input_size} to match params['W'] "
            f"of shape ({input_size}, ...), got x of shape {x.shape}"
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one example and one timestep, got {x.shape}")
    if x.dtype != dtype:
        raise TypeError(
            f"{name}: expected dtype {dtype} like the parameters, got {x.dtype}; "
            f"convert one of them with .astype()"
        )
    return x


def check_state(name, s, batch, hidden, dtype):
    """One state tensor (h0 or c0): (batch, hidden) of ``dtype``; zeros when None."""
    if s is None:
        return np.zeros((batch, hidden), dtype=dtype)
    check_float_array(name, s)
    if s.shape != (batch, hidden):
        raise ValueError(
            f"{name}: expected shape ({batch}, {hidden}) = (batch, hidden), got {s.shape}"
        )
    if s.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} like the parameters, got {s.dtype}")
    return np.ascontiguousarray(s)


def check_upstream(dhs, expected_shape, dtype, name="dhs"):
    """The upstream gradient of a cell's outputs: exactly the shape of hs."""
    return checks.check_upstream(dhs, expected_shape, dtype, name, output="the outputs hs")


def check_inputs(where, params, x, options, allowed, param_shapes, **shape_options):
    """The checks a cell's ``forward`` starts with: no unknown option (``allowed``
    names the known ones), the parameters' names, shapes and common dtype
    (``param_shapes(input, hidden, **shape_options)``), and x: (batch, time, input)
    of that dtype. The sizes are read from W: (input, ...) and U: (hidden, ...).
    Returns (input_size, hidden_size, dtype)."""
    check_options(where, options, allowed)
    I, H = check_matrix(params, "W").shape[0], check_matrix(params, "U").shape[0]
    dtype = check_params(params, param_shapes(I, H, **shape_options))
    check_sequence(x, I, dtype)
    return I, H, dtype


def check_gradients(dhs, dstate, hs, dtype, state_size):
    """The checks a cell's ``backward`` starts with. hs: (T+1, B, H), the states
    of the forward's cache; dhs: (B, T, H), exactly the shape of the outputs;
    dstate: the gradient of the final state, dh_T (``state_size`` 1) or
    (dh_T, dc_T) (2), zeros when None.
    Returns dhs time-major, (T, B, H) and contiguous as the loops read it, and
    the parts of dstate as a tuple of (B, H) arrays."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    dhs = check_upstream(dhs, (B, T, H), dtype)
    if state_size == 1:
        parts = (check_state("dstate", dstate, B, H, dtype),)
    else:
        parts = check_lstm_state("dstate", dstate, B, H, dtype, ("dh_T", "dc_T"))
    return np.ascontiguousarray(dhs.transpose(1, 0, 2)), parts


def check_options(name, options, allowed):
    """Reject unknown keyword options instead of ignoring a typo."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"{name}: unexpected option(s) {unknown}; it accepts {sorted(allowed) or 'none'}"
        )


def check_lstm_state(name, state, batch, hidden, dtype, parts=("h0", "c0")):
    """An LSTM-family state (or its gradient): the tuple (h, c), each (batch, hidden);
    zeros when None. ``parts`` name the two halves in error messages."""
    if state is None:
        state = (None, None)
    elif not (isinstance(state, tuple) and len(state) == 2):
        raise TypeError(f"{name}: expected a tuple (h, c) for an LSTM, got {type(state).__name__}")
    return tuple(
        check_state(f"{name} {part}", s, batch, hidden, dtype) for part, s in zip(parts, state)
    )
