"""The book's plotting plumbing: renderer, build switch, nbval sanitizers."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import pytest

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
    spec = importlib.util.spec_from_file_location("grpo_book", ROOT / "_ext" / "grpo_book.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
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
