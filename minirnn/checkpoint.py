"""Checkpoints: parameters, optimizer state, random generator state, position.

One ``.npz`` file: arrays under ``params/<name>``, ``buffers/<name>`` and
``optim/<buffer>/<name>``,
everything else (optimizer scalars, generator state, epoch and step) as JSON in
the entry ``meta``. It is written atomically: to a temporary file in the same
folder, flushed and fsync'ed, then renamed over the old one, so a crash or a
Ctrl-C at any moment leaves either the old checkpoint or the new one, never half
of one. Loading needs no pickle, and a file that is missing, cut short or not a
checkpoint at all raises a ``minirnn.errors.UserError`` that names it.
"""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import FileFormatError, MissingFileError


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def save_checkpoint(path, params, optimizer_state, meta, buffers=None):
    """params: name -> array; optimizer_state: an optimizer's ``state_dict()``;
    meta: JSON-serialisable dict (position, generator state, ...); buffers:
    name -> array of untrained state (population statistics)."""
    arrays = {f"params/{k}": v for k, v in params.items()}
    arrays.update({f"buffers/{k}": v for k, v in (buffers or {}).items()})
    optim_scalars = {}
    for key, value in optimizer_state.items():
        if isinstance(value, dict):
            arrays.update({f"optim/{key}/{k}": v for k, v in value.items()})
        else:
            optim_scalars[key] = value
    meta = dict(
        meta,
        optimizer=optim_scalars,
        optimizer_buffers=sorted(k for k, v in optimizer_state.items() if isinstance(v, dict)),
    )
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path):
    """Returns (params, optimizer_state, meta) as saved; ``meta["buffers"]`` holds
    the buffers (an empty dict when there are none)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"{path}: expected a checkpoint, but there is none (a run "
            f"writes it after its first epoch, or when stopped with Ctrl-C)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            params = {k[len("params/") :]: data[k] for k in data.files if k.startswith("params/")}
            meta["buffers"] = {
                k[len("buffers/") :]: data[k] for k in data.files if k.startswith("buffers/")
            }
            state = dict(meta.pop("optimizer"))
            for buf in meta.pop("optimizer_buffers"):
                prefix = f"optim/{buf}/"
                state[buf] = {k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)}
    # What np.load and the reads above raise on a file that is not a whole checkpoint:
    # cut short (BadZipFile, EOFError), another kind of file (ValueError), an entry missing.
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError) as err:
        raise FileFormatError(
            f"{path}: expected a checkpoint written by minirnn, but the "
            f"file is cut short or damaged ({type(err).__name__}: "
            f"{_first_line(err)})"
        ) from None
    return params, state, meta


def _first_line(err):
    """An exception's message, up to its first line break (for a one-line report)."""
    text = str(err)
    return text.splitlines()[0] if text else ""
