"""Draw every figure of the tutorials.

    python tutorials/figures/make_figures.py            # all figures
    python tutorials/figures/make_figures.py fig_02     # the modules whose name starts so

Each ``fig_*.py`` module beside this file has a function ``draw(out_dir)`` that writes
its PNG files into ``out_dir`` (this folder) and returns their paths. The PNGs are
committed, so GitHub shows them; run this script again after changing a module.
"""

import importlib
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

HERE = Path(__file__).resolve().parent


def main(prefixes):
    sys.path.insert(0, str(HERE))
    names = sorted(p.stem for p in HERE.glob("fig_*.py"))
    chosen = [n for n in names if not prefixes or n.startswith(tuple(prefixes))]
    if not chosen:
        sys.exit(
            f"error: no figure module matches {' '.join(prefixes)}; "
            f"expected one of {', '.join(names)}"
        )
    for name in chosen:
        for path in importlib.import_module(name).draw(HERE):
            print(Path(path).relative_to(HERE.parents[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
