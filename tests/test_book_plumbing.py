"""The book's plotting plumbing: renderer, build switch, nbval sanitizers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from _sources import load_source
from grpo_core.viz import plots

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def restore_renderer():
    before = pio.renderers.default
    yield
    pio.renderers.default = before


def _figure_with_frames():
    fig = go.Figure(
        go.Scatter(x=[0, 1], y=[0, 1]),
        frames=[go.Frame(name=str(k), data=[go.Scatter(x=[0, 1], y=[0, k])]) for k in (1, 2)],
    )
    fig.update_layout(
        sliders=[{"steps": [{"method": "animate", "args": [[str(k)]], "label": str(k)} for k in (1, 2)]}]
    )
    return fig


def test_book_renderer_emits_only_html_with_frames_and_no_plotly_js():
    bundle = plots.BookRenderer().to_mimebundle(_figure_with_frames().to_dict())
    assert set(bundle) == {"text/html"}
    html = bundle["text/html"]
    div_id = re.search(r'<div id="(grpo-plotly-[0-9a-f]{32})"', html).group(1)
    assert f'var id = "{div_id}"' in html
    fig_json = re.search(r"var fig = (.*);\n", html).group(1)
    fig = json.loads(fig_json)
    assert set(fig) == {"data", "layout", "frames", "config"}
    assert len(fig["frames"]) == 2 and fig["layout"]["sliders"]
    assert fig["config"]["responsive"] is True
    assert "Plotly, Inc." not in html and "cdn" not in html.lower()


def test_book_renderer_ids_are_unique_and_script_cannot_be_closed_early():
    fig = go.Figure(go.Scatter(x=[1], y=[1], name="</script><script>alert(1)</script>"))
    first = plots.BookRenderer().to_mimebundle(fig.to_dict())["text/html"]
    second = plots.BookRenderer().to_mimebundle(fig.to_dict())["text/html"]
    assert first.count("</script>") == 1
    assert re.search(r'id="([^"]+)"', first).group(1) != re.search(r'id="([^"]+)"', second).group(1)


def test_renderer_switches_only_when_book_build_is_set(monkeypatch, restore_renderer):
    pio.renderers.default = "json"
    monkeypatch.delenv(plots.BOOK_BUILD_ENV, raising=False)
    assert plots.maybe_use_book_renderer() is False
    assert pio.renderers.default == "json"
    monkeypatch.setenv(plots.BOOK_BUILD_ENV, "0")
    assert plots.maybe_use_book_renderer() is False
    monkeypatch.setenv(plots.BOOK_BUILD_ENV, "1")
    assert plots.maybe_use_book_renderer() is True
    assert pio.renderers.default == plots.BOOK_RENDERER
    assert set(go.Figure()._repr_mimebundle_()) == {"text/html"}


def test_style_sets_height_and_template():
    fig = plots.style(go.Figure(), height=321, title="t")
    assert fig.layout.height == 321 and fig.layout.title.text == "t"


def test_extension_counts_the_renderer_divs():
    ext = _extension()
    assert ext.DIV_ID_PREFIX == plots.DIV_ID_PREFIX
    assert ext.BOOK_BUILD_ENV == plots.BOOK_BUILD_ENV


def test_nbval_sanitizers():
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text())
    assert len(patterns) == 5

    def sanitize(text):
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    assert sanitize("<torch._C.Generator object at 0x7f3a2b1c9d50>") == (
        "<torch._C.Generator object at 0xADDRESS>"
    )
    assert sanitize("took 1.23 s, then 12 ms") == "took TIME, then TIME"
    assert sanitize("run 123e4567-e89b-12d3-a456-426614174000") == "run UUID"
    assert sanitize('id="grpo-plotly-' + "a" * 32 + '"') == 'id="grpo-plotly-DIVID"'
    # numbers the book checks are left alone
    assert sanitize("8 samples, 4 steps, mean 0.5000, mask 0xff") == (
        "8 samples, 4 steps, mean 0.5000, mask 0xff"
    )


def test_book_figures_carry_a_text_alternative():
    import plotly.graph_objects as go

    from grpo_core.viz.plots import BookRenderer

    fig = go.Figure(layout=dict(title="held-out <b>success</b> & \"time\"", xaxis=dict(title="step"),
                                yaxis=dict(title=dict(text="reward"))))
    html = BookRenderer().to_mimebundle(fig.to_dict())["text/html"]
    assert 'role="img"' in html
    assert 'aria-label="Interactive figure. held-out success &amp; &quot;time&quot;; x: step; y: reward"' in html
    assert 'aria-label="Interactive figure. figure"' in BookRenderer().to_mimebundle(go.Figure().to_dict())["text/html"]


def _extension():
    return load_source("_ext/grpo_book.py")


def test_figures_wait_for_the_lazy_loader_of_the_book():
    html = plots.BookRenderer().to_mimebundle(_figure_with_frames().to_dict())["text/html"]
    assert "window.grpoPlotly.whenVisible(el, draw)" in html
    loader = (ROOT / "_ext" / "static" / _extension().PLOTLY_LOADER).read_text()
    # the loader fetches plotly.min.js next to itself, once, and hides an AMD define meanwhile
    assert "plotly.min.js" in loader and "IntersectionObserver" in loader and "window.define = undefined" in loader


def test_lazy_typesetting_is_added_to_any_mathjax_configuration():
    ext = _extension()
    assert ext._with_lazy_typesetting(None) == {"loader": {"load": ["ui/lazy"]}}
    merged = ext._with_lazy_typesetting({"tex": {"macros": {"E": "\\mathbb{E}"}}, "loader": {"load": ["[tex]/physics"]}})
    assert merged["tex"] == {"macros": {"E": "\\mathbb{E}"}}
    assert merged["loader"]["load"] == ["[tex]/physics", "ui/lazy"]
    assert ext._with_lazy_typesetting(merged)["loader"]["load"] == ["[tex]/physics", "ui/lazy"]


def test_html_figures_keep_six_significant_digits_and_turn_nan_into_gaps():
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[1 / 3, float("nan"), 123456789.0]))
    html = plots.BookRenderer().to_mimebundle(fig.to_dict())["text/html"]
    data = json.loads(re.search(r"var fig = (.*);\n", html).group(1))["data"][0]
    assert data["x"] == [0, 1, 2]
    assert data["y"] == [0.333333, None, 123457000.0]
    assert plots._round_floats({"a": [2.0000004, "s", 7]}) == {"a": [2.0, "s", 7]}


def _frames_as_drawn(fig_dict):
    """Each frame of an explorer figure as plain JSON, without the keys the page takes from the figure."""
    plain = plots._plain(fig_dict)
    return [
        {"data": f["data"], "layout": {k: v for k, v in f.get("layout", {}).items() if k not in plots._FIGURE_LAYOUT_KEYS}}
        for f in plain["frames"]
    ]


@pytest.mark.parametrize("name", ["aggregation", "multi-reward"])
def test_delta_frames_expand_to_the_explorer_frames(name):
    from grpo_core.viz.explorers import get_explorer

    fig = get_explorer(name).static_figure().to_dict()
    delta = plots._delta_frames(plots._plain(fig))
    assert delta["layout"]["meta"]["grpo_explorer"]["delta"] is True
    base = delta["data"]
    base_layout = {k: v for k, v in delta["layout"].items() if k not in plots._FIGURE_LAYOUT_KEYS}
    expanded = [
        {"data": [plots._expand(t, base[i] if i < len(base) else None) for i, t in enumerate(f["data"])],
         "layout": plots._expand(f["layout"], base_layout)}
        for f in delta["frames"]
    ]
    assert expanded == _frames_as_drawn(fig)
    assert len(json.dumps(delta)) < 0.8 * len(json.dumps(plots._plain(fig)))


def test_delta_frames_handle_new_removed_and_retyped_traces():
    fig = go.Figure([go.Scatter(x=[1, 2], y=[3, 4], name="a"), go.Bar(x=[1], y=[2])])
    fig.update_layout(title="t", annotations=[dict(text="note", x=0, y=0)], meta={"grpo_explorer": {"frame_of": [0, 1]}})
    fig.frames = [
        go.Frame(data=[go.Scatter(x=[1, 2], y=[3, 5])], layout=dict(title="u")),
        go.Frame(data=[go.Scatter(x=[1, 2], y=[3, 4], name="a"), go.Scatter(x=[0], y=[0]), go.Bar(x=[9], y=[9])],
                 layout=dict(title="t", annotations=[dict(text="note", x=0, y=0)])),
    ]
    plain = plots._plain(fig.to_dict())
    delta = plots._delta_frames(plain)
    first, second = delta["frames"]
    assert first["data"][0] == {"y": [3, 5], "_grpo_unset": ["name"]}
    assert "annotations" in first["layout"]["_grpo_unset"]
    assert second["data"][0] == {} and second["data"][1]["_grpo_new"] is True and second["data"][2]["_grpo_new"] is True
    for f, original in zip(delta["frames"], _frames_as_drawn(fig.to_dict())):
        got = [plots._expand(t, plain["data"][i] if i < len(plain["data"]) else None) for i, t in enumerate(f["data"])]
        assert got == original["data"]
    plain_fig = plots._plain(go.Figure(go.Scatter(x=[1], y=[1]), frames=[go.Frame(data=[go.Scatter(y=[2])])]).to_dict())
    assert plots._delta_frames(plain_fig) is plain_fig  # not an explorer: frames untouched
