"""The live explorer in a kernel (``LiveExplorer``, figurewidget mode): what one control move sends
to the front end, that nothing of an earlier figure stays behind, the figure cache, dropped
intermediate values, and the sizes of the controls and the figure.

The browser side of the same checks is tools/lab_check.py (JupyterLab and Notebook 7)."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import pytest

from grpo_core.viz import interactive
from grpo_core.viz.explorers import all_explorers
from grpo_core.viz.interactive import EXPLORERS, READOUT_PX, TRACK_PX, Choice, Explorer, Slider, label_px

all_explorers()
NAMES = sorted(EXPLORERS)


def _note(text):
    return dict(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)


def _stateful(calls=None):
    """a=0: a note, a shape, a fixed y range and a trace text; a>0: none of them."""

    def figure(a=0):
        if calls is not None:
            calls.append(a)
        if a == 0:
            return go.Figure(
                go.Scatter(x=[0, 1], y=[0, 0], text=["t0", "t1"]),
                layout=dict(annotations=[_note("every reward is equal")], shapes=[dict(type="line", x0=0, x1=1, y0=0, y1=0)], yaxis=dict(range=[-1, 1]), title=dict(text="a = 0")),
            )
        return go.Figure(go.Scatter(x=[0, 1], y=[0, a]), layout=dict(title=dict(text=f"a = {a}")))

    return Explorer("stateful", "stateful", [Slider("a", 0, 3, 1, 0)], figure)


class Messages:
    """Records what a FigureWidget sends to the front end."""

    def __init__(self, fig, monkeypatch):
        self.sent = []
        for kind in ("update", "relayout", "restyle", "addTraces", "deleteTraces"):
            original = getattr(fig, f"_send_{kind}_msg")

            def record(*args, kind=kind, original=original, **kwargs):
                self.sent.append((kind, args, kwargs))
                return original(*args, **kwargs)

            monkeypatch.setattr(fig, f"_send_{kind}_msg", record)

    def kinds(self):
        return [k for k, _, _ in self.sent]


def test_moving_away_from_a_note_leaves_no_note_shape_range_or_trace_text():
    live = _stateful().live(mode="figurewidget")
    assert len(live.figure.layout.annotations) == 1 and len(live.figure.layout.shapes) == 1
    live.controls["a"].value = 2
    lay = live.figure.layout
    assert lay.annotations == () and lay.shapes == ()
    assert lay.yaxis.range is None
    assert live.figure.data[0].text is None
    assert lay.title.text == "a = 2" and list(live.figure.data[0].y) == [0, 2]
    # and back: everything returns
    live.controls["a"].value = 0
    assert live.figure.layout.annotations[0].text == "every reward is equal"
    assert tuple(live.figure.layout.yaxis.range) == (-1, 1)


def test_one_message_per_move_with_only_what_changed(monkeypatch):
    live = _stateful().live(mode="figurewidget")
    msgs = Messages(live.figure, monkeypatch)
    live.controls["a"].value = 2
    assert msgs.kinds() == ["update"]

    kwargs = msgs.sent[0][2]
    restyle, relayout = kwargs["restyle_data"], kwargs["relayout_data"]
    assert "template" not in relayout and "height" not in relayout  # unchanged keys are not resent
    assert relayout["annotations"] is None and relayout["shapes"] is None  # removed explicitly
    assert set(restyle) == {"y", "text"} and restyle["text"] == [None]
    msgs.sent.clear()
    live.controls["a"].value = 3
    kwargs = msgs.sent[0][2]
    assert msgs.kinds() == ["update"] and set(kwargs["relayout_data"]) == {"title"} and set(kwargs["restyle_data"]) == {"y"}


def test_a_change_of_traces_still_clears_the_old_layout():
    def figure(n=1):
        lay = dict(annotations=[_note("one trace")]) if n == 1 else {}
        return go.Figure([go.Bar(x=[0], y=[k]) for k in range(n)], layout=lay)

    live = Explorer("n", "n", [Slider("n", 1, 3, 1, 1)], figure).live(mode="figurewidget")
    live.controls["n"].value = 3
    assert len(live.figure.data) == 3 and live.figure.layout.annotations == ()


def test_visited_values_are_drawn_from_the_cache():
    calls = []
    live = _stateful(calls).live(mode="figurewidget")
    for v in (1, 2, 1, 0, 2):
        live.controls["a"].value = v
    assert calls == [0, 1, 2] and live.built == 3 and live.updates == 5
    assert list(live.figure.data[0].y) == [0, 2]


def _frontend_acks(live, traces=True):
    """What plotly's front end sends back once it has drawn the last update."""
    fig = live.figure
    if traces:
        fig._js2py_traceDeltas = {"trace_deltas": [], "trace_edit_id": fig._last_trace_edit_id}
    fig._js2py_layoutDelta = {"layout_delta": {}, "layout_edit_id": fig._last_layout_edit_id}


def test_values_arriving_while_a_redraw_is_in_flight_are_dropped_but_the_last_is_drawn():
    calls = []
    live = _stateful(calls).live(mode="figurewidget")
    _frontend_acks(live)  # the first drawing: a front end is there
    live.controls["a"].value = 1  # sent; in flight until the front end acks
    live.controls["a"].value = 2  # held back
    live.controls["a"].value = 3  # replaces 2, which is never drawn
    assert live.updates == 1 and live.dropped == 1 and list(live.figure.data[0].y) == [0, 1]
    _frontend_acks(live)
    assert live.updates == 2 and list(live.figure.data[0].y) == [0, 3]
    assert calls == [0, 1, 3]


def test_the_layout_answer_alone_releases_the_held_back_value():
    """The browser showed it: plotly's front end answers an update with its layout; waiting
    for a trace answer as well held the next value back until a later move."""
    live = _stateful().live(mode="figurewidget")
    _frontend_acks(live, traces=False)
    live.controls["a"].value = 1
    live.controls["a"].value = 2
    assert live.updates == 1
    _frontend_acks(live, traces=False)
    assert live.updates == 2 and list(live.figure.data[0].y) == [0, 2]


def test_a_held_back_value_is_drawn_by_the_event_loop_when_no_answer_comes(monkeypatch):
    import asyncio

    live = _stateful().live(mode="figurewidget")
    monkeypatch.setattr(live, "IN_FLIGHT_S", 0.05)

    async def scenario():
        _frontend_acks(live)
        live.controls["a"].value = 1
        live.controls["a"].value = 2  # held back; nobody answers
        assert live.updates == 1
        await asyncio.sleep(0.3)

    asyncio.run(scenario())
    assert live.updates == 2 and list(live.figure.data[0].y) == [0, 2]


def test_without_a_front_end_every_move_is_drawn_at_once():
    live = _stateful().live(mode="figurewidget")
    for v in (1, 2, 3):
        live.controls["a"].value = v
    assert live.updates == 3 and live.dropped == 0


def test_an_update_never_confirmed_stops_holding_back_after_a_while(monkeypatch):
    live = _stateful().live(mode="figurewidget")
    _frontend_acks(live)
    live.controls["a"].value = 1
    monkeypatch.setattr(live, "IN_FLIGHT_S", 0.0)
    live.controls["a"].value = 2
    assert live.updates == 2 and list(live.figure.data[0].y) == [0, 2]


def _px(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)px", value or "")
    assert m, f"not a width in px: {value!r}"
    return float(m.group(1))


@pytest.mark.parametrize("name", NAMES)
def test_every_control_keeps_a_usable_track_whatever_its_label(name):
    live = EXPLORERS[name].live(mode="figurewidget")
    for control in EXPLORERS[name].controls:
        widget = live.controls[control.name]
        label = control.label or control.name
        desc = _px(widget.style.description_width)
        assert desc >= label_px(label)
        body = _px(widget.layout.width) - desc
        assert body >= (TRACK_PX + READOUT_PX if isinstance(control, Slider) else interactive.MENU_PX)
        assert widget.layout.min_width == widget.layout.width


def test_a_long_label_does_not_squeeze_the_slider():
    s = Slider("p", 0.0, 1.0, 0.05, 0.5, label="p (Bernoulli rate, mixture weight)").widget(True)
    c = Choice("k", {"a very long option label indeed": 1}, "a very long option label indeed", label="rewards of the group").widget(True)
    assert _px(s.layout.width) - _px(s.style.description_width) >= TRACK_PX + READOUT_PX
    assert _px(c.layout.width) - _px(c.style.description_width) >= interactive.MENU_PX


def test_the_figure_fills_the_output_area():
    live = _stateful().live(mode="figurewidget")
    assert live.figure.layout.width is None and live.figure._config.get("responsive") is True
    fitters = [w for w in live.container.children if type(w).__name__ == "FitWidth"]
    assert len(fitters) == 1 and "ResizeObserver" in fitters[0]._esm
    assert "grpo-live" in live.container._dom_classes and live.container.layout.width == "100%"
