"""Every tutorial opens in Jupyter as a notebook, through jupytext, and runs there.

Jupytext reads a tutorial's Markdown: its ```python blocks become the code cells,
everything else Markdown cells. A student who picks "Run All" must run exactly the
code tests/test_tutorials.py runs, nothing more (a ```bash block would become a
`%%bash` cell and, say, start a full training run). One short tutorial also runs,
cell by cell, on a real python3 kernel, as a student would run it.

Needs the `test` extra (jupytext, nbclient, ipykernel); skipped without them.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9]*.md"))
# the blocks as tests/test_tutorials.py reads them
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
# a short one; test_tutorials.py runs them all, without a kernel
RUN_ON_A_KERNEL = ROOT / "tutorials" / "01_rnn_bptt.md"
INSTALL = "pip install -e '.[test]'"


def as_notebook(path):
    jupytext = pytest.importorskip("jupytext", reason=f"jupytext is not installed ({INSTALL})")
    return jupytext.read(path)


def test_there_are_tutorials():
    assert TUTORIALS and RUN_ON_A_KERNEL in TUTORIALS


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_notebook_code_cells_are_the_python_blocks(path):
    notebook = as_notebook(path)
    cells = [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]
    blocks = [block.strip() for block in BLOCK.findall(path.read_text(encoding="utf-8"))]
    extra = [cell for cell in cells if cell not in blocks]
    if extra:
        pytest.fail(
            f"{path.name}: as a notebook, this tutorial has code cells that are no "
            "```python block, so 'Run All' in Jupyter would run them; write such blocks "
            "as ```shell or ```text, which jupytext keeps as Markdown:\n"
            + "\n---\n".join(c[:300] for c in extra),
            pytrace=False,
        )
    assert cells == blocks, f"{path.name}: the notebook's code cells are not its ```python blocks"


@pytest.mark.slow
def test_a_tutorial_runs_as_a_notebook_on_a_python3_kernel(tmp_path):
    notebook = as_notebook(RUN_ON_A_KERNEL)
    nbclient = pytest.importorskip("nbclient", reason=f"nbclient is not installed ({INSTALL})")
    pytest.importorskip("ipykernel", reason=f"ipykernel is not installed ({INSTALL})")
    from nbclient.exceptions import CellExecutionError

    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        startup_timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )  # the kernel's working directory
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{RUN_ON_A_KERNEL.name} fails as a notebook:\n{error}", pytrace=False)

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) == len(BLOCK.findall(RUN_ON_A_KERNEL.read_text(encoding="utf-8")))
    assert all(cell.execution_count for cell in code), "some code cells did not run"
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors
