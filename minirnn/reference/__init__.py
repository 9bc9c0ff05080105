"""Readable twins of the recurrent cells: each cell of ``minirnn.cells`` written
again as the tutorials derive it, in plain vectorized NumPy, one timestep per
Python call.

A compiled cell in ``minirnn/cells/`` is the optimization of its twin: ``x W``
and the weight gradients hoisted out of the timestep loop, buffers reused,
element loops that Numba vectorizes. ``tests/test_reference.py`` holds each
kernel equal to its twin, for every option, to rounding (float64). Read the twin
beside the tutorial; read the kernel to see how it is made fast.

Each module has the same four functions (the parts in brackets for the cells
with a memory cell c)::

    h, [c,] cache = step_forward(params, x_t, h_prev, [c_prev,] options, masks)
    dx_t, dh_prev, [dc_prev,] grads = step_backward(params, dh, [dc_next,] cache)
    hs, cache = forward(params, x, state=None, *, options, masks=None)
    dx, grads = backward(params, dhs, cache, dstate=None)

``dh`` is the total dL/dh_t, the output's gradient plus what step t+1 sends back;
``grads`` are this step's terms of the weight gradients, which ``backward`` sums.
The variable-computation steps also return the scheduler's m_t and take the
penalty's gradient dpenalty/dm_t. Shapes, options and gradient keys are those of
the compiled cell (``grads`` holds ``h0``, and ``c0``, when ``forward`` was given
a state). Recurrent dropout is not drawn here: ``masks`` is a compiled cell's
``cache["masks"]``, so that both compute with the very same masks. Caches hold
activations, never copies of the weights, and no function modifies its arguments.

    rnn      tutorials/01_rnn_bptt.md
    lstm     tutorials/02_lstm.md
    gru      tutorials/03_gru.md (both conventions, ``reset_after``)
    vcrnn, vcgru, vclstm (and vc, what they share)   tutorials/06_variable_computation.md
    bnlstm, lnlstm (both flavours), lngru            tutorials/09_recurrent_normalization.md

(recurrent dropout in each: tutorials/08_recurrent_dropout.md).
"""

from . import bnlstm, gru, lngru, lnlstm, lstm, rnn, vcgru, vclstm, vcrnn

TWINS = {
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
