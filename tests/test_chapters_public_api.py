"""Chapters use grpo_core's public API only: no private name, no patched module.

A chapter that reaches into ``tr._rollout`` or assigns ``grpo_core.training.trainer.grpo_loss``
breaks silently when the library changes, and teaches readers to do the same. The library offers
public entry points instead (e.g. ``GRPOTrainer.rollout``, ``GRPOTrainer.loss_fn``).
"""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))


def cell_sources(path: Path) -> list[str]:
    nb = nbformat.read(str(path), as_version=4)
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        out.append(cell.source)
    return out


def python_only(source: str) -> str:
    """IPython magics and shell escapes are not Python: blank them out, keep the line numbers."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def is_module(dotted: str) -> bool:
    try:
        return isinstance(importlib.import_module(dotted), types.ModuleType)
    except ImportError:
        return False


def violations(source: str) -> list[str]:
    """What in ``source`` (one code cell) uses a private grpo_core name or patches a grpo_core module."""
    tree = ast.parse(python_only(source))
    modules: set[str] = set()  # local names bound to grpo_core modules
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "grpo_core":
                    if any(part.startswith("_") for part in alias.name.split(".")):
                        bad.append(f"imports the private module {alias.name}")
                    modules.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "grpo_core":
            if any(part.startswith("_") for part in node.module.split(".")):
                bad.append(f"imports from the private module {node.module}")
            for alias in node.names:
                if alias.name.startswith("_"):
                    bad.append(f"imports the private name {alias.name} from {node.module}")
                if is_module(f"{node.module}.{alias.name}"):
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            bad.append(f"line {node.lineno}: uses the private attribute .{node.attr}")
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id in modules:
                    bad.append(f"line {node.lineno}: assigns {sub.value.id}.{sub.attr} (a grpo_core module attribute)")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr")
                and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in modules):
            bad.append(f"line {node.lineno}: {node.func.id} on the grpo_core module {node.args[0].id}")
    return bad


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_uses_only_the_public_api(path):
    found = [f"cell {k}: {v}" for k, src in enumerate(cell_sources(path)) for v in violations(src)]
    assert not found, f"{path.name}:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from grpo_core.viz.explorers.extensions import _curves",
        "import grpo_core.training.trainer as t\nt.grpo_loss = print",
        "from grpo_core.training import trainer\ntrainer.grpo_loss = print",
        "import grpo_core\ngrpo_core.PRESETS = {}",
        "import grpo_core.training.trainer as t\nsetattr(t, 'grpo_loss', print)",
        "batch = tr._rollout(ids)",
        "from grpo_core import _checks",
    ],
)
def test_the_checker_catches_reach_ins(source):
    assert violations(source)


def test_the_checker_passes_public_use():
    assert not violations("from grpo_core.training import GRPOTrainer\ntr.loss_fn = spy\nbatch = tr.rollout(ids)\n%pip install x")
