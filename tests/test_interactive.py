"""The explorer mechanism: one definition, a live ipywidgets form and a static plotly form."""

from __future__ import annotations

import functools
import json
import math
import sys
import types

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from grpo_core.viz import interactive
from grpo_core.viz.interactive import Choice, Explorer, Slider
from grpo_core.viz.explorers import all_explorers, get_explorer
from grpo_core.viz.plots import BOOK_BUILD_ENV, BookRenderer

EXPLORERS = all_explorers()
NAMES = sorted(EXPLORERS)


@functools.lru_cache(maxsize=None)
def _static(name):
    """Static figures take seconds to precompute; build each once per test session."""
    return EXPLORERS[name].static_figure()


def _toy(**kw):
    def figure(a=1, kind="line"):
        if a == 3:
            raise ValueError("`a` = 3 is not allowed here")
        return go.Figure(go.Scatter(x=[0, 1], y=[0, a], mode="lines" if kind == "line" else "markers"))

    return Explorer("toy", "a toy", [Slider("a", 0, 4, 1, 1), Choice("kind", {"line": "line", "dots": "dots"}, "line")], figure, **kw)


# --------------------------------------------------------------------------- controls


def test_slider_grid_every_step_when_small_else_nine_points():
    assert Slider("g", 2, 8, 1, 4).values() == [2, 3, 4, 5, 6, 7, 8]
    big = Slider("p", 0.0, 1.0, 0.01, 0.37).values()
    assert big[0] == 0.0 and big[-1] == 1.0 and 0.37 in big and len(big) == 10  # 9 points + default


def test_slider_explicit_grid_keeps_default_and_integers():
    s = Slider("G", 2, 16, 1, 8, grid=[2, 4, 16])
    assert s.values() == [2, 4, 8, 16] and s.integer
    assert not Slider("eps", 0.0, 0.5, 0.05, 0.2).integer


def test_control_definitions_are_checked():
    with pytest.raises(ValueError, match="default 9 is outside"):
        Slider("G", 2, 8, 1, 9)
    with pytest.raises(ValueError, match="is not one of"):
        Choice("c", {"a": 1}, "b")
    with pytest.raises(ValueError, match="unique"):
        Explorer("x", "x", [Slider("a", 0, 1, 1, 0), Slider("a", 0, 1, 1, 0)], lambda a: go.Figure())


# --------------------------------------------------------------------------- build


def test_build_fills_defaults_and_rejects_unknown_controls():
    e = _toy()
    assert list(e.build().data[0].y) == [0, 1]
    assert list(e.build(a=4).data[0].y) == [0, 4]
    with pytest.raises(ValueError, match="no control"):
        e.build(b=1)


def test_value_error_becomes_an_explanation_not_a_traceback():
    fig = _toy().build(a=3)
    texts = [a.text for a in fig.layout.annotations]
    assert len(texts) == 1 and "`a` = 3 is not allowed" in texts[0]


# --------------------------------------------------------------------------- static form


def _meta(fig):
    return fig.layout.meta["grpo_explorer"]


def test_static_toy_figure_has_one_control_per_axis_of_the_grid():
    fig = _toy().static_figure()
    meta = _meta(fig)
    assert meta["shape"] == [5, 2]
    assert len(fig.layout.sliders) == 1 and len(fig.layout.sliders[0].steps) == 5
    assert len(fig.layout.updatemenus) == 1 and len(fig.layout.updatemenus[0].buttons) == 2
    assert len(meta["frame_of"]) == 10
    # grid point (a=4, kind=dots) is flat index 4 * 2 + 1 and shows y = [0, 4] as markers
    frame = fig.frames[meta["frame_of"][4 * 2 + 1]]
    assert list(frame.data[0].y) == [0, 4] and frame.data[0].mode == "markers"
    # the failing grid point a=3 is an explanation frame
    assert "not allowed" in fig.frames[meta["frame_of"][3 * 2]].layout.annotations[0].text


def test_static_frames_are_deduplicated():
    e = Explorer("flat", "flat", [Slider("a", 0, 4, 1, 0)], lambda a: go.Figure(go.Scatter(x=[0], y=[0])))
    fig = e.static_figure()
    assert len(fig.frames) == 1 and _meta(fig)["frame_of"] == [0] * 5


@pytest.mark.parametrize("name", NAMES)
def test_every_explorer_static_figure_matches_its_grid(name):
    e = EXPLORERS[name]
    fig = _static(name)
    meta = _meta(fig)
    sliders = [c for c in e.controls if isinstance(c, Slider)]
    choices = [c for c in e.controls if isinstance(c, Choice)]
    assert [len(s.steps) for s in fig.layout.sliders] == [len(c.values()) for c in sliders]
    assert [len(m.buttons) for m in fig.layout.updatemenus] == [len(c.options) for c in choices]
    assert meta["shape"] == e.grid_shape()
    assert len(meta["frame_of"]) == math.prod(meta["shape"])
    assert max(meta["frame_of"]) == len(fig.frames) - 1
    # the figure first shown is the default's frame
    flat = 0
    for size, index in zip(meta["shape"], meta["active"]):
        flat = flat * size + index
    default_frame = fig.frames[meta["frame_of"][flat]]
    assert json.loads(pio.to_json(go.Figure(data=default_frame.data)))["data"] == json.loads(pio.to_json(go.Figure(data=fig.data)))["data"]


@pytest.mark.parametrize("name", NAMES)
def test_every_explorer_static_figure_fits_the_page_budget(name):
    size = len(pio.to_json(_static(name), validate=False))
    assert size < 1_500_000, f"{name}: static figure is {size / 1e6:.2f} MB"


def test_book_renderer_wires_explorer_controls():
    html = BookRenderer().to_mimebundle(_toy().static_figure().to_dict())["text/html"]
    assert "plotly_sliderchange" in html and "plotly_buttonclicked" in html and "grpo_explorer" in html


# --------------------------------------------------------------------------- every explorer, every extreme


def _extreme_settings(e):
    for control in e.controls:
        for value in control.ends():
            yield {control.name: value}


@pytest.mark.parametrize("name", NAMES)
def test_every_explorer_builds_valid_figures_at_defaults_and_extremes(name):
    e = EXPLORERS[name]
    for values in [{}] + list(_extreme_settings(e)):
        fig = e.build(**values)
        go.Figure(fig.to_dict())  # plotly's validation: a misspelt property fails here
        texts = " ".join(a.text or "" for a in fig.layout.annotations)
        assert "These settings have no figure" not in texts and "No figure for" not in texts, (name, values, texts)


def _outside(control):
    """Values that no setting of ``control`` takes."""
    if isinstance(control, Choice):
        return ["no-such-option", None, 3.5, [1]]
    span = control.max - control.min
    out = [control.min - max(span, 1), control.max + max(span, 1), float("nan"), float("inf"), -float("inf"), "7", None, True]
    if control.integer:
        out.append(control.min + 0.5)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_explorer_explains_values_outside_its_controls(name):
    e = EXPLORERS[name]
    for control in e.controls:
        for value in _outside(control):
            fig = e.build(**{control.name: value})  # never raises
            texts = " ".join(a.text or "" for a in fig.layout.annotations)
            assert f"No figure for {control.label or control.name}" in texts, (name, control.name, value, texts)


def test_an_error_inside_a_figure_function_becomes_an_explanation():
    def broken(x=1):
        return 1 / (x - 1)

    e = Explorer("broken-test", "t", [Slider("x", 0, 2, 1, 0)], broken)
    texts = " ".join(a.text for a in e.build(x=1).layout.annotations)
    assert "These settings have no figure" in texts and "division by zero" in texts
    with pytest.raises(ValueError, match="no control"):
        e.build(y=1)


# --------------------------------------------------------------------------- live form


def test_live_figurewidget_updates_in_place():
    live = _toy().live(mode="figurewidget")
    assert isinstance(live.figure, go.FigureWidget)
    widget_before = live.figure
    live.controls["a"].value = 4
    assert live.figure is widget_before and list(live.figure.data[0].y) == [0, 4]
    live.controls["kind"].value = "dots"
    assert live.figure.data[0].mode == "markers" and live.updates == 2


def test_live_figurewidget_survives_a_change_in_the_number_of_traces():
    def figure(n=1):
        return go.Figure([go.Scatter(x=[0], y=[k]) for k in range(n)])

    live = Explorer("n", "n", [Slider("n", 1, 3, 1, 1)], figure).live(mode="figurewidget")
    live.controls["n"].value = 3
    assert len(live.figure.data) == 3
    live.controls["n"].value = 2
    assert [t.y[0] for t in live.figure.data] == [0, 1]


def test_live_rerender_mode_rebuilds_the_figure():
    live = _toy().live(mode="rerender")
    live.controls["a"].value = 2
    assert isinstance(live.figure, go.Figure) and list(live.figure.data[0].y) == [0, 2]
    live.controls["a"].value = 3  # the figure function raises: an explanation, no traceback
    assert "not allowed" in live.figure.layout.annotations[0].text


def test_live_mode_is_checked():
    with pytest.raises(ValueError, match="`mode`='svg'"):
        _toy().live(mode="svg")


@pytest.mark.parametrize("name", NAMES)
def test_every_explorer_updates_live_when_a_control_moves(name):
    e = EXPLORERS[name]
    live = e.live(mode="figurewidget")
    before = live.figure.to_dict()
    control = e.controls[0]
    widget = live.controls[control.name]
    other = next(v for v in control.ends() if v != widget.value)
    widget.value = other
    assert live.updates == 1
    assert live.figure.to_dict() != before


@pytest.fixture
def fake_colab(monkeypatch):
    """A stand-in for the `google.colab` module: records enable_custom_widget_manager calls."""
    calls = []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("enabled"))
    colab = types.ModuleType("google.colab")
    colab.output = output
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(interactive, "_colab_manager_enabled", False)
    return calls


def test_colab_is_detected_and_gets_the_custom_widget_manager_once(fake_colab):
    assert interactive.in_colab()
    first = _toy().live()
    second = _toy().live()
    assert first.mode == second.mode == "rerender"
    assert fake_colab == ["enabled"]


def test_outside_colab_figurewidget_is_the_default(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # import fails
    assert not interactive.in_colab()
    assert _toy().live().mode == "figurewidget"


def test_show_picks_static_in_the_book_and_live_elsewhere(monkeypatch):
    import ipywidgets
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    monkeypatch.setenv(BOOK_BUILD_ENV, "1")
    _toy().show()
    monkeypatch.setenv(BOOK_BUILD_ENV, "0")
    _toy().show()
    assert isinstance(shown[0], go.Figure) and len(shown[0].frames) == 9  # a=3 repeats no frame
    assert isinstance(shown[1], ipywidgets.VBox)


def test_registry_rejects_a_second_explorer_with_the_same_name():
    first = next(iter(EXPLORERS.values()))
    clone = Explorer(first.name, "clone", [], lambda: go.Figure())
    with pytest.raises(ValueError, match="already registered"):
        interactive.register(clone)
    with pytest.raises(ValueError, match="No explorer named"):
        get_explorer("no-such-explorer")


def test_live_explorer_updates_in_a_real_kernel():
    """Headless Jupyter: a kernel displays the live explorer and a control change redraws it."""
    import nbformat
    from nbclient import NotebookClient

    code = (
        "from grpo_core.viz.explorers import get_explorer\n"
        "live = get_explorer('normalisation').live()\n"
        "display(live.container)\n"
        "before = live.figure.layout.title.text\n"
        "live.controls['G'].value = 4\n"
        "print(live.mode, live.updates, before != live.figure.layout.title.text, 'G = 4' in live.figure.layout.title.text)"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert any(o.get("data", {}).get("application/vnd.jupyter.widget-view+json") for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert text.strip() == "figurewidget 1 True True"


def test_notebook_setup_in_colab_reports_static_explorers_and_leaves_the_manager_off(fake_colab, capsys):
    from grpo_core.viz import notebook_setup
    from grpo_core.viz.notebook import environment

    assert notebook_setup() is None
    out = capsys.readouterr().out
    env = environment()
    assert env["colab"] and fake_colab == []  # static explorers need no custom widget manager
    assert "Colab (explorers static; show(mode='live') for widgets)" in out and f"torch {env['torch']}" in out
    assert "+" not in env["torch"]  # local build tags (+cpu, +cu121) are dropped: stable notebook output


def test_notebook_setup_outside_colab(monkeypatch, capsys):
    from grpo_core.viz import notebook_setup
    from grpo_core.viz.notebook import environment

    monkeypatch.setitem(sys.modules, "google.colab", None)
    notebook_setup()
    env = environment()
    assert env["colab"] is False and "not Colab" in capsys.readouterr().out
    assert (env["gpu"] is None) == (not __import__("torch").cuda.is_available())


def test_every_chapter_starts_with_the_setup_cell():
    import json
    from pathlib import Path

    for nb_path in sorted(Path(__file__).parent.parent.glob("book/*.ipynb")):
        cells = json.loads(nb_path.read_text())["cells"]
        first = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert "except ImportError:" in first and '%pip install -q "grpo_core[book] @ git+' in first, nb_path.name
        assert "from grpo_core.viz import notebook_setup" in first and first.rstrip().endswith("notebook_setup()"), nb_path.name
