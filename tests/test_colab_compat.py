"""Colab compatibility: the display mode chosen per environment, the static explorer's HTML, the
trainer's widget-free live view in Colab, and the version helpers (issue 14)."""

from __future__ import annotations

import json
import re
import sys
import types

import plotly.graph_objects as go
import pytest

from grpo_core.viz import _compat, curves, interactive
from grpo_core.viz._compat import MODE_ENV, StaticView, default_show_mode, version_tuple
from grpo_core.viz.interactive import Choice, Explorer, Slider
from grpo_core.viz.plots import BOOK_BUILD_ENV

from _sources import load_source


def _toy():
    def figure(a=1, kind="line"):
        return go.Figure(go.Scatter(x=[0, 1], y=[0, a], mode="lines" if kind == "line" else "markers"))

    return Explorer("toy", "a toy", [Slider("a", 0, 2, 1, 1), Choice("kind", {"line": "line", "dots": "dots"}, "line")], figure)


@pytest.fixture
def colab(monkeypatch):
    """A stand-in `google.colab` that records enable_custom_widget_manager calls."""
    calls = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("enabled"))
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(interactive, "_colab_manager_enabled", False)
    monkeypatch.delenv(BOOK_BUILD_ENV, raising=False)
    monkeypatch.delenv(MODE_ENV, raising=False)
    return calls


@pytest.fixture
def not_colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # the import fails
    monkeypatch.delenv(BOOK_BUILD_ENV, raising=False)
    monkeypatch.delenv(MODE_ENV, raising=False)


@pytest.fixture
def shown(monkeypatch):
    import IPython.display

    out = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: out.append(obj))
    return out


def _mode():
    return default_show_mode(colab=interactive.in_colab(), book_build=interactive.in_book_build())


def test_default_mode_is_static_in_colab_and_in_the_book_and_live_elsewhere(colab, monkeypatch):
    assert _mode() == "static"
    monkeypatch.setenv(MODE_ENV, "live")  # a Colab reader who wants the widgets
    assert _mode() == "live"
    monkeypatch.setenv(BOOK_BUILD_ENV, "1")  # the book build is static whatever the variable says
    assert _mode() == "static"


def test_default_mode_outside_colab_is_live_and_the_variable_is_checked(not_colab, monkeypatch):
    assert _mode() == "live"
    monkeypatch.setenv(MODE_ENV, "STATIC ")
    assert _mode() == "static"
    monkeypatch.setenv(MODE_ENV, "widgets")
    with pytest.raises(ValueError, match=MODE_ENV):
        _mode()


def test_show_follows_the_mode_variable_outside_colab(not_colab, shown, monkeypatch):
    monkeypatch.setenv(MODE_ENV, "static")
    _toy().show()
    assert isinstance(shown[0], StaticView)


def test_show_in_colab_displays_the_static_view_and_no_widget(colab, shown):
    _toy().show()
    assert len(shown) == 1 and isinstance(shown[0], StaticView)
    assert colab == []  # the custom widget manager stays off


def test_show_live_in_colab_turns_the_manager_on(colab, shown):
    import ipywidgets

    _toy().show(mode="live")
    assert isinstance(shown[-1], ipywidgets.VBox) and colab == ["enabled"]  # shown[0]: the figure, into the Output


def test_show_static_outside_colab_and_live_by_default(not_colab, shown):
    import ipywidgets

    _toy().show(mode="static")
    _toy().show()
    assert isinstance(shown[0], StaticView) and isinstance(shown[1], ipywidgets.VBox)
    with pytest.raises(ValueError, match="`mode`"):
        _toy().show(mode="widgets")


def _figure_json(html: str) -> dict:
    start = html.index("var fig = ") + len("var fig = ")
    return json.JSONDecoder().raw_decode(html[start:])[0]


def test_static_view_html_loads_plotlyjs_and_carries_every_frame(not_colab):
    from plotly.offline import get_plotlyjs_version

    explorer = _toy()
    static = explorer.static_figure()
    html = StaticView(static).html()
    assert f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js" in html
    assert re.search(r'<div id="grpo-static-[0-9a-f]{32}"', html)
    fig = _figure_json(html)
    meta = fig["layout"]["meta"]["grpo_explorer"]
    assert meta["shape"] == [3, 2] and len(fig["frames"]) == len(static.frames) == 6
    assert "plotly_sliderchange" in html and "plotly_buttonclicked" in html  # the book's wiring
    assert "</script>" not in html[html.index("var fig = "):html.rindex("</script>")]  # JSON cannot end the element
    bundle = StaticView(static)._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}


@pytest.mark.parametrize(
    "text, expected",
    [("8.1.9", (8, 1, 9)), ("2.11.0+cu128", (2, 11, 0)), ("7.0.0rc1", (7, 0, 0)), ("5.24.1", (5, 24, 1)), ("10", (10,))],
)
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected


def test_version_tuple_rejects_a_version_without_a_number():
    with pytest.raises(ValueError, match="`version`"):
        version_tuple("dev")


def test_installed_versions_are_within_the_supported_ranges():
    import ipywidgets
    import plotly

    assert _compat.major(ipywidgets) in (7, 8)
    assert 5 <= _compat.major(plotly) <= 7


class _Handle:
    def __init__(self, log, obj):
        self.log, self.objs = log, [obj]

    def update(self, obj):
        self.objs.append(obj)


def test_train_live_in_colab_uses_display_handles_not_widgets(colab, monkeypatch):
    """In Colab the trainer's view is a progress line and a plain figure, updated in place."""
    import IPython
    import IPython.display

    from grpo_core.training.runs import RunResult

    handles = []

    def fake_display(obj, display_id=None, **kw):
        assert display_id is True
        handles.append(_Handle(handles, obj))
        return handles[-1]

    monkeypatch.setattr(IPython.display, "display", fake_display)
    monkeypatch.setattr(IPython, "get_ipython", lambda: types.SimpleNamespace(kernel=object()))
    history = []

    def fake_run(cfg, eval_every, callback=None):
        trainer = types.SimpleNamespace(history=history)
        for step in range(1, cfg.steps + 1):
            rec = {"step": step, "reward_mean": 0.1 * step, "entropy": 1.0, "zero_std_frac": 0.0, "clip_frac": 0.0}
            history.append(rec)
            callback(rec, trainer)
        return RunResult(config={}, history=history, evals=[], wall_s=0.0, state={}, params=0,
                         trainable_params=0, rollout_tokens=0, update_tokens=0)

    monkeypatch.setattr(curves, "run", fake_run)
    cfg = curves.GRPOConfig(steps=5)
    curves.train_live(cfg, redraw_every=2)
    line, view = handles
    assert [o.text.split()[1] for o in line.objs] == ["0/5", "1/5", "2/5", "3/5", "4/5", "5/5"]
    assert all(isinstance(b, _compat.Bundle) and type(b.figure) is go.Figure for b in view.objs)
    assert [len(b.figure.data[0].x or ()) for b in view.objs] == [0, 2, 4, 5]  # steps 2, 4 and the last
    assert colab == []
    with pytest.raises(ValueError, match="`redraw_every`"):
        curves.train_live(cfg, redraw_every=0)


# ------------------------------------------------------------------ the pins and tools/colab_check.py

from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _colab_check():
    return load_source("tools/colab_check.py")


def test_pyproject_floors_admit_every_colab_version_of_the_pin_file():
    import tomllib

    from packaging.requirements import Requirement

    cc = _colab_check()
    pins = cc.pins(ROOT / "requirements-colab.txt", [])
    for name in ("numpy", "plotly", "ipywidgets", "anywidget", "ipykernel", "ipython", "traitlets", "torch"):
        assert name in pins, name
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["book"]]
    colab = {**pins, "torch": "2.11.0"}  # Colab's torch (the check runs 2.13.0 CPU)
    for req in reqs:
        assert req.specifier.contains(colab[cc.canon(req.name)], prereleases=True), (req, colab[cc.canon(req.name)])
    assert "3.13" in __import__("packaging.specifiers", fromlist=["SpecifierSet"]).SpecifierSet(project["requires-python"])


def test_colab_check_finds_a_static_control_that_selects_no_other_frame(not_colab):
    cc = _colab_check()

    def figure(a=1, kind="line"):  # ``kind`` changes nothing
        return go.Figure(go.Scatter(x=[0, 1], y=[0, a]))

    dead = Explorer("dead", "t", [Slider("a", 0, 2, 1, 1), Choice("kind", {"line": "line", "dots": "dots"}, "line")], figure)
    figs = cc.static_views([{"data": {"text/html": StaticView(dead.static_figure()).html()}}])
    assert cc.static_controls(figs[0]) == [("a", True), ("kind", False)]
    figs = cc.static_views([{"data": {"text/html": StaticView(_toy().static_figure()).html()}}])
    assert cc.static_controls(figs[0]) == [("a", True), ("kind", True)]


def test_colab_check_moves_every_kind_of_control():
    cc = _colab_check()
    assert cc.moves({"_model_name": "FloatSliderModel", "min": 0.0, "max": 1.0, "value": 0.5}) == [{"value": 1.0}, {"value": 0.0}, {"value": 0.5}]
    assert cc.moves({"_model_name": "IntSliderModel", "min": 2, "max": 16, "value": 16}) == [{"value": 2}, {"value": 16}]
    assert cc.moves({"_model_name": "DropdownModel", "_options_labels": ["a", "b", "c"], "index": 1}) == [{"index": 0}, {"index": 2}, {"index": 1}]
    assert cc.moves({"_model_name": "HTMLModel", "value": "x"}) == []


def test_colab_check_routes_output_into_output_widgets_and_applies_display_updates():
    cc = _colab_check()
    fe = cc.Frontend(kc=None, timeout=1)

    def msg(kind, content, parent="cell"):
        return {"msg_type": kind, "content": content, "parent_header": {"msg_id": parent}}

    own, errors = [], []
    fe._handle(msg("comm_open", {"comm_id": "o", "target_name": "jupyter.widget", "data": {"state": {"_model_name": "OutputModel", "msg_id": ""}}}), "cell", own, errors)
    fe._handle(msg("comm_msg", {"comm_id": "o", "data": {"method": "update", "state": {"msg_id": "move"}}}), "cell", own, errors)
    fe._handle(msg("display_data", {"data": {"text/plain": "fig 1"}, "metadata": {}}, parent="move"), "move", [], errors)
    fe._handle(msg("display_data", {"data": {"text/plain": "line 0"}, "metadata": {}, "transient": {"display_id": "d"}}), "cell", own, errors)
    fe._handle(msg("update_display_data", {"data": {"text/plain": "line 1"}, "metadata": {}, "transient": {"display_id": "d"}}, parent="other"), "other", [], errors)
    fe._handle(msg("error", {"ename": "ValueError", "evalue": "bad", "traceback": []}), "cell", own, errors)
    assert fe.captured["o"][0]["data"] == {"text/plain": "fig 1"}
    assert own[0]["data"] == {"text/plain": "line 1"} and fe.display_updates == {"d": 1}
    assert errors == ["ValueError: bad"]
    before = fe.view(["o"])
    fe._handle(msg("clear_output", {"wait": True}, parent="move"), "move", [], errors)
    assert fe.view(["o"]) != before


def test_bundle_keeps_the_display_id_that_a_bare_plotly_figure_loses(monkeypatch):
    """IPython drops ``display_id`` for objects with ``_ipython_display_`` (plotly figures have it):
    the figure's update would append a second figure. The Bundle's output carries the id."""
    import plotly.io as pio
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display

    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")
    shell = InteractiveShell.instance()
    published = []
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, metadata=None, **kw: published.append((sorted(data), kw.get("transient") or {}, kw.get("update", False))))
    fig = go.Figure(go.Scatter(x=[0], y=[1]))
    bare = display(fig, display_id=True)
    bare.update(fig)
    assert [p[1] for p in published] == [{}, {}]  # the id is lost: the "update" is a second figure
    published.clear()
    handle = display(_compat.Bundle(fig), display_id=True)
    handle.update(_compat.Bundle(fig))
    assert [p[2] for p in published] == [False, True]
    assert published[0][1] == published[1][1] == {"display_id": handle.display_id}
    assert "application/vnd.plotly.v1+json" in published[0][0]


def test_static_wiring_binds_its_listeners_again_after_every_redraw():
    """plotly.js 2.x (plotly 5.24, Colab's) drops the figure's event listeners inside Plotly.react:
    before the fix, the first slider move worked and every later one did nothing (seen in headless
    Chromium with plotly.js 2.35.2)."""
    from grpo_core.viz.plots import _SCRIPT

    assert "Plotly.react(el, frame.data, layout, fig.config).then(bind)" in _SCRIPT
    assert _SCRIPT.count('removeListener("plotly_sliderchange", onSlider)') == 1
