"""Imports point down: cli -> train -> nn -> cells -> functional.

Every module of minirnn is parsed with ``ast`` (not imported), and every import
in it counts, those inside functions included: a function-local import hides a
dependency from the top of the file, not from the program.
"""

import ast
from pathlib import Path

import pytest

import minirnn

ROOT = Path(minirnn.__file__).parent

# What a package may not import: everything above it in the layering.
FORBIDDEN = {
    "functional": {
        "cells",
        "nn",
        "train",
        "plot",
        "cli",
        "gradcheck",
        "bench",
        "runs",
        "data",
        "tasks",
        "optim",
        "checkpoint",
    },
    "cells": {
        "nn",
        "train",
        "plot",
        "cli",
        "gradcheck",
        "bench",
        "runs",
        "data",
        "tasks",
        "optim",
        "checkpoint",
    },
    "nn": {"train", "plot", "cli", "gradcheck", "bench", "runs", "data", "tasks", "checkpoint"},
    "data": {
        "functional",
        "cells",
        "nn",
        "train",
        "plot",
        "cli",
        "gradcheck",
        "bench",
        "runs",
        "tasks",
        "optim",
        "checkpoint",
    },
}


def module_names(root):
    """{dotted name: (path, is_package)} for every .py file under ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path, is_package)
    return modules


def imports_of(name, path, is_package, modules):
    """[(target module, imported name or None, line)] for every import of a minirnn
    module in the file. ``from pkg import sub`` targets the submodule ``pkg.sub``;
    ``from mod import x`` targets ``mod`` with the name ``x``."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [
                (a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "minirnn"
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                target = node.module
            if target.split(".")[0] != "minirnn":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append(
                    (sub, None, node.lineno)
                    if sub in modules
                    else (target, alias.name, node.lineno)
                )
    return found


def all_imports(root=ROOT):
    """{module: [(target, name, line)]} for the whole package at ``root``."""
    modules = module_names(root)
    return {
        name: imports_of(name, path, is_package, modules)
        for name, (path, is_package) in modules.items()
    }, modules


def package_of(name, modules):
    """The package a module belongs to (a package belongs to itself)."""
    return name if modules[name][1] else name.rpartition(".")[0]


def is_private(part):
    return part.startswith("_") and not part.startswith("__")


def layer(name):
    """minirnn.cells.lstm -> 'cells'; minirnn.train -> 'train'; minirnn -> ''."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def layering_violations(imports):
    return [
        f"{module}:{line} imports {target} ({layer(module)} may not import {layer(target)})"
        for module, found in imports.items()
        for target, _, line in found
        if layer(target) in FORBIDDEN.get(layer(module), ())
    ]


def privacy_violations(imports, modules):
    bad = []
    for module, found in imports.items():
        home = package_of(module, modules)
        for target, name, line in found:
            parts = target.split(".")
            for k, part in enumerate(parts):
                if is_private(part) and ".".join(parts[:k]) != home:
                    bad.append(f"{module}:{line} imports the private module {target}")
            if name is not None and is_private(name) and package_of(target, modules) != home:
                bad.append(f"{module}:{line} imports the private name {name} of {target}")
    return bad


def import_cycles(imports):
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    graph = {m: {t for t, _, _ in found if t != m and t in imports} for m, found in imports.items()}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


IMPORTS, MODULES = all_imports()


def test_the_parser_sees_local_and_relative_imports():
    # function-local imports count (cli imports its commands inside functions)
    assert ("minirnn.train", "TrainingDiverged") in {(t, n) for t, n, _ in IMPORTS["minirnn.cli"]}
    # "from . import _vc_mask" inside cells is the module minirnn.cells._vc_mask
    assert "minirnn.cells._vc_mask" in {t for t, _, _ in IMPORTS["minirnn.cells.vcrnn"]}
    # "from .. import functional as F" is the package minirnn.functional
    assert "minirnn.functional" in {t for t, _, _ in IMPORTS["minirnn.nn.layers"]}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(package):
    bad = [v for v in layering_violations(IMPORTS) if v.split(":")[0].split(".")[1] == package]
    assert not bad, "\n".join(bad)


# The one exception: the normalized and the variable-computation LSTMs are LSTMs,
# and call the LSTM's own elementwise equations (lstm.gates_and_cell,
# lstm.gate_gradients, ...), written once.
BUILDS_ON = {
    f"minirnn.cells.{name}": {"minirnn.cells.lstm"} for name in ("bnlstm", "lnlstm", "vclstm")
}


def cell_to_cell_imports(imports):
    """A cell module importing another (but what BUILDS_ON allows): shared code
    belongs in the cells' own helper modules (the VC scheduler in _vc_mask)."""

    def is_cell(name):
        parts = name.split(".")
        return len(parts) == 3 and parts[1] == "cells" and not parts[2].startswith("_")

    return [
        f"{m}:{line} imports {t}"
        for m, found in imports.items()
        if is_cell(m)
        for t, _, line in found
        if is_cell(t) and t not in BUILDS_ON.get(m, ())
    ]


def test_cells_do_not_import_each_other():
    bad = cell_to_cell_imports(IMPORTS)
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_command_line_but_main():
    bad = [
        f"{m}:{line}"
        for m, found in IMPORTS.items()
        for t, _, line in found
        if t == "minirnn.cli" and m != "minirnn.__main__"
    ]
    assert not bad, bad


def test_no_module_imports_a_private_module_or_name_of_another_package():
    bad = privacy_violations(IMPORTS, MODULES)
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    cycles = import_cycles(IMPORTS)
    assert not cycles, cycles


def test_the_checks_catch_what_they_are_meant_to_catch(tmp_path):
    # a small package with one of each defect: the test above must not pass vacuously
    pkg = tmp_path / "minirnn"
    for folder in ("cells", "functional", "nn"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "cells" / "_mask.py").write_text("def _helper(): pass\n")
    (pkg / "cells" / "lstm.py").write_text("from ._mask import _helper\n")  # allowed
    (pkg / "cells" / "gru.py").write_text("from .lstm import _helper\n")
    (pkg / "functional" / "conv.py").write_text("def f():\n    from ..nn import layers\n")
    (pkg / "nn" / "layers.py").write_text(
        "from ..cells._mask import _helper\nfrom ..functional import conv\n"
    )
    (pkg / "train.py").write_text("from . import plot\n")
    (pkg / "plot.py").write_text("def f():\n    from .train import x\n")
    imports, modules = all_imports(pkg)
    assert layering_violations(imports) == [
        "minirnn.functional.conv:2 imports minirnn.nn.layers (functional may not import nn)"
    ]
    assert privacy_violations(imports, modules) == [
        "minirnn.nn.layers:1 imports the private module minirnn.cells._mask",
        "minirnn.nn.layers:1 imports the private name _helper of minirnn.cells._mask",
    ]
    assert cell_to_cell_imports(imports) == ["minirnn.cells.gru:1 imports minirnn.cells.lstm"]
    assert import_cycles(imports) == [
        ["minirnn.functional.conv", "minirnn.nn.layers"],
        ["minirnn.plot", "minirnn.train"],
    ]
