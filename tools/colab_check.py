"""Every chapter on Colab's own packages, in an emulated Colab kernel (`make colab-check`).

1. Builds a virtual environment pinned to Colab's freeze (``requirements-colab.txt``; rebuilt when
   that file is newer than the environment's stamp) and records ``pip freeze --all``.
2. Clones this repository's HEAD into a temporary folder. The first chapter's setup cell is run
   with its ``REPO`` pointed at that clone, so the package is installed exactly as the first cell
   does in Colab: ``%pip install -q "grpo_core[book] @ git+file://<clone>"``.
3. Executes every chapter (``book/*.ipynb``), each in a fresh kernel of that environment, with a
   stand-in ``google.colab`` (``tools/colabstub``) on the kernel's path, ``COLAB_NOTEBOOK_ID`` set
   and a working directory outside the repository. This script is the front end: it keeps the
   widget models from the comm messages, routes outputs into ``Output`` widgets by ``msg_id`` and
   applies ``update_display_data``.
4. Every explorer a chapter shows (``get_explorer("name").show()``) must appear as the static view
   that Colab gets; each of its sliders and dropdowns must select a different frame for some value.
   Then the live form (``show(mode="live")``, what a Colab reader can ask for) is displayed in the
   same kernel and every control is moved through the widget protocol (``comm_msg`` "update" with
   the new ``value`` or ``index``, as a browser sends it); the displayed output must change.
5. Opens each chapter's static views, as the kernel emitted them, in headless Chromium (plotly.js of
   the Colab environment's plotly served in place of the CDN) and clicks every slider and dropdown:
   each must make the figure show another frame (``--no-browser`` skips this step).
6. Fails on any package that pip changed (freeze before and after each chapter), any package added
   other than grpo_core (except by a chapter's own declared ``%pip install`` after its setup cell,
   the real-trainer chapter's TRL, which is reported), any error output, error reply or traceback
   in the kernel's log, any explorer missing, and any control that changes nothing.
   Prints a table per chapter.

Usage: python tools/colab_check.py [--python python3.11] [--venv .venv-colab] [--pin torch==2.11.0]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "tools" / "colabstub"
UPSTREAM = "https://github.com/grpo-interactively/grpo-interactively"
SLIDERS = {"IntSliderModel", "FloatSliderModel", "FloatLogSliderModel", "IntRangeSliderModel"}
SELECTIONS = {"DropdownModel", "SelectionSliderModel", "ToggleButtonsModel", "RadioButtonsModel", "SelectModel"}
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def sh(cmd, **kw) -> str:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def log(msg: str) -> None:
    print(f"[colab-check] {msg}", flush=True)


# ------------------------------------------------------------------------------ the environment


def pins(path: Path, extra: list[str]) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines() + extra:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canon(name)] = version.strip()
    return out


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def build_venv(venv: Path, python: str, pin_file: Path, extra: list[str]) -> Path:
    py = venv / "bin" / "python"
    stamp = venv / ".colab-installed"
    want = pin_file.read_text() + "\n".join(extra)
    if stamp.is_file() and stamp.read_text() == want:
        log(f"{venv} is up to date with {pin_file.name}")
        return py
    t0 = time.perf_counter()
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip_pin = "pip==24.1.2"  # Colab's pip
    subprocess.run([str(py), "-m", "pip", "install", "-q", pip_pin], check=True)
    reqs = [line for line in pin_file.read_text().splitlines() if line.split("#")[0].strip()]
    overridden = {canon(e.partition("==")[0]) for e in extra}
    reqs = [r for r in reqs if canon(r.partition("==")[0]) not in overridden] + extra
    subprocess.run([str(py), "-m", "pip", "install", "-q", *reqs], check=True)
    stamp.write_text(want)
    log(f"built {venv} in {time.perf_counter() - t0:.0f} s")
    return py


def freeze(py: Path) -> dict[str, str]:
    out = {}
    for line in sh([str(py), "-m", "pip", "freeze", "--all"]).splitlines():
        if "==" in line:
            name, _, version = line.partition("==")
            out[canon(name)] = version
        elif " @ " in line:
            name, _, url = line.partition(" @ ")
            out[canon(name)] = url.strip()
    return out


# ------------------------------------------------------------------------------ the front end


class Frontend:
    """A minimal notebook front end over jupyter_client: widget models, Output capture, displays."""

    def __init__(self, kc, timeout: float):
        self.kc = kc
        self.timeout = timeout
        self.models: dict[str, dict] = {}
        self.captured: dict[str, list] = {}  # Output model id -> its outputs
        self.displays: dict[str, list] = {}  # display_id -> outputs showing it
        self.display_updates: dict[str, int] = {}
        self.orphans = 0

    def _target(self, parent: str, own: list) -> list | None:
        for mid, state in self.models.items():
            if state.get("_model_name") == "OutputModel" and state.get("msg_id") and state["msg_id"] == parent:
                return self.captured.setdefault(mid, [])
        return own

    def _handle(self, msg, msg_id: str, own: list, errors: list) -> None:
        kind, content = msg["msg_type"], msg["content"]
        parent = msg["parent_header"].get("msg_id", "")
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.models[content["comm_id"]] = dict(content["data"].get("state", {}))
        elif kind == "comm_msg" and content["comm_id"] in self.models:
            data = content["data"]
            if data.get("method") in ("update", "echo_update"):
                self.models[content["comm_id"]].update(data.get("state", {}))
        elif kind in ("stream", "display_data", "execute_result", "error", "clear_output", "update_display_data"):
            target = self._target(parent, own if parent == msg_id else None)
            if kind == "update_display_data":
                did = content.get("transient", {}).get("display_id")
                self.display_updates[did] = self.display_updates.get(did, 0) + 1
                if did not in self.displays:
                    errors.append(f"update_display_data for display {did!r}, which no output shows (the update is lost)")
                for out in self.displays.get(did, []):
                    out["data"] = content["data"]
                return
            if target is None:
                self.orphans += 1
                if kind == "error":
                    errors.append(f"{content['ename']}: {content['evalue']} (outside any cell)")
                return
            if kind == "clear_output":
                target.clear()
                return
            out = {"output_type": kind, **{k: v for k, v in content.items() if k != "transient"}}
            did = content.get("transient", {}).get("display_id")
            if did:
                self.displays.setdefault(did, []).append(out)
            if kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")
            target.append(out)

    def _wait(self, msg_id: str, own: list, errors: list) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply within {self.timeout:.0f} s")
            msg = self.kc.get_iopub_msg(timeout=left)
            self._handle(msg, msg_id, own, errors)
            if (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                    and msg["parent_header"].get("msg_id") == msg_id):
                return

    def execute(self, code: str) -> tuple[list, list]:
        outputs, errors = [], []
        msg_id = self.kc.execute(code, allow_stdin=False)
        self._wait(msg_id, outputs, errors)
        reply = self.kc.get_shell_msg(timeout=self.timeout)
        if reply["content"]["status"] == "error" and not errors:
            errors.append(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
        return outputs, errors

    def send_state(self, comm_id: str, state: dict) -> list:
        """What a browser sends when a control moves: comm_msg "update" with the new state."""
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}})
        self.kc.shell_channel.send(msg)
        errors: list = []
        self._wait(msg["header"]["msg_id"], [], errors)
        self.models[comm_id].update(state)
        return errors

    def descendants(self, model_id: str) -> list[str]:
        seen, todo = [], [model_id]
        while todo:
            mid = todo.pop(0)
            if mid in seen or mid not in self.models:
                continue
            seen.append(mid)
            for value in self.models[mid].values():
                refs = value if isinstance(value, list) else [value]
                todo += [r[len("IPY_MODEL_"):] for r in refs if isinstance(r, str) and r.startswith("IPY_MODEL_")]
        return seen

    def view(self, ids: list[str]) -> str:
        """What the reader sees of these models' figures: Output contents and plotly widget state,
        with random element ids removed."""
        parts = []
        for mid in ids:
            state = self.models[mid]
            if state.get("_model_name") == "OutputModel":
                parts.append(self.captured.get(mid, []))
            elif "_data" in state or "_layout" in state:  # plotly FigureWidget
                parts.append({k: state.get(k) for k in ("_data", "_layout", "_js2py_restyle", "_py2js_update", "_py2js_animate")})
        return _ID.sub("ID", json.dumps(parts, sort_keys=True, default=str))


# ------------------------------------------------------------------------------ the checks


def static_views(outputs: list) -> list[dict]:
    """The figures of every static explorer view (grpo_core.viz._compat.StaticView) in ``outputs``."""
    figs = []
    for out in outputs:
        html = out.get("data", {}).get("text/html", "")
        html = "".join(html) if isinstance(html, list) else html
        if 'id="grpo-static-' in html and "var fig = " in html:
            start = html.index("var fig = ") + len("var fig = ")
            figs.append(json.JSONDecoder().raw_decode(html[start:])[0])
    return figs


def static_controls(fig: dict) -> list[tuple[str, bool]]:
    """For each control of a static explorer: whether some other value selects another frame."""
    layout = fig["layout"]
    meta = layout["meta"]["grpo_explorer"]
    shape, active, frame_of = meta["shape"], meta["active"], meta["frame_of"]

    def flat(idx):
        f = 0
        for k, n in enumerate(shape):
            f = f * n + idx[k]
        return f

    result = []
    for k, (kind, i) in enumerate(meta["controls"]):
        if kind == "slider":
            name = layout["sliders"][i]["currentvalue"]["prefix"].rstrip(": ")
        else:
            name = layout["updatemenus"][i]["buttons"][0]["label"].split(":")[0]
        base = frame_of[flat(active)]
        changes = any(frame_of[flat(active[:k] + [j] + active[k + 1:])] != base for j in range(shape[k]) if j != active[k])
        result.append((name, changes))
    return result


def moves(state: dict) -> list[dict]:
    """The states a reader can move a control to from ``state``, as the browser would send them."""
    name = state.get("_model_name")
    if name in SLIDERS and name != "IntRangeSliderModel":
        value = state["value"]
        return [{"value": v} for v in (state["max"], state["min"], value) if v != value][:2] + [{"value": value}]
    if name in SELECTIONS:
        n = len(state.get("_options_labels", []))
        cur = state.get("index")
        return [{"index": j} for j in range(n) if j != cur] + [{"index": cur}]
    if name in ("CheckboxModel", "ToggleButtonModel"):
        return [{"value": not state["value"]}, {"value": state["value"]}]
    return []


def check_chapter(fe: Frontend, nb: dict, name: str, repo_url: str | None) -> dict:
    row = dict(chapter=name, cells=0, errors=[], explorers=0, static_controls=0, static_dead=[],
               live_controls=0, live_moves=0, live_dead=[], display_updates=0, stderr=0)
    shown = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        if repo_url and f'REPO = "{UPSTREAM}"' in src:
            src = src.replace(f'REPO = "{UPSTREAM}"', f'REPO = "{repo_url}"')
            repo_url = None  # installed once, by the first chapter
        row["cells"] += 1
        outputs, errors = fe.execute(src)
        if row["cells"] == 1:
            row["setup"] = " ".join("".join(o.get("text", "")).strip() for o in outputs if o.get("name") == "stdout")
        row["errors"] += [f"cell {row['cells']}: {e}" for e in errors]
        row["stderr"] += sum(1 for o in outputs if o.get("name") == "stderr")
        for o in outputs:
            if o.get("name") == "stderr":
                log(f"  {name} cell {row['cells']} stderr: {o['text'].strip()[:300]}")
        shown += static_views(outputs)
        row.setdefault("static_html", []).extend(
            "".join(h) if isinstance(h, list) else h for h in (o.get("data", {}).get("text/html") for o in outputs)
            if h and 'id="grpo-static-' in ("".join(h) if isinstance(h, list) else h))
        expected = re.findall(r'get_explorer\("([^"]+)"\)\.show\(\)', src)
        got = [f["layout"]["meta"]["grpo_explorer"]["name"] for f in static_views(outputs)]
        for e in expected:
            if e not in got:
                row["errors"].append(f"cell {row['cells']}: explorer {e!r} shown but no static view in its output")
    row["display_updates"] = sum(fe.display_updates.values())
    outputs, _ = fe.execute("import google.colab.output as _o; print(' '.join(_o.calls) or 'off')")
    row["manager"] = "".join(o.get("text", "") for o in outputs).strip()  # before any live explorer
    row["explorers"] = len(shown)
    for fig in shown:
        ename = fig["layout"]["meta"]["grpo_explorer"]["name"]
        for cname, changes in static_controls(fig):
            row["static_controls"] += 1
            if not changes:
                row["static_dead"].append(f"{ename}/{cname}")
        # the live form in the same kernel, driven through the widget protocol
        outputs, errors = fe.execute(
            "from grpo_core.viz.explorers import get_explorer\n"
            f"get_explorer({ename!r}).show(mode='live')"
        )
        row["errors"] += [f"live {ename}: {e}" for e in errors]
        roots = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for o in outputs
                 if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        if not roots:
            row["errors"].append(f"live {ename}: no widget displayed")
            continue
        ids = fe.descendants(roots[-1])
        controls = [m for m in ids if moves(fe.models[m])]
        if not controls:
            row["errors"].append(f"live {ename}: no controls found")
        for cid in controls:
            state = fe.models[cid]
            label = state.get("description") or state.get("_model_name")
            row["live_controls"] += 1
            before = fe.view(ids)
            changed = 0
            for move in moves(state):
                errs = fe.send_state(cid, move)
                row["errors"] += [f"live {ename}/{label}: {e}" for e in errs]
                row["live_moves"] += 1
                after = fe.view(ids)
                changed += after != before
                before = after
            if not changed:
                row["live_dead"].append(f"{ename}/{label}")
    return row


BROWSER_JS = """(sel) => { const el = document.querySelector(sel + ' .js-plotly-plot'); return el ? el.getAttribute('data-grpo-frame') : null; }"""


def browser_check(rows: list, plotlyjs: Path, log_dir: Path) -> None:
    """Each chapter's static views as Colab gets them, in headless Chromium: plotly.js is served from
    the Colab environment's plotly in place of the CDN; every slider and dropdown is clicked and
    must make the figure show another frame. Adds ``browser`` ("k/n") and errors to each row."""
    from playwright.sync_api import sync_playwright

    js = plotlyjs.read_text()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        for row in rows:
            views = row.get("static_html", [])
            if not views:
                row["browser"] = "-"
                continue
            page_file = log_dir / f"{row['chapter']}.static.html"
            page_file.write_text("<html><head><meta charset='utf-8'></head><body style='width:968px'>"
                                 + "".join(f"<div class='cell' id='view{k}'>{h}</div>" for k, h in enumerate(views)) + "</body></html>")
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("https://cdn.plot.ly/**", lambda r: r.fulfill(status=200, content_type="application/javascript", body=js))
            page.goto(page_file.as_uri())
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length == {len(views)}", timeout=30000)
            ok = total = 0
            for k in range(len(views)):
                sel = f"#view{k}"
                for kind in ("slider", "menu"):
                    css = f"{sel} .slider-rail-rect" if kind == "slider" else f"{sel} .updatemenu-header"
                    for i in range(len(page.query_selector_all(css))):
                        total += 1
                        changed = False
                        for where in (0.03, 0.97, "first", "last"):
                            before = page.evaluate(BROWSER_JS, sel)
                            handle = page.query_selector_all(css)[i]
                            handle.scroll_into_view_if_needed()
                            if kind == "slider" and isinstance(where, float):
                                box = handle.bounding_box()
                                page.mouse.click(box["x"] + box["width"] * where, box["y"] + box["height"] / 2)
                            elif kind == "menu" and isinstance(where, str):
                                handle.click()
                                page.wait_for_timeout(100)
                                buttons = page.query_selector_all(f"{sel} .updatemenu-dropdown-button")
                                if not buttons:
                                    continue
                                (buttons[0] if where == "first" else buttons[-1]).click()
                            else:
                                continue
                            page.wait_for_timeout(150)
                            changed |= page.evaluate(BROWSER_JS, sel) != before
                        ok += changed
                        if not changed:
                            row["errors"].append(f"browser: static view {k} {kind} {i} never changed the frame")
            page.screenshot(path=str(log_dir / f"{row['chapter']}.static.png"), full_page=True)
            row["errors"] += [f"browser: {e}" for e in errors]
            row["browser"] = f"{ok}/{total}"
            page.close()
        browser.close()


def has_own_install(path: Path) -> bool:
    """Whether a code cell after the chapter's first (the setup cell) runs ``%pip install``."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    return any("%pip install" in "".join(c["source"]) for c in cells[1:])


def run_chapter(py: Path, path: Path, workdir: Path, env: dict, repo_url: str | None, timeout: float, log_dir: Path) -> dict:
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = workdir / "kernels" / "colab"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab check", "language": "python"}))
    km = KernelManager(kernel_name="colab", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(workdir / "kernels")]))
    kernel_log = log_dir / f"{path.stem}.kernel.log"
    t0 = time.perf_counter()
    with open(kernel_log, "w") as klog:
        km.start_kernel(cwd=str(workdir), env=env, stdout=klog, stderr=klog)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
            fe = Frontend(kc, timeout)
            nb = json.loads(path.read_text())
            row = check_chapter(fe, nb, path.stem, repo_url)
            row["orphans"] = fe.orphans
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    text = kernel_log.read_text()
    for line in text.splitlines():
        if "Traceback" in line or "Exception in" in line or line.startswith("ERROR"):
            row["errors"].append(f"kernel log: {line.strip()[:200]} (see {kernel_log})")
    row["seconds"] = time.perf_counter() - t0
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default="python3", help="interpreter of the Colab environment (default python3)")
    ap.add_argument("--venv", default=str(ROOT / ".venv-colab"))
    ap.add_argument("--pins", default=str(ROOT / "requirements-colab.txt"))
    ap.add_argument("--pin", action="append", default=[], help="override or add a pin, e.g. torch==2.11.0")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per cell or control move")
    ap.add_argument("--build-only", action="store_true", help="build the environment and stop")
    ap.add_argument("--no-browser", action="store_true", help="skip clicking the static views in Chromium")
    ap.add_argument("chapters", nargs="*", help="notebooks (default: book/*.ipynb)")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    pin_file = Path(args.pins)
    py = build_venv(Path(args.venv).resolve(), args.python, pin_file, args.pin)
    if args.build_only:
        return 0
    subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", "grpo_core"], check=False, capture_output=True)
    before = freeze(py)
    wanted = pins(pin_file, args.pin)
    problems = [f"{n}: pinned {v}, environment has {before.get(n)}" for n, v in wanted.items()
                if before.get(n, "").split("+")[0] != v.split("+")[0]]
    if problems:
        for p in problems:
            log(f"FAIL pin: {p}")
        return 1

    chapters = [Path(c) for c in args.chapters] or sorted((ROOT / "book").glob("*.ipynb"))
    head = sh(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).strip()
    if sh(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]).strip():
        log(f"note: uncommitted changes are not checked (the install is of commit {head[:10]}, as in Colab)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="colab-check-") as tmp:
        tmp = Path(tmp)
        clone = tmp / "grpo-interactively"
        sh(["git", "clone", "-q", "--no-checkout", str(ROOT), str(clone)])
        sh(["git", "-C", str(clone), "checkout", "-q", "-B", "colab-check", head])
        workdir = tmp / "content"  # Colab's working directory is /content, outside any checkout
        workdir.mkdir()
        log_dir = ROOT / "_build" / "colab-check"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", BOOK_ENV)}
        env.update(PYTHONPATH=str(STUB), COLAB_NOTEBOOK_ID="colab-check", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
                   PATH=f"{py.parent}:{env.get('PATH', '')}")
        repo_url = f"file://{clone}"
        changed, added, prev = [], [], before
        for path in chapters:
            log(f"{path.name} ...")
            row = run_chapter(py, path, workdir, env, repo_url, args.timeout, log_dir)
            repo_url = None
            rows.append(row)
            # What this chapter's cells installed. A package that was there before never changes.
            # New packages come only from the first cell's install of grpo_core, or from a chapter's
            # own declared install (a `%pip install` after its setup cell: the real-trainer chapter's
            # TRL), which is reported, not failed: it is that chapter's documented need.
            now = freeze(py)
            changed += [f"{n} {v} -> {now.get(n, 'removed')} (by {path.stem})" for n, v in prev.items() if now.get(n) != v]
            new = [f"{n} {v}" for n, v in now.items() if n not in prev and n != "grpo-core"]
            if new and has_own_install(path):
                row["own_install"] = new
            else:
                added += [f"{a} (by {path.stem})" for a in new]
            prev = now
            log(f"{path.name}: {row['seconds']:.0f} s, {len(row['errors'])} error(s); first cell printed: {row.get('setup')}")
    if not args.no_browser:
        plotly_dir = sh([str(py), "-c", "import os, plotly; print(os.path.dirname(plotly.__file__))"]).strip()
        browser_check(rows, Path(plotly_dir) / "package_data" / "plotly.min.js", log_dir)
    after = freeze(py)
    if "grpo-core" not in after:
        changed.append("grpo_core was not installed by the first cell")
    version = sh([str(py), "-c", "import sys; print(sys.version.split()[0])"]).strip()
    return report(rows, changed, added, before, time.perf_counter() - t_start, head, version)


BOOK_ENV = "GRPO_BOOK_BUILD"


def report(rows, changed, added, before, total_s, head, version) -> int:
    print()
    print(f"Colab check of commit {head[:10]}: Python {version}, torch {before.get('torch')}, numpy {before.get('numpy')}, plotly {before.get('plotly')}, "
          f"ipywidgets {before.get('ipywidgets')}, ipykernel {before.get('ipykernel')}, IPython {before.get('ipython')}")
    print()
    print("| chapter | cells | errors | explorers (static) | static controls that change a frame | live controls that redraw (moves) | static controls that redraw in Chromium | display updates | custom widget manager (chapter) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    failed = bool(changed or added)
    for r in rows:
        bad = r["errors"] or r["static_dead"] or r["live_dead"]
        failed |= bool(bad)
        print(f"| {r['chapter']} | {r['cells']} | {len(r['errors'])} | {r['explorers']} | "
              f"{r['static_controls'] - len(r['static_dead'])}/{r['static_controls']} | "
              f"{r['live_controls'] - len(r['live_dead'])}/{r['live_controls']} ({r['live_moves']}) | {r.get('browser', 'skipped')} | "
              f"{r['display_updates']} | {r.get('manager', '?')} | {r['seconds']:.0f} |")
    print()
    for r in rows:
        for e in r["errors"]:
            print(f"FAIL {r['chapter']}: {e}")
        for c in r["static_dead"]:
            print(f"FAIL {r['chapter']}: static control {c} selects the same frame for every value")
        for c in r["live_dead"]:
            print(f"FAIL {r['chapter']}: live control {c} changed nothing that is displayed")
    for r in rows:
        if r.get("own_install"):
            print(f"NOTE {r['chapter']}: its own install added {len(r['own_install'])} packages, none of the ones "
                  f"already there changed: {', '.join(r['own_install'])}")
    for c in changed:
        print(f"FAIL package changed by the install: {c}")
    for a in added:
        print(f"FAIL package added by the install: {a}")
    print(f"packages: {len(before)} before the install, none changed" if not (changed or added) else "packages: see FAIL lines")
    print(f"colab-check {'FAILED' if failed else 'passed'} in {total_s:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
