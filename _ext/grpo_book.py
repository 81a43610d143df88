"""Local Sphinx extension of the book "GRPO, interactively".

Registered in ``_config.yml`` (``sphinx: local_extensions: {grpo_book: _ext}``). It

1. sets ``GRPO_BOOK_BUILD=1`` in the build process when the configuration is
   read, before myst-nb starts any kernel; kernels inherit it, and
   ``import grpo_core.viz`` then switches plotly to ``grpo_core.viz.plots.BookRenderer``
   (figures become ``text/html`` that myst-nb keeps);
2. copies ``plotly.min.js`` from the installed plotly package to the HTML
   output's ``_static/`` once, with ``static/grpo-plotly-loader.js``, and links the
   loader (a few lines, before the scripts of other extensions) from the pages that
   contain a figure. The loader draws each figure when it nears the viewport and
   fetches plotly.min.js for the first one, so a page's first screen does not wait
   for 4.8 MB of JavaScript;
3. after the build, compares per page the plotly figures the executed notebook
   displayed with the figures in the HTML, and warns for every figure that did
   not make it (an ``application/vnd.plotly.v1+json`` output with no HTML, or a
   count mismatch). Under ``-W`` the warning fails the build;
4. serves MathJax 3 from the book itself: copies ``tex-chtml-full.js``, its
   web fonts and its lazy-typesetting module ``ui/lazy.js`` from the installed
   ``sphinx-mathjax-offline`` package (a pip package that ships MathJax 3's files;
   its Sphinx extension is not used) to ``_static/mathjax/``, points
   ``mathjax_path`` there, so equations render with no network, and loads
   ``ui/lazy`` (equations are typeset when they near the viewport);
5. removes repeated scripts: sphinx-thebe and sphinx-togglebutton register
   their inline scripts on ``env-before-read-docs``, which Jupyter Book fires
   twice, and a repeated ``const THEBE_JS_URL = ...`` is a JavaScript error on
   every page;
6. after the build, prints the size of every page and of the whole site and
   warns when a page is over ``PAGE_BUDGET_MB`` or the site over ``SITE_BUDGET_MB``;
7. provides the directive ``grpo-code-map``: the table of the page "Where the code is", built
   from the book's equation labels and grpo_core's docstrings at build time
   (``_ext/code_map.py``, read from the sources, no import of grpo_core);
8. hides the input of each chapter's setup cell (the first code cell that calls
   ``notebook_setup``: Colab's install, which HTML readers don't need) in the built page,
   without touching the notebook, and adds ``assets/grpo-book.css`` (long output lines wrap);
9. for HTML builds, declares two extensions that Jupyter Book adds safe for parallel reading:
   ``sphinx_multitoc_numbering`` only replaces the section numbering, which runs in the main
   process after reading, and ``sphinx_jupyterbook_latex`` does nothing unless the builder is
   LaTeX. Undeclared, they make Sphinx read serially and warn, which ``-W`` turns into a failure
   of ``tools/build_book.py`` (the chapters executed two at a time).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import sys

import nbformat
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

sys.path.insert(0, str(Path(__file__).resolve().parent))
import code_map  # noqa: E402

logger = logging.getLogger(__name__)

BOOK_BUILD_ENV = "GRPO_BOOK_BUILD"
# Same prefix as grpo_core.viz.plots.DIV_ID_PREFIX (not imported, so the build
# process does not import grpo_core and torch); tests/test_book_plumbing.py checks they agree.
DIV_ID_PREFIX = "grpo-plotly-"
PLOTLY_JS = "plotly.min.js"
PLOTLY_LOADER = "grpo-plotly-loader.js"        # in _ext/static/, copied to _static/
MATHJAX_PATH = "mathjax/tex-chtml-full.js"     # relative to _static
MATHJAX_FONTS = "output/chtml/fonts/woff-v2"   # where tex-chtml looks for its fonts, next to it
MATHJAX_LAZY = "ui/lazy.js"                    # MathJax 3's lazy typesetting, loaded as "ui/lazy"
PAGE_BUDGET_MB = 1.0   # issue 17: at most 1 MB of HTML per chapter
SITE_BUDGET_MB = 40.0
PLOTLY_MIME = "application/vnd.plotly.v1+json"
# The loader runs before extension scripts of the default priority 500, so that it exists when
# the figures' inline scripts run; it hides require.js's define while plotly.min.js (a UMD
# bundle, which would otherwise register as an AMD module) runs.
PLOTLY_JS_PRIORITY = 400
# Cell tags with which myst-nb leaves a cell's outputs out of the page on purpose.
_REMOVED_OUTPUT_TAGS = {"remove-output", "remove_output", "remove-cell", "remove_cell"}


def _plotly_js_source() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / PLOTLY_JS


def _set_build_env(app: Sphinx, config) -> None:
    os.environ[BOOK_BUILD_ENV] = "1"
    config.mathjax_path = MATHJAX_PATH
    config.mathjax3_config = _with_lazy_typesetting(config.mathjax3_config)


def _with_lazy_typesetting(mathjax3_config) -> dict:
    """``mathjax3_config`` (Sphinx's ``window.MathJax``) with MathJax 3's ``ui/lazy`` added to the
    components its loader loads; whatever else the configuration holds is kept."""
    merged = dict(mathjax3_config or {})
    loader = dict(merged.get("loader") or {})
    load = list(loader.get("load") or [])
    if "ui/lazy" not in load:
        load.append("ui/lazy")
    loader["load"] = load
    merged["loader"] = loader
    return merged


def _mathjax_source() -> Path:
    from importlib.metadata import distribution

    return Path(distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline/static/mathjax"))


def _copy_mathjax(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    source = _mathjax_source()
    entry = source / Path(MATHJAX_PATH).name
    fonts = source / MATHJAX_FONTS
    lazy = source / MATHJAX_LAZY
    if not entry.is_file() or not fonts.is_dir() or not lazy.is_file():
        logger.warning(f"MathJax files not found under {source}; install sphinx-mathjax-offline",
                       type="grpo_book", subtype="mathjax")
        return
    target = Path(app.outdir) / "_static" / Path(MATHJAX_PATH).parent
    (target / MATHJAX_FONTS).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry, target / entry.name)
    (target / MATHJAX_LAZY).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(lazy, target / MATHJAX_LAZY)
    for font in fonts.glob("*.woff"):
        shutil.copyfile(font, target / MATHJAX_FONTS / font.name)


def _dedupe_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Drop repeated scripts from the page (same file or same inline body and attributes).

    An inline script registered before the HTML builder exists comes back with filename ``""``
    from the registry and ``None`` from the builder, so the two copies differ only there.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for js in scripts:
        key = (getattr(js, "filename", js) or "",
               tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def _report_sizes(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    site = sum(f.stat().st_size for f in outdir.rglob("*") if f.is_file())
    pages = []
    for docname in sorted(app.env.found_docs):
        path = Path(app.builder.get_outfilename(docname))
        if path.is_file():
            pages.append((path.stat().st_size, docname))
    logger.info("grpo_book: page sizes (HTML, figures inline; shared _static files counted once in the site): "
                + ", ".join(f"{name} {size / 2**20:.2f} MB" for size, name in pages))
    logger.info(f"grpo_book: site {site / 2**20:.1f} MB in {sum(1 for f in outdir.rglob('*') if f.is_file())} files")
    for size, name in pages:
        if size > PAGE_BUDGET_MB * 2**20:
            logger.warning(f"page is {size / 2**20:.2f} MB, over the {PAGE_BUDGET_MB} MB budget",
                           location=name, type="grpo_book", subtype="size")
    if site > SITE_BUDGET_MB * 2**20:
        logger.warning(f"site is {site / 2**20:.1f} MB, over the {SITE_BUDGET_MB} MB budget",
                       type="grpo_book", subtype="size")


def _copy_plotly_js(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    source = _plotly_js_source()
    if not source.is_file():
        logger.warning(
            f"{source} not found: figures need plotly.js; reinstall plotly",
            type="grpo_book",
            subtype="plotly_js",
        )
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, static / PLOTLY_JS)
    shutil.copyfile(Path(__file__).resolve().parent / "static" / PLOTLY_LOADER, static / PLOTLY_LOADER)


def _link_plotly_js(app: Sphinx, pagename, templatename, context, doctree) -> None:
    if app.builder.format != "html":
        return
    if DIV_ID_PREFIX in context.get("body", ""):
        app.add_js_file(PLOTLY_LOADER, priority=PLOTLY_JS_PRIORITY)


def _expected_figures(nb_path: Path) -> tuple[int, list[str]]:
    """Count figures a page must show; list outputs that can not be shown."""
    nb = nbformat.read(nb_path, as_version=4)
    expected, lost = 0, []
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        removed = bool(_REMOVED_OUTPUT_TAGS & set(cell.get("metadata", {}).get("tags", [])))
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            html = data.get("text/html", "")
            if isinstance(html, list):
                html = "".join(html)
            if DIV_ID_PREFIX in html:
                expected += 0 if removed else 1
            elif PLOTLY_MIME in data and not removed:
                lost.append(
                    f"code cell {code_index} displayed a plotly figure as {PLOTLY_MIME} "
                    "only, which myst-nb drops; import grpo_core before plotting (with "
                    f"{BOOK_BUILD_ENV}=1 it switches plotly to the book renderer)"
                )
    return expected, lost


def _check_figures(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    exec_dir = outdir.parent / "jupyter_execute"
    counts = []
    total = 0
    for docname in sorted(app.env.found_docs):
        nb_path = exec_dir / f"{docname}.ipynb"
        html_path = Path(app.builder.get_outfilename(docname))
        if not nb_path.is_file() or not html_path.is_file():
            continue
        expected, lost = _expected_figures(nb_path)
        page = html_path.read_text(encoding="utf-8")
        shown = page.count(f'<div id="{DIV_ID_PREFIX}')
        total += shown
        counts.append(f"{docname}: {shown}")
        for problem in lost:
            logger.warning(problem, location=docname, type="grpo_book", subtype="figure")
        if shown != expected:
            logger.warning(
                f"{expected} plotly figure(s) in the executed notebook, {shown} in {html_path}",
                location=docname,
                type="grpo_book",
                subtype="figure",
            )
        if shown and f"_static/{PLOTLY_LOADER}" not in page:
            logger.warning(
                f"page has figures but does not load _static/{PLOTLY_LOADER}",
                location=docname,
                type="grpo_book",
                subtype="plotly_js",
            )
    for name in (PLOTLY_JS, PLOTLY_LOADER):
        if total and not (outdir / "_static" / name).is_file():
            logger.warning(f"_static/{name} missing from {outdir}", type="grpo_book", subtype="plotly_js")
    if counts:
        logger.info("grpo_book: plotly figures per page: " + ", ".join(counts))


class CodeMapDirective(SphinxDirective):
    """``grpo-code-map``: one table row per labelled equation, with the page that explains it and
    the grpo_core functions whose docstrings cite it. Rebuilt on every build, since it depends on
    the sources of every chapter and of the package."""

    has_content = False

    def run(self):
        root = Path(self.env.srcdir)
        for path in sorted((root / "grpo_core").rglob("*.py")) + sorted((root / "book").glob("*.ipynb")):
            self.env.note_dependency(str(path))
        container = nodes.container(classes=["grpo-code-map"])
        text = code_map.code_map_markdown(root)
        self.state.nested_parse(StringList(text.splitlines(), source="grpo-code-map"), self.content_offset, container)
        return [container]


#: extensions the book loads that are safe for parallel reading of HTML but do not say so (item 8)
PARALLEL_SAFE_UNDECLARED = ("sphinx_multitoc_numbering", "sphinx_jupyterbook_latex")


def _declare_parallel_safe(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    for name in PARALLEL_SAFE_UNDECLARED:
        ext = app.extensions.get(name)
        if ext is not None and ext.parallel_read_safe is None:
            ext.parallel_read_safe = True


SETUP_CALL = "notebook_setup("
BOOK_CSS = "grpo-book.css"  # in assets/, next to the book's root


def _hide_setup_input(app: Sphinx, doctree) -> None:
    """Remove the source of the first code cell that calls ``notebook_setup`` (its output, the
    versions line, stays): the install cell is for Colab, the HTML reader needs none of it."""
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        sources = [c for c in cell.children if isinstance(c, nodes.container) and c.get("nb_element") == "cell_code_source"]
        if sources and SETUP_CALL in sources[0].astext():
            cell.remove(sources[0])
            cell["classes"] = [*cell.get("classes", []), "grpo-setup-cell"]
            return
        if sources:
            return  # only the first code cell of a page is the setup cell


def _add_book_css(app: Sphinx) -> None:
    assets = str(Path(app.srcdir) / "assets")
    if assets not in app.config.html_static_path:
        app.config.html_static_path.append(assets)
    app.add_css_file(BOOK_CSS)


def setup(app: Sphinx) -> dict:
    app.add_directive("grpo-code-map", CodeMapDirective)
    app.connect("config-inited", _set_build_env)
    app.connect("builder-inited", _declare_parallel_safe)
    app.connect("builder-inited", _add_book_css)
    app.connect("doctree-read", _hide_setup_input)
    app.connect("builder-inited", _copy_plotly_js)
    app.connect("builder-inited", _copy_mathjax)
    app.connect("html-page-context", _link_plotly_js)
    app.connect("html-page-context", _dedupe_scripts, priority=1)
    app.connect("build-finished", _check_figures)
    app.connect("build-finished", _report_sizes)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
