"""Every tutorial's Python code runs, so the tutorials cannot drift from the code.

The ```python blocks of one tutorial are joined in order and executed as one
script; the asserts inside them are the tutorial's own checks.
"""

import re
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path):
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def test_there_are_tutorials_with_code():
    assert TUTORIALS, "tutorials/ holds no .md files"
    for path in TUTORIALS:
        assert python_blocks(path), f"{path.name} has no ```python block to run"


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a tutorial writes stays out of the tree
    code = "\n".join(python_blocks(path))
    exec(compile(code, str(path), "exec"), {"__name__": "__tutorial__"})
