import hashlib
import os
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

# deadline=None: the first example of a test may include Numba's compilation.
settings.register_profile(
    "default", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _compile_each_kernel_in_one_process_at_a_time():
    """Test processes that run at once (pytest-xdist's workers, or two test runs in
    one tree) share Numba's on-disk cache (``cache=True``, files in __pycache__).
    Without a lock, two of them that need the same kernel both compile it; and two
    that save new signatures of one kernel at the same moment can overwrite each
    other's entry in its cache index, which Numba updates without a lock. So each
    compilation holds a lock file of its kernel: a second process that needs the
    kernel waits, then finds the first one's result in the cache and loads it.

    Kernels call kernels (a loop compiles its step functions inside its own
    compilation) but never in a cycle, so the locks cannot deadlock. Without
    fcntl (Windows) or with a Numba whose internals moved, nothing is locked."""
    try:
        import fcntl

        from numba.core import sigutils
        from numba.core.dispatcher import Dispatcher
    except ImportError:
        return
    lock_dir = Path(tempfile.gettempdir()) / f"minirnn-numba-locks-{os.getuid()}"
    try:
        lock_dir.mkdir(exist_ok=True)
    except OSError:
        return
    held = set()  # the kernels whose lock we hold
    compile_unlocked = Dispatcher.compile

    def compile(self, sig):
        index = getattr(getattr(self._cache, "_cache_file", None), "_index_path", None)
        if index is None or index in held:  # not cached on disk, or locked by us
            return compile_unlocked(self, sig)
        args, _ = sigutils.normalize_signature(sig)
        if tuple(args) in self.overloads:  # compiled or loaded in this process
            return compile_unlocked(self, sig)
        try:
            lock = open(lock_dir / hashlib.sha1(index.encode()).hexdigest(), "w")
        except OSError:
            return compile_unlocked(self, sig)
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            held.add(index)
            try:
                return compile_unlocked(self, sig)
            finally:
                held.discard(index)

    Dispatcher.compile = compile


_compile_each_kernel_in_one_process_at_a_time()
