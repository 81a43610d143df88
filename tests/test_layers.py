"""The layers of grpo_core and the direction of their imports (grpo_core/__init__.py explains them).

- the core (top-level modules) imports only the standard library, torch and other core modules;
- analysis imports the core, NumPy and torch; training imports the core and torch; neither
  imports plotly, ipywidgets, IPython or anywidget, nor the viz layer;
- viz may import anything;
- there is no import cycle, counting imports inside functions.

The imports are read from the source (every ``import`` statement at any depth, and
``importlib.import_module`` of a constant string), so a new violation fails here.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "grpo_core"
LAYERS = ("core", "analysis", "training", "viz")
WIDGETS = {"plotly", "ipywidgets", "IPython", "anywidget", "google", "ipykernel", "nbformat"}
#: External packages each layer may import, besides the standard library.
EXTERNAL = {"core": {"torch"}, "analysis": {"torch", "numpy"}, "training": {"torch", "numpy"}, "viz": None}
#: Optional frameworks a module may import inside its functions only (never at module level), so
#: that importing grpo_core still needs torch and NumPy alone: the TRL check of the chapter
#: "Checking a real trainer".
OPTIONAL = {"grpo_core.training.trl_check": {"trl", "transformers", "tokenizers", "datasets"}}
#: Internal layers each layer may import.
INTERNAL = {"core": {"core"}, "analysis": {"core", "analysis"}, "training": {"core", "training"}, "viz": set(LAYERS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "core"
    if parts[1] in ("analysis", "training", "viz"):
        return parts[1]
    if parts[1] == "train":  # the command line entry point, `python -m grpo_core.train`
        return "training"
    return "core"


def imports_of(module: str) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import in ``module``'s source, at any depth."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub if sub in MODULES else target, node.lineno))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.args[0].value, node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in imports_of(m) if t in MODULES and t != m} for m in MODULES}


def test_every_module_has_a_layer():
    assert {layer_of(m) for m in MODULES} == set(LAYERS)
    assert layer_of("grpo_core.objective") == "core"
    assert layer_of("grpo_core.viz.explorers.kl") == "viz"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_layers(module):
    layer = layer_of(module)
    bad = []
    for target, line in imports_of(module):
        top = target.split(".")[0]
        if top == "grpo_core":
            if target not in MODULES:
                bad.append(f"line {line}: {target} is not a module of grpo_core")
            elif layer_of(target) not in INTERNAL[layer]:
                bad.append(f"line {line}: imports {target} ({layer_of(target)} layer)")
        elif top == "__future__" or top in sys.stdlib_module_names:
            continue
        elif top in OPTIONAL.get(module, ()) and line not in module_level_lines(module):
            continue
        elif EXTERNAL[layer] is not None and top not in EXTERNAL[layer]:
            bad.append(f"line {line}: imports {top}, which the {layer} layer must not")
    assert not bad, f"{module} ({layer} layer):\n" + "\n".join(bad)


def module_level_lines(module: str) -> set[int]:
    """Lines of the imports that run when ``module`` is imported (module level, or in a module-level
    if/try/with block), as opposed to imports inside functions and classes."""
    tree = ast.parse(MODULES[module].read_text())
    lines, todo = set(), list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            lines.add(node.lineno)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            todo += [n for field in ("body", "orelse", "finalbody") for n in getattr(node, field, [])]
            todo += [n for h in getattr(node, "handlers", []) for n in h.body]
    return lines


def test_optional_frameworks_are_imported_inside_functions_only():
    for module in OPTIONAL:
        seen = {t.split(".")[0] for t, _ in imports_of(module)}
        assert OPTIONAL[module] & seen, f"{module} no longer imports {OPTIONAL[module]}: drop it from OPTIONAL"
        top = {t.split(".")[0] for t, line in imports_of(module) if line in module_level_lines(module)}
        assert not top & OPTIONAL[module], f"{module} imports {top & OPTIONAL[module]} at module level"


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``g`` as a list of modules, or None."""
    colour = {m: 0 for m in g}  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m):
        colour[m] = 1
        stack.append(m)
        for t in sorted(g[m]):
            if colour[t] == 1:
                return stack[stack.index(t):] + [t]
            if colour[t] == 0:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        colour[m] = 2
        return None

    for m in sorted(g):
        if colour[m] == 0:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_reader_sees_deferred_and_relative_imports(tmp_path):
    # the rules above depend on imports_of seeing imports inside functions, relative imports
    # and importlib calls: check it on modules of the package that have each kind
    seen = {t for t, _ in imports_of("grpo_core.viz.curves")}
    assert "grpo_core.training.runs" in seen and "plotly" in {t.split(".")[0] for t in seen}
    assert "grpo_core.objective" in {t for t, _ in imports_of("grpo_core.training.trainer")}
    assert "grpo_core.viz.plots" in {t for t, _ in imports_of("grpo_core.viz.explorers.kl")}


BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = {"plotly", "ipywidgets", "IPython", "anywidget", "ipykernel"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
    sys.meta_path.insert(0, Block())
    """
)


def run_blocked(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRPO_CORE_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("GRPO_BOOK_BUILD", None)
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


def test_core_analysis_training_and_cli_work_without_plotly_or_widgets(tmp_path):
    out = run_blocked(
        """
        import torch, grpo_core
        from grpo_core import group_advantages, grpo_loss
        adv = group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 4)
        lp = torch.zeros(4, 3, requires_grad=True)
        loss, _ = grpo_loss(lp, lp.detach(), None, adv, torch.ones(4, 3), beta=0.0)
        loss.backward()
        import grpo_core.analysis.rewards, grpo_core.analysis.variance, grpo_core.analysis.toy_prompts
        import grpo_core.analysis.kl_analysis, grpo_core.analysis.policy_gradient, grpo_core.analysis.collapse
        from grpo_core.training import GRPOConfig, make_trainer, run
        cfg = GRPOConfig(steps=1, sft_steps=2, prompts_per_step=2, G=2, eval_size=8, task_size=2, d_model=16, n_heads=2, n_layers=1)
        result = run(cfg, eval_every=1)
        assert len(result.history) == 1
        try:
            import grpo_core.viz
        except ImportError as err:
            print("viz needs the book extra:", err)
        print("ok", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "ok []" in out.stdout
    assert "viz needs the book extra" in out.stdout  # the block works: viz cannot be imported


def test_cli_help_works_without_plotly_or_widgets(tmp_path):
    out = run_blocked(
        """
        import runpy
        sys.argv = ["grpo_core.train", "--help"]
        try:
            runpy.run_module("grpo_core.train", run_name="__main__")
        except SystemExit as exit:
            assert exit.code == 0, exit.code
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "usage: python -m grpo_core.train" in out.stdout
