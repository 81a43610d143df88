"""The HTML reader's view of a chapter: no Colab install cell source, long output lines wrap."""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

from _sources import load_source

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def _ext():
    return load_source("_ext/grpo_book.py")


def _cell(source: str, output: str = "out"):
    """A code cell as myst-nb puts it in the doctree."""
    cell = nodes.container(nb_element="cell_code", classes=["cell"])
    src = nodes.container(nb_element="cell_code_source", classes=["cell_input"])
    src += nodes.literal_block(source, source)
    out = nodes.container(nb_element="cell_code_output", classes=["cell_output"])
    out += nodes.literal_block(output, output)
    cell += [src, out]
    return cell


def _doctree(*cells):
    doc = new_document("chapter", get_default_settings(Parser))
    for c in cells:
        doc += c
    return doc


def _first_code_source(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def test_the_setup_cell_loses_its_input_and_keeps_its_output():
    ext = _ext()
    setup_src = _first_code_source(ROOT / "book" / "normalisation.ipynb")
    doc = _doctree(_cell(setup_src, "grpo_core 0.2.0 | no GPU"), _cell("notebook_setup()  # a second call is a reader's cell", "x"))
    ext._hide_setup_input(None, doc)
    first, second = [c for c in doc.findall(nodes.container) if c.get("nb_element") == "cell_code"]
    kinds = [c.get("nb_element") for c in first.children]
    assert kinds == ["cell_code_output"] and "grpo_core 0.2.0" in first.astext() and "pip install" not in first.astext()
    assert [c.get("nb_element") for c in second.children] == ["cell_code_source", "cell_code_output"]


def test_only_a_first_code_cell_that_calls_notebook_setup_is_hidden():
    ext = _ext()
    doc = _doctree(_cell("x = 1"), _cell("notebook_setup()"))
    ext._hide_setup_input(None, doc)
    assert all(len(c.children) == 2 for c in doc.findall(nodes.container) if c.get("nb_element") == "cell_code")


def test_every_chapter_setup_cell_is_recognised():
    ext = _ext()
    for path in CHAPTERS:
        assert ext.SETUP_CALL in _first_code_source(path), path.name


def test_the_book_css_is_added_and_wraps_long_output_lines():
    ext = _ext()

    class App:
        srcdir = str(ROOT)

        class config:
            html_static_path = ["_static"]

        css = []

        def add_css_file(self, name):
            self.css.append(name)

    app = App()
    ext._add_book_css(app)
    assert app.css == [ext.BOOK_CSS] and str(ROOT / "assets") in app.config.html_static_path
    css = (ROOT / "assets" / ext.BOOK_CSS).read_text()
    rule = re.search(r"div\.cell_output pre[^{]*\{([^}]*)\}", css)
    assert rule and "white-space: pre-wrap" in rule.group(1) and "overflow-wrap: anywhere" in rule.group(1)
