"""Flushing subnormal numbers to zero, so that vanishing gradients stay cheap.

A float32 smaller than 1.2e-38 in magnitude is *subnormal*: it trades bits of
precision for range, and x86 processors compute with it through a microcode
assist that takes around a hundred cycles instead of one. Backpropagation through
time produces such numbers wherever a gradient vanishes: a classifier's gradient
enters at the last step only and shrinks at every step it goes back. On
pixel-MNIST (784 steps) the GRU's backward pass took 882 ms with the gradient at
the last step only against 166 ms with a gradient at every step, the same
arithmetic on other values (``python benchmarks/levers.py``); its training step
was 4 times slower than the LSTM's.

The processor can instead treat subnormal inputs as zero (DAZ) and round
subnormal results to zero (FTZ), two bits of the MXCSR control register. Values
that small cannot change a parameter (a learning rate times 1e-38 is far below
float32's resolution of any weight), so training is unchanged in every way that
matters; only numbers beyond float32's normal range become 0. Gradient checks run
in float64, whose subnormals (below 2.2e-308) never arise in them.

``with flush_subnormals():`` sets both bits for the calling thread (the one that
runs the compiled loops, and the BLAS calls with one BLAS thread) through LLVM's
``stmxcsr``/``ldmxcsr`` intrinsics compiled by Numba, and restores the previous
setting at the end of the block. ``python -m minirnn train`` and ``bench`` train
inside it; nothing else changes the setting. On processors other than x86-64, or
with ``NUMBA_DISABLE_JIT=1``, it does nothing (and yields False). PyTorch's
``torch.set_flush_denormal(True)`` sets the same bits.
"""

import platform
from contextlib import contextmanager

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic

_FLUSH_TO_ZERO = 1 << 15  # FTZ: subnormal results become 0
_DENORMALS_ARE_ZERO = 1 << 6  # DAZ: subnormal inputs are read as 0
_X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _mxcsr_intrinsic(builder, name, pointer):
    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(pointer, ir.IntType(8).as_pointer())])


@intrinsic
def _read_mxcsr(typingctx):
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_intrinsic(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def _write_mxcsr(typingctx, value):
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
        _mxcsr_intrinsic(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.void(types.int64), codegen


@njit
def _get():
    return _read_mxcsr()


@njit
def _set(value):
    _write_mxcsr(value)


@contextmanager
def flush_subnormals(enabled=True):
    """Within the block, this thread flushes subnormal numbers to zero (see the
    module notes); the previous setting comes back after it. Yields True when the
    flush is in force, False where it is not available or not ``enabled``."""
    if not (enabled and _X86_64) or config.DISABLE_JIT:
        yield False
        return
    previous = _get()
    bits = _FLUSH_TO_ZERO | _DENORMALS_ARE_ZERO
    _set(previous | bits)
    try:
        yield (_get() & bits) == bits
    finally:
        _set(previous)
