"""Keeping freed memory in the process, so that the next training step reuses it.

Every training step allocates the same large arrays again: the cache of the
forward pass (for an LSTM at batch 64, 28 steps, 100 units: ``ifog`` alone is
(28, 64, 400) float32, 2.9 MB) and the gradients of the backward pass. glibc's
``malloc`` serves blocks this large from fresh ``mmap`` pages, or from the top of
the heap, and when they are freed it hands the memory back to the operating
system once more than a threshold lies free at the top. It raises its
thresholds by itself after the first large blocks come back, and for some
allocation patterns that is enough; for others the memory keeps going back and
the next step touches brand-new pages, each 4 KB page costing a page fault on
first write. Measured on this project's 2-core machine (a virtual machine, where
faults are dear) with ``python benchmarks/levers.py``: a BN-LSTM training step
took 2,162 faults and 15.0 ms without the setting below, 0 faults and 10.8 ms
with it; a plain LSTM step repeated alone took no faults either way, but the same
LSTM step after a few forward-only calls (as ``python -m minirnn bench`` makes
them) took thousands.

``keep_freed_memory()`` tells glibc (``mallopt``) to serve large blocks from the
heap and to keep up to 1 GB of freed heap memory instead of returning it. Memory
that the process used once stays mapped (its peak usage does not grow), and the
faults disappear whatever the pattern. This is what "reuse buffers across calls"
does, without the cells having to keep buffers between calls (which would let a
second forward overwrite the first one's cache).

The setting is process-wide and cannot be undone cleanly, so the library never
changes it on import: ``python -m minirnn train`` and ``bench`` call it, and
your own training loop can. On systems without glibc (macOS, Windows, musl) it
does nothing and returns False. ``python -m minirnn bench --return-freed-memory``
measures without it.
"""

import ctypes
import ctypes.util

# mallopt's parameter numbers, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30  # keep up to 1 GB of freed memory at the heap's top
_MMAP_CANDIDATES = (1 << 30, 1 << 28, 1 << 26, 1 << 25)  # glibc caps the threshold

_applied = None


def keep_freed_memory():
    """Make glibc keep freed memory for reuse (see the module notes). Returns True
    when the setting is in force, False where it is not available. Idempotent."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # blocks below the mmap threshold come from the heap; the largest value this
    # glibc accepts wins (mallopt returns 1 on success, 0 when it refuses)
    if not any(mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in _MMAP_CANDIDATES):
        return False
    _applied = mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES) == 1
    return _applied
