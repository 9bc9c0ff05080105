"""minirnn: recurrent cells with their backward passes derived by hand, in NumPy.

Every cell in :mod:`minirnn.cells` and every op in :mod:`minirnn.functional` is a
``forward -> (out, cache)`` / ``backward(dout, cache)`` pair written out in the open;
:mod:`minirnn.gradcheck` checks each of them against finite differences.
"""

__version__ = "0.1.0"
