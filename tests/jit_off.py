"""The harness of the "compiled against plain" tests: run a script that prints JSON
once with Numba compiling the kernels and once with ``NUMBA_DISABLE_JIT=1`` (the
same code as plain Python and NumPy), and return both results for the test to
compare.

The compiled run happens in the test process itself, so it uses the kernels the
other tests compiled. The plain run needs an interpreter of its own (the switch
is read when Numba is imported): one is started the first time a test asks for
it, and serves every later script of the session, so a whole run starts one
such interpreter per test process rather than two per comparison.
"""

import atexit
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile

import numba

# Reads one JSON-encoded script per line, runs it with its stdout captured and
# answers with one JSON line: {"stdout": ...} or {"error": traceback}.
_SERVER = r"""
import contextlib, io, json, sys, traceback
import numba
assert numba.config.DISABLE_JIT
reply_to = sys.stdout
for line in sys.stdin:
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile(json.loads(line), "<script>", "exec"), {"__name__": "__main__"})
        reply = {"stdout": buffer.getvalue()}
    except BaseException:
        reply = {"error": traceback.format_exc()}
    reply_to.write(json.dumps(reply) + "\n")
    reply_to.flush()
"""

_server = None


def _plain_interpreter():
    """The interpreter with ``NUMBA_DISABLE_JIT=1``, started on first use."""
    global _server
    if _server is None or _server.poll() is not None:
        env = dict(os.environ, NUMBA_DISABLE_JIT="1")
        log = tempfile.TemporaryFile(mode="w+")
        _server = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        _server.log = log
        atexit.register(_stop, _server)
    return _server


def _stop(server):
    if server.poll() is None:
        server.stdin.close()
        server.wait(timeout=60)


def run_plain(script):
    """The JSON that ``script`` prints with the JIT off."""
    server = _plain_interpreter()
    server.stdin.write(json.dumps(script) + "\n")
    server.stdin.flush()
    line = server.stdout.readline()
    if not line:
        server.log.seek(0)
        raise RuntimeError("the NUMBA_DISABLE_JIT=1 interpreter stopped:\n" + server.log.read())
    reply = json.loads(line)
    if "error" in reply:
        raise RuntimeError("the script failed with NUMBA_DISABLE_JIT=1:\n" + reply["error"])
    return json.loads(reply["stdout"])


def run_compiled(script):
    """The JSON that ``script`` prints with the JIT on: in this process, unless this
    process runs with the JIT off, in which case in a fresh interpreter with it on."""
    if numba.config.DISABLE_JIT:
        env = dict(os.environ, NUMBA_DISABLE_JIT="0")
        res = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        return json.loads(res.stdout)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(script, "<script>", "exec"), {"__name__": "__main__"})
    return json.loads(buffer.getvalue())


def compiled_and_plain(script):
    """(result with the JIT, result without it)."""
    return run_compiled(script), run_plain(script)
