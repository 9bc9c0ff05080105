"""Mistakes in what the user gave, told apart from bugs.

A wrong option, a missing file, a truncated checkpoint: these are expected, and
``python -m minirnn`` prints them as one line, ``error: <message>``, and exits with
status 2. Every other exception is a bug and keeps its traceback. So the code
raises a ``UserError`` only where it has checked what it was given, with a message
that names the file or the option and says what was expected.

The three kinds also derive from the built-in exception a Python caller would
expect (``ValueError``, ``FileNotFoundError``), so ``except ValueError`` around
``TrainConfig(...)`` or ``load_kaggle_csv(...)`` keeps working.
"""


class UserError(Exception):
    """Something the user gave is wrong; the message says what and what was expected."""


class OptionError(UserError, ValueError):
    """A setting that cannot be used: a command-line option, a ``TrainConfig`` field."""


class FileFormatError(UserError, ValueError):
    """A file that is there but does not hold what was expected (a CSV with a
    column too few, a truncated checkpoint, a config that is not JSON)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder that is not there (a CSV, a run folder, its checkpoint)."""
