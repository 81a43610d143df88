#!/usr/bin/env python
"""Open every page of the built book in headless Chromium with the network blocked, and check it.

Usage: python tools/browser_check.py [_build/html] [--screenshots _build/screenshots] [--chromium PATH]

For each HTML page of the site (search and genindex excepted), with every request that is not a
``file://`` URL aborted:

- no JavaScript error (uncaught exception or ``console.error``) and no blocked request;
- every plotly figure drew (its ``.main-svg`` is present);
- every figure with controls redraws when they are driven by script: each plotly slider is
  clicked at another step and each dropdown set to another option, and the figure's frame must
  change each time;
- every equation rendered (each ``.math`` element holds a MathJax ``mjx-container``);
- no ipywidgets placeholder or "Error displaying widget" text;
- a full-page screenshot, and one of the first screen in dark mode, are saved to the screenshots
  folder (test artifacts).

Prints one line per page (figures, controls driven, equations, load time) and exits 1 if any
check failed. Uses Debian's Chromium (``/usr/bin/chromium``); Playwright downloads no browser.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SKIP = {"search.html", "genindex.html", "py-modindex.html"}
# figures whose plot has been drawn (plotly adds its .main-svg layers to the div)
DRAWN_JS = "[...document.querySelectorAll('.grpo-plotly')].filter(d => d.querySelector('.main-svg')).length"
WIDGET_TEXTS = ("Error displaying widget", "Loading widget", "Widget Javascript not detected")


def pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.html") if p.name not in SKIP and "_static" not in p.parts)


def frame_of(fig) -> str | None:
    return fig.get_attribute("data-grpo-frame")


def drive_controls(page, fig, problems: list[str], name: str, k: int) -> int:
    """Move every slider and dropdown of figure ``fig``; return how many controls were driven."""
    driven = 0
    sliders = fig.locator(".slider-group")
    for s in range(sliders.count()):
        labels = sliders.nth(s).locator(".slider-label")
        rail = sliders.nth(s).locator(".slider-rail-touch-rect")
        if labels.count() < 2 or rail.count() == 0:
            continue
        before = frame_of(fig)
        rb = rail.first.bounding_box()
        changed = False
        for idx in (labels.count() - 1, 0):
            box = labels.nth(idx).bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, rb["y"] + rb["height"] / 2)
            page.wait_for_timeout(150)
            if frame_of(fig) != before:
                changed = True
                break
        driven += 1
        if not changed:
            problems.append(f"{name}: figure {k}, slider {s} did not change the figure")
    menus = fig.locator(".updatemenu-header-group")
    for m in range(menus.count()):
        before = frame_of(fig)
        menus.nth(m).click(force=True)
        page.wait_for_timeout(150)
        buttons = fig.locator(".updatemenu-dropdown-button")
        changed = False
        for b in range(buttons.count() - 1, -1, -1):
            buttons.nth(b).click(force=True)
            page.wait_for_timeout(150)
            if frame_of(fig) != before:
                changed = True
                break
            menus.nth(m).click(force=True)
            page.wait_for_timeout(100)
        driven += 1
        if not changed:
            problems.append(f"{name}: figure {k}, dropdown {m} did not change the figure")
    return driven


def check(root: Path, shots: Path, chromium: str) -> int:
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    slowest = (0.0, "")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for path in pages(root):
            name = path.relative_to(root).as_posix()
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            blocked: list[str] = []

            def route(r, blocked=blocked):
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()

            ctx.route("**/*", route)
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(f"uncaught: {e}"))
            page.on("console", lambda m, errors=errors: errors.append(f"console.error: {m.text}") if m.type == "error" else None)
            t0 = time.perf_counter()
            if 'http-equiv="refresh"' in path.read_text(encoding="utf-8", errors="replace")[:2000].lower():
                print(f"{name:32s} only redirects (meta refresh); its target is checked itself", flush=True)
                ctx.close()
                continue
            page.goto(path.as_uri(), wait_until="load")
            figs = page.locator(".grpo-plotly")
            n_figs = figs.count()
            if n_figs:
                page.wait_for_function(f"() => {DRAWN_JS} >= {n_figs}", timeout=20000)
            n_math = page.locator(".math").count()
            if n_math:
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.math')].every(e => e.querySelector('mjx-container'))",
                    timeout=20000)
            load_s = time.perf_counter() - t0
            slowest = max(slowest, (load_s, name))
            drawn = page.evaluate(f"() => {DRAWN_JS}")
            if drawn < n_figs:
                problems.append(f"{name}: {n_figs - drawn} of {n_figs} figures did not draw")
            rendered = page.evaluate("() => [...document.querySelectorAll('.math')].filter(e => e.querySelector('mjx-container')).length")
            if rendered < n_math:
                problems.append(f"{name}: {n_math - rendered} of {n_math} equations not rendered")
            text = page.inner_text("body")
            for t in WIDGET_TEXTS:
                if t in text:
                    problems.append(f"{name}: page shows {t!r}")
            page.screenshot(path=str(shots / (name.replace("/", "__").removesuffix(".html") + ".png")), full_page=True)
            driven = 0
            for k in range(n_figs):
                fig = figs.nth(k)
                if fig.locator(".slider-group, .updatemenu-header-group").count():
                    fig.scroll_into_view_if_needed()
                    driven += drive_controls(page, fig, problems, name, k)
            # the same page in dark mode (the theme follows the system setting): one screenshot
            page.emulate_media(color_scheme="dark")
            page.reload(wait_until="load")
            page.wait_for_timeout(300)
            page.screenshot(path=str(shots / (name.replace("/", "__").removesuffix(".html") + "__dark.png")))
            for e in errors:
                problems.append(f"{name}: {e}")
            for u in sorted(set(blocked)):
                problems.append(f"{name}: requested {u} (network blocked)")
            print(f"{name:32s} figures {drawn}/{n_figs}  controls driven {driven:2d}  equations {rendered}/{n_math}  "
                  f"load {load_s:.2f} s  errors {len(errors)}", flush=True)
            ctx.close()
        browser.close()
    print(f"slowest page: {slowest[1]} ({slowest[0]:.2f} s to load, draw every figure and render every equation)")
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for pr in problems:
            print("  " + pr)
        return 1
    print("every page passed")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="_build/html")
    parser.add_argument("--screenshots", default="_build/screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    root = Path(args.root).resolve()
    if not (root / "index.html").is_file():
        sys.exit(f"{root}/index.html not found: build the book first (make book)")
    if not Path(args.chromium).is_file():
        sys.exit(f"{args.chromium} not found: install Debian's chromium package (.ci/run does)")
    sys.exit(check(root, Path(args.screenshots), args.chromium))


if __name__ == "__main__":
    main()
