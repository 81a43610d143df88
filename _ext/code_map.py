"""Where the book's equations live in the code, read from the sources (no import of grpo_core).

- :func:`book_labels`: every label of the book: equations (``$$ ... $$ (label)``) and sections
  (``(label)=``), with the page that defines them;
- :func:`code_citations`: every book label that a docstring of grpo_core cites, as
  ``Eq. ``label````, ``Eqs. ``a``, ``b````, ``Eqs. ``a``..``b```` or ``section ``label````;
- :func:`code_map_markdown`: the table of the page "Where the code is" (``book/code-map.md``),
  one row per labelled equation: the equation, the page that explains it, and the functions
  whose docstrings cite it.

Used by the book extension (``_ext/grpo_book.py``, directive ``grpo-code-map``) and by
``tests/test_code_map.py``, which fails when a docstring cites a label that does not exist.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

EQ_LABEL = re.compile(r"\$\$\s*\(([A-Za-z0-9_-]+)\)")
SECTION_LABEL = re.compile(r"^\(([A-Za-z0-9_-]+)\)=\s*$", re.M)
CITATION = re.compile(r"\b(Eqs?\.|[Ss]ection)\s+(``[\w-]+``(?:\s*(?:\.\.|,|and|or)\s*``[\w-]+``)*)")
NAME = re.compile(r"``([\w-]+)``")


@dataclass(frozen=True)
class Label:
    name: str
    kind: str  # "equation" or "section"
    page: str  # docname, e.g. "book/kl"


@dataclass(frozen=True)
class Citation:
    label: str
    kind: str  # "equation" (cited as Eq.) or "section"
    obj: str  # dotted name of the module, class or function whose docstring cites it
    path: str  # file, relative to the repository
    line: int


def _page_text(path: Path) -> str:
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return path.read_text(encoding="utf-8")


def book_labels(root: Path) -> dict[str, Label]:
    """Every label of the pages under ``root / "book"``, by name."""
    labels: dict[str, Label] = {}
    for path in sorted((root / "book").glob("*")):
        if path.suffix not in (".ipynb", ".md"):
            continue
        text = _page_text(path)
        page = f"book/{path.stem}"
        for kind, pattern in (("equation", EQ_LABEL), ("section", SECTION_LABEL)):
            for name in pattern.findall(text):
                labels[name] = Label(name, kind, page)
    return labels


def code_citations(root: Path) -> list[Citation]:
    """Every citation of a book label in the docstrings of ``root / "grpo_core"``."""
    out = []
    pkg = root / "grpo_core"
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(root)
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))

        def visit(node, prefix):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                first = node.body[0].lineno if getattr(node, "body", None) else 1
                for m in CITATION.finditer(doc):
                    kind = "section" if m.group(1).lower().startswith("section") else "equation"
                    names = NAME.findall(m.group(2))
                    line = first + doc[: m.start()].count("\n")
                    out.extend(Citation(n, kind, prefix, str(rel), line) for n in names)
            for child in getattr(node, "body", []):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    visit(child, f"{prefix}.{child.name}")

        visit(tree, module)
    return out


def _public_name(obj: str) -> str:
    """``grpo_core.objective.grpo_loss`` -> ``grpo_core.objective.grpo_loss``; private helpers
    are shown under the module or class that holds them."""
    parts = obj.split(".")
    while len(parts) > 2 and parts[-1].startswith("_"):
        parts.pop()
    return ".".join(parts)


def toc_pages(root: Path) -> list[str]:
    """The pages of ``_toc.yml`` in reading order (root first)."""
    pages = []
    for line in (root / "_toc.yml").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*(?:-\s*)?(?:root|file):\s*(\S+)", line)
        if m:
            pages.append(m.group(1))
    return pages


def code_map_markdown(root: Path) -> str:
    """MyST markdown: one table row per labelled equation of the book, in reading order."""
    labels = book_labels(root)
    cites: dict[str, list[str]] = {}
    for c in code_citations(root):
        name = _public_name(c.obj)
        if name not in cites.setdefault(c.label, []):
            cites[c.label].append(name)
    order = toc_pages(root)
    rows = ["| equation | explained in | computed by |", "|---|---|---|"]
    equations = [lab for lab in labels.values() if lab.kind == "equation"]
    equations.sort(key=lambda lab: order.index(lab.page) if lab.page in order else len(order))
    for lab in equations:
        names = cites.get(lab.name, [])
        # a module's docstring counts only when none of its own functions cites the equation
        names = [n for n in names if not any(o != n and o.startswith(n + ".") for o in names)]
        funcs = ", ".join(f"`{f}`" for f in names) or "(stated, not computed)"
        rows.append(f"| {{eq}}`{lab.name}` | {{doc}}`/{lab.page}` | {funcs} |")
    return "\n".join(rows) + "\n"
