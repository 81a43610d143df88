#!/usr/bin/env python
"""Drive the live explorers in JupyterLab and Notebook 7 in headless Chromium, as a reader would.

Usage: python tools/lab_check.py [--front lab,notebook] [--chapters normalisation,kl,collapse]
                                 [--screenshots _build/lab-screenshots] [--chromium /usr/bin/chromium]

For each front end, a Jupyter server of this environment on 127.0.0.1 (a free port, a random
token, a temporary copy of book/ as its root, so the chapters in the repository stay untouched;
the kernel imports this checkout's grpo_core). Then, in Debian's Chromium through Playwright (no
browser download), for each chapter:

- open it, run all cells, wait for the kernel;
- no raw MyST markup in the rendered text (``{eq}`` roles, ``(label)=`` targets): jupyterlab-myst;
- every explorer (a ``.grpo-live`` box): every slider track and dropdown at least
  ``MIN_TRACK_PX`` / ``MIN_MENU_PX`` wide, the figure at least 90 % of the box's width;
- every slider moved with the keyboard (focus the handle, arrow keys; in Notebook 7, whose own
  shortcuts take the arrow keys, only tried once and reported) and with the mouse (clicks on the
  track), every dropdown set to another option: each control must change the figure's
  data, and after each move the figure in the browser must show exactly what the explorer's
  figure function gives for the values the controls show: the same title, the same notes
  (annotations), the same number of shapes, no fixed axis range the figure does not have, the
  same number of traces and the same y values. A note, shape or range left over from an earlier
  state fails here;
- the latency of each move: from the key press or mouse down to the end of plotly's redraw
  (``plotly_afterplot``), in the page's clock.

Prints one line per chapter and front end, then the median and range of the latencies per front
end and input, and exits 1 if any check failed. Screenshots of the explorers go to the
screenshots folder. Needs jupyterlab, notebook and playwright (requirements.txt) and Chromium
(tools/ensure_chromium.sh).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's grpo_core, as in the kernels
CHAPTERS = ("normalisation", "kl", "collapse")
MIN_TRACK_PX = 150
MIN_MENU_PX = 120
REDRAW_TIMEOUT_MS = 3000

# Installed once per page: times of the last input and, per figure, of its first redraw after it.
PAGE_HOOKS = """() => {
  if (window.__grpo) return;
  window.__grpo = {t0: 0};
  const mark = () => { window.__grpo.t0 = performance.now(); };
  document.addEventListener('keydown', mark, true);
  document.addEventListener('mousedown', mark, true);
}"""

FIGURE_HOOK = """(gd) => {
  if (gd.__grpoHooked) return;
  gd.__grpoHooked = true;
  gd.on('plotly_afterplot', () => {
    const t0 = window.__grpo.t0;
    if (t0 && gd.__grpoT0 !== t0) { gd.__grpoT0 = t0; gd.__grpoDrawn = performance.now(); }
  });
}"""

FIGURE_STATE = """(gd) => {
  const lay = gd.layout || {};
  const title = lay.title === undefined ? null : (typeof lay.title === 'string' ? lay.title : (lay.title.text ?? null));
  const ranges = {};
  for (const [k, v] of Object.entries(lay)) {
    if (/^[xy]axis\\d*$/.test(k) && v && v.range && v.autorange !== true) ranges[k] = v.range;
  }
  return {
    title: title,
    notes: (lay.annotations || []).map(a => a.text),
    shapes: (lay.shapes || []).length,
    ranges: ranges,
    ys: (gd.data || []).map(t => Array.isArray(t.y) ? t.y : (t.y && t.y.length !== undefined ? Array.from(t.y) : null)),
    types: (gd.data || []).map(t => t.type || 'scatter'),
    drawnAt: gd.__grpoDrawn || 0,
    t0: window.__grpo.t0,
    width: gd.querySelector('.main-svg') ? gd.querySelector('.main-svg').getBoundingClientRect().width : 0,
  };
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``jupyter lab`` or ``jupyter notebook`` of this environment on 127.0.0.1."""

    def __init__(self, front: str, root: Path, work: Path):
        self.front = front
        self.port = free_port()
        self.token = secrets.token_hex(16)
        settings = work / f"settings-{front}"
        if front == "lab":  # (Notebook 7 has no notification plugin: a settings file for it is a JS error there)
            (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True, exist_ok=True)
            # no news fetched from the network, no update check
            (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        # every cell in the page (no windowing), so every explorer can be found and driven
        (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(work / f"workspaces-{front}"),
            "JUPYTER_RUNTIME_DIR": str(work / f"runtime-{front}"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        }
        app = "JupyterNotebookApp" if front == "notebook" else "LabApp"
        cmd = [
            sys.executable, "-m", "jupyter", "lab" if front == "lab" else "notebook",
            "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
            f"--{app}.expose_app_in_browser=True",
        ]  # fmt: skip
        if front == "lab":
            cmd.append("--LabApp.extension_manager=readonly")  # no PyPI look-ups
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers and CI run as root
        self.log = open(work / f"server-{front}.log", "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                tail = Path(self.log.name).read_text().splitlines()[-5:]
                raise RuntimeError(f"jupyter {front} exited with {self.proc.returncode}: " + " | ".join(tail))
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status?token={self.token}", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"jupyter {front} did not start in 90 s; see {self.log.name}")

    def url(self, chapter: str) -> str:
        if self.front == "lab":  # a fresh workspace per chapter: no tab of an earlier one restored
            return f"http://127.0.0.1:{self.port}/lab/workspaces/grpo-{chapter}/tree/{chapter}.ipynb?reset&token={self.token}"
        return f"http://127.0.0.1:{self.port}/notebooks/{chapter}.ipynb?token={self.token}"

    def stop_kernels(self) -> None:
        """Shut down every kernel of the server (a chapter's kernel is done when it has been checked)."""
        base = f"http://127.0.0.1:{self.port}/api/kernels"
        try:
            kernels = json.load(urllib.request.urlopen(f"{base}?token={self.token}", timeout=10))
            for k in kernels:
                req = urllib.request.Request(f"{base}/{k['id']}?token={self.token}", method="DELETE")
                urllib.request.urlopen(req, timeout=20)
        except OSError as err:
            print(f"could not stop the kernels: {err}", file=sys.stderr)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# ------------------------------------------------------------------------------- what to expect


def explorers_by_title() -> dict:
    from grpo_core.viz.explorers import all_explorers
    from grpo_core.viz.interactive import EXPLORERS

    all_explorers()
    return {e.title: e for e in EXPLORERS.values()}


def parse_value(control, text: str):
    from grpo_core.viz.interactive import Choice, _fmt

    text = text.replace("\xa0", " ").strip()
    if isinstance(control, Choice):
        return control.options[text]
    if control.live_on_grid:
        return next(v for v in control.values() if _fmt(v) == text)
    return control._snap(float(text))


def expected_state(explorer, values: dict) -> dict:
    from grpo_core.viz.interactive import _figure_json

    fig = _figure_json(explorer.build(**values))
    lay = fig["layout"]
    title = lay.get("title")
    title = title.get("text") if isinstance(title, dict) else title
    ranges = {k: v["range"] for k, v in lay.items() if k[:5] in ("xaxis", "yaxis") and isinstance(v, dict) and v.get("range") and v.get("autorange") is not True}
    return {
        "title": title,
        "notes": [a.get("text") for a in lay.get("annotations", [])],
        "shapes": len(lay.get("shapes", [])),
        "ranges": ranges,
        "ys": [t.get("y") for t in fig["data"]],
        "types": [t.get("type", "scatter") for t in fig["data"]],
    }


def _close(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def differences(seen: dict, want: dict) -> list[str]:
    out = []
    if (seen["title"] or None) != (want["title"] or None):
        out.append(f"title {seen['title']!r}, expected {want['title']!r}")
    if seen["notes"] != want["notes"]:
        out.append(f"notes {seen['notes']!r}, expected {want['notes']!r}")
    if seen["shapes"] != want["shapes"]:
        out.append(f"{seen['shapes']} shapes, expected {want['shapes']}")
    for axis, r in seen["ranges"].items():
        if axis not in want["ranges"] or not _close(r, want["ranges"][axis]):
            out.append(f"{axis} range {r} left over (expected {want['ranges'].get(axis, 'autorange')})")
    if seen["types"] != want["types"]:
        out.append(f"traces {seen['types']}, expected {want['types']}")
    elif not all(_close(a, b) for a, b in zip(seen["ys"], want["ys"]) if b is not None):
        out.append("trace y values differ from the figure function's")
    return out


# ------------------------------------------------------------------------------- the page


class Chapter:
    def __init__(self, page, front: str, name: str, by_title: dict, problems: list, latencies: dict, shots: Path):
        self.page, self.front, self.name = page, front, name
        self.by_title, self.problems, self.latencies, self.shots = by_title, problems, latencies, shots
        self.keys_tried = False

    def fail(self, text: str) -> None:
        self.problems.append(f"{self.front} {self.name}: {text}")
        print("PROBLEM", self.problems[-1], flush=True)

    def run_all(self) -> None:
        page = self.page
        page.wait_for_function(
            "(path) => { const w = window.jupyterapp && window.jupyterapp.shell && window.jupyterapp.shell.currentWidget;"
            " return w && w.sessionContext && w.context && w.context.path === path }",
            arg=f"{self.name}.ipynb",
            timeout=90_000,
        )
        page.wait_for_function(
            "async () => { const s = window.jupyterapp.shell.currentWidget.sessionContext; await s.ready; return !!(s.session && s.session.kernel) }", timeout=120_000
        )
        page.evaluate(PAGE_HOOKS)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(
            "() => { const s = window.jupyterapp.shell.currentWidget.sessionContext; const k = s.session && s.session.kernel;"
            " return k && k.status === 'idle' && !document.body.innerText.includes('[*]') }",
            timeout=300_000,
            polling=500,
        )
        page.wait_for_timeout(1500)
        # other chapters' tabs stay in the page (JupyterLab's workspace): look only in this one
        page.evaluate("() => window.jupyterapp.shell.currentWidget.node.setAttribute('data-grpo-current', '1')")

    def check_markup(self) -> None:
        text = self.page.evaluate("() => [...document.querySelectorAll('[data-grpo-current] .jp-MarkdownOutput')].map(e => e.innerText).join('\\n')")
        raw = [line for line in text.splitlines() if "{eq}" in line or (line.strip().startswith("(") and line.strip().endswith(")="))]
        if raw:
            self.fail(f"raw MyST markup shown: {raw[0][:80]!r}")

    def explorers(self):
        return self.page.locator("[data-grpo-current] .grpo-live")

    def state(self, gd) -> dict:
        return gd.evaluate(FIGURE_STATE)

    def values(self, box, explorer) -> dict:
        vals = {}
        rows = box.locator(".grpo-live-controls > .widget-inline-hbox, .grpo-live-controls > .widget-dropdown, .grpo-live-controls > .widget-slider")
        for control, k in zip(explorer.controls, range(rows.count())):
            row = rows.nth(k)
            if row.locator("select").count():
                text = row.locator("select").evaluate("s => s.options[s.selectedIndex].text")
            else:
                text = row.locator(".widget-readout").first.inner_text()
            vals[control.name] = parse_value(control, text)
        return vals

    def check_against_kernel(self, box, gd, explorer, what: str) -> None:
        deadline = time.monotonic() + 3
        while True:
            diff = differences(self.state(gd), expected_state(explorer, self.values(box, explorer)))
            if not diff or time.monotonic() > deadline:
                break
            self.page.wait_for_timeout(200)
        for d in diff:
            self.fail(f"{explorer.name}, after {what}: {d}")

    def wait_redraw(self, gd, before: dict):
        """Latency in ms of the redraw after the last input, or None if the figure did not change."""
        try:
            self.page.wait_for_function(
                "(gd) => gd.__grpoDrawn && gd.__grpoT0 === window.__grpo.t0", arg=gd.element_handle(), timeout=REDRAW_TIMEOUT_MS, polling=10
            )
        except Exception:
            return None
        self.page.wait_for_timeout(60)
        after = self.state(gd)
        if after["ys"] == before["ys"] and after["title"] == before["title"] and after["notes"] == before["notes"]:
            return None
        return after["drawnAt"] - after["t0"]

    def move(self, box, gd, explorer, label: str, how: str, act) -> bool:
        before = self.state(gd)
        act()
        latency = self.wait_redraw(gd, before)
        if latency is not None:
            self.latencies.setdefault((self.front, how), []).append(latency)
        self.check_against_kernel(box, gd, explorer, f"{how} on {label}")
        return latency is not None

    def drive(self, k: int, box) -> int:
        page = self.page
        box.evaluate("b => b.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(300)
        title = box.locator(".widget-html b").first.inner_text().strip()
        explorer = self.by_title.get(title)
        if explorer is None:
            self.fail(f"explorer {k}: title {title!r} is no registered explorer's")
            return 0
        gd = box.locator(".js-plotly-plot").first
        try:
            gd.wait_for(state="attached", timeout=20_000)
            page.wait_for_function("(gd) => gd.querySelector('.main-svg') && typeof gd.on === 'function'", arg=gd.element_handle(), timeout=20_000)
        except Exception:
            self.fail(f"{explorer.name}: no plotly figure drew")
            return 0
        gd.evaluate(FIGURE_HOOK)
        if os.environ.get("LAB_CHECK_VERBOSE"):
            print(f"  driving {explorer.name}", file=sys.stderr, flush=True)
        page.wait_for_timeout(400)  # the first resize to the output area
        box_w = box.evaluate("b => b.getBoundingClientRect().width")
        fig_w = self.state(gd)["width"]
        if fig_w < 0.9 * box_w:
            self.fail(f"{explorer.name}: figure {fig_w:.0f} px wide in a {box_w:.0f} px output area")
        self.check_against_kernel(box, gd, explorer, "running the cell")
        driven = 0
        sliders = box.locator(".widget-slider")
        for s in range(sliders.count()):
            slider = sliders.nth(s)
            label = slider.locator(".widget-label").first.inner_text().strip() or f"slider {s}"
            track = slider.locator(".noUi-target, .slider").first
            tb = track.bounding_box()
            if not tb or tb["width"] < MIN_TRACK_PX:
                self.fail(f"{explorer.name}: slider {label!r} track is {tb and round(tb['width'])} px wide (< {MIN_TRACK_PX})")
                continue
            changed = False
            handle = slider.locator(".noUi-handle").first
            if self.front == "notebook":
                # Notebook 7's own shortcuts take the arrow keys (a documented limitation): try
                # once per chapter and report, drive with the mouse only
                if not self.keys_tried:
                    self.keys_tried = True
                    handle.focus()
                    works = self.move(box, gd, explorer, label, "key", lambda: page.keyboard.press("ArrowLeft"))
                    print(f"NOTE notebook {self.name}: arrow keys on a slider {'work' if works else 'do not reach it (mouse only)'}", flush=True)
                changed = True
            keys = () if self.front == "notebook" else ("ArrowRight", "ArrowRight", "ArrowLeft")
            for key in keys:
                handle.focus()
                changed |= self.move(box, gd, explorer, label, "key", lambda: page.keyboard.press(key))
            if not changed and keys:
                # at the upper end already: go down
                for key in ("ArrowLeft", "ArrowLeft"):
                    handle.focus()
                    changed |= self.move(box, gd, explorer, label, "key", lambda: page.keyboard.press(key))
            if not changed:
                self.fail(f"{explorer.name}: the arrow keys on slider {label!r} did not change the figure")
            moved = False
            slider.evaluate("s => s.scrollIntoView({block: 'center'})")  # clear of a fixed header
            for frac in (0.85, 0.15, 0.5):
                tb = track.bounding_box()
                moved |= self.move(box, gd, explorer, label, "mouse", lambda: page.mouse.click(tb["x"] + frac * tb["width"], tb["y"] + tb["height"] / 2))
            if not moved:
                self.fail(f"{explorer.name}: clicks on slider {label!r} did not change the figure")
            driven += 1
        menus = box.locator(".widget-dropdown select")
        for m in range(menus.count()):
            menu = menus.nth(m)
            width = menu.bounding_box()["width"]
            if width < MIN_MENU_PX:
                self.fail(f"{explorer.name}: dropdown {m} is {width:.0f} px wide (< {MIN_MENU_PX})")
            options = menu.evaluate("s => [...s.options].map(o => o.value)")
            current = menu.evaluate("s => s.value")
            changed = False
            for value in [o for o in options if o != current] + [current]:
                changed |= self.move(box, gd, explorer, f"dropdown {m}", "menu", lambda: (page.mouse.move(0, 0), page.evaluate("() => { window.__grpo.t0 = performance.now(); }"), menu.select_option(value)))
            if not changed:
                self.fail(f"{explorer.name}: dropdown {m} did not change the figure")
            driven += 1
        if self.shots and k < 4:
            box.screenshot(path=str(self.shots / f"{self.front}-{self.name}-{k}.png"))
        return driven


def own_bug(err) -> bool:
    """A known error of the front ends' own code, unrelated to the explorers:

    - JupyterLab: the cell toolbar's overlap test (``_cellToolbarOverlapsContents``) on a markdown
      cell during run-all;
    - Notebook 7.6.5: its keyboard-shortcuts settings handler (``pluginChanged``, in
      ``notebook_core.*.js``) reads ``plugins[id].schema`` of a plugin the settings registry has not
      loaded, "Cannot read properties of undefined (reading 'schema')". It is raised on a chapter
      with no explorer and no widget too (the introduction), and with or without the settings
      files this script writes.
    """
    stack = getattr(err, "stack", "") or ""
    if "_cellToolbarOverlapsContents" in stack:
        return True
    return "reading 'schema'" in str(err) and "/static/notebook/notebook_core." in stack


def check(fronts, chapters, shots: Path | None, chromium: str) -> int:
    from playwright.sync_api import sync_playwright

    by_title = explorers_by_title()
    problems: list[str] = []
    latencies: dict = {}
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="grpo-lab-check-"))
    root = work / "book"
    shutil.copytree(ROOT / "book", root)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            for front in fronts:
                server = Server(front, root, work)
                try:
                    for name in chapters:
                        t = time.perf_counter()
                        page = browser.new_page(viewport={"width": 1366, "height": 900})
                        errors: list[str] = []
                        page.on("pageerror", lambda e, errors=errors: None if own_bug(e) else errors.append(
                            f"{e} (at {' < '.join(line.strip() for line in (getattr(e, 'stack', '') or '').splitlines()[1:3])})"))
                        page.goto(server.url(name))
                        ch = Chapter(page, front, name, by_title, problems, latencies, shots)
                        n_before = len(problems)
                        n = driven = 0
                        try:
                            ch.run_all()
                            ch.check_markup()
                            boxes = ch.explorers()
                            n = boxes.count()
                            if n == 0:
                                ch.fail("no explorer rendered")
                            for k in range(n):
                                driven += ch.drive(k, boxes.nth(k))
                        except Exception as err:  # a timeout or a missing element: report, go on
                            ch.fail(f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
                        for e in errors:
                            ch.fail(f"JavaScript error: {e[:400]}")
                        if shots:
                            page.screenshot(path=str(shots / f"{front}-{name}.png"))
                        server.stop_kernels()
                        page.close()
                        status = "ok" if len(problems) == n_before else f"{len(problems) - n_before} problem(s)"
                        print(f"{front:8s} {name:14s} {n:2d} explorers, {driven:2d} controls driven, {time.perf_counter() - t:5.1f} s  {status}", flush=True)
                finally:
                    server.stop()
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for (front, how), vals in sorted(latencies.items()):
        vals = sorted(vals)
        print(f"latency {front:8s} {how:5s}: median {statistics.median(vals):5.0f} ms, range {vals[0]:.0f}-{vals[-1]:.0f} ms over {len(vals)} moves (input to redrawn figure)")
    keyed = [v for (front, how), vs in latencies.items() if front == "lab" and how == "key" for v in vs]
    if keyed:
        print(f"JupyterLab keyboard median: {statistics.median(keyed):.0f} ms (target < 100 ms on an idle machine)")
    print(f"{len(problems)} problem(s)" if problems else "no problems")
    return 1 if problems else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--front", default="lab,notebook", help="comma-separated: lab, notebook")
    ap.add_argument("--chapters", default=",".join(CHAPTERS))
    ap.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "lab-screenshots")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    fronts = [f for f in args.front.split(",") if f]
    bad = [f for f in fronts if f not in ("lab", "notebook")]
    if bad:
        raise SystemExit(f"--front: unknown front end(s) {bad}; choose lab, notebook")
    if not Path(args.chromium).exists():
        raise SystemExit(f"--chromium: {args.chromium} is missing; run tools/ensure_chromium.sh (as root) or apt-get install chromium")
    sys.exit(check(fronts, [c for c in args.chapters.split(",") if c], args.screenshots, args.chromium))


if __name__ == "__main__":
    main()
