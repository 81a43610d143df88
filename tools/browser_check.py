#!/usr/bin/env python
"""Open every page of the built book in headless Chromium with the network blocked, and check it.

Usage: python tools/browser_check.py [_build/html] [--screenshots _build/screenshots] [--chromium PATH]

For each HTML page of the site (search and genindex excepted), with every request that is not a
``file://`` URL aborted:

- no JavaScript error (uncaught exception or ``console.error``) and no blocked request;
- the first screen drew: the figures and equations within the first viewport are drawn and
  typeset (the page's "first screen" time, a benchmark figure, not a pass/fail limit);
- every plotly figure drew (its ``.main-svg`` is present) and every equation was typeset, after
  scrolling through the page and opening every dropdown (the book draws figures and typesets
  equations when they near the viewport);
- every figure with controls redraws when they are driven by script: each plotly slider is
  clicked at another step and each dropdown set to another option, and the figure's frame must
  change each time;
- every equation rendered (each ``.math`` element holds a MathJax ``mjx-container``);
- no ipywidgets placeholder or "Error displaying widget" text;
- a full-page screenshot, and one of the first screen in dark mode, are saved to the screenshots
  folder (test artifacts).

Prints one line per page (figures, controls driven, equations, first-screen time, time to the
whole page drawn while scrolling) and exits 1 if any check failed. Uses Debian's Chromium (``/usr/bin/chromium``); Playwright downloads no browser.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

SKIP = {"search.html", "genindex.html", "py-modindex.html"}
# figures whose plot has been drawn (plotly adds its .main-svg layers to the div)
DRAWN_JS = "[...document.querySelectorAll('.grpo-plotly')].filter(d => d.querySelector('.main-svg')).length"
# equations typeset (MathJax's lazy typesetting leaves an mjx-lazy placeholder until it is near)
TYPESET = "e => { const c = e.querySelector('mjx-container'); return !!c && !c.querySelector('mjx-lazy'); }"
# equations a reader can see: not inside something hidden (e.g. the table of contents of a narrow
# window, whose headings repeat the page's inline math)
SHOWN_MATH = "[...document.querySelectorAll('.math')].filter(e => e.getClientRects().length > 0)"
MATH_DONE_JS = f"{SHOWN_MATH}.filter({TYPESET}).length"
# what the first screen shows: figures and equations whose box starts within the viewport
IN_VIEW = "e => { const r = e.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight && r.width > 0; }"
FIRST_SCREEN_JS = (
    f"() => [...document.querySelectorAll('.grpo-plotly')].filter({IN_VIEW}).every(d => d.querySelector('.main-svg'))"
    f" && [...document.querySelectorAll('.math')].filter({IN_VIEW}).every({TYPESET})"
)
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


def scroll_through(page, n_figs: int) -> tuple[float, int]:
    """Open every dropdown, scroll down half a screen at a time until every figure is drawn and
    every shown equation typeset; return the seconds it took (scrolling included) and the number
    of shown equations."""
    t0 = time.perf_counter()
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    page.evaluate("() => document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'))")
    n_math = page.evaluate(f"() => {SHOWN_MATH}.length")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    step = page.viewport_size["height"] // 2
    for y in range(0, height + step, step):
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.wait_for_timeout(60)
    done = f"() => {DRAWN_JS} >= {n_figs} && {MATH_DONE_JS} >= {n_math}"
    try:
        page.wait_for_function(done, timeout=3000)
    except Exception:
        # what a quick scroll went past: bring each into view, as a reader who stops there would
        left = page.locator(".grpo-plotly:not(:has(.main-svg)), .math:not(:has(mjx-container:not(:has(mjx-lazy))))")
        for k in range(left.count()):
            try:
                left.nth(k).scroll_into_view_if_needed(timeout=1000)
                page.wait_for_timeout(100)
            except Exception:  # hidden: not counted
                pass
        try:
            page.wait_for_function(done, timeout=5000)
        except Exception:  # the caller reports what did not draw
            pass
    page.evaluate("() => window.scrollTo(0, 0)")
    return time.perf_counter() - t0, n_math


def check(root: Path, shots: Path, chromium: str) -> int:
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    slowest = (0.0, "")
    times: list[float] = []
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
            page.wait_for_function(FIRST_SCREEN_JS, timeout=20000)
            first_s = time.perf_counter() - t0
            slowest = max(slowest, (first_s, name))
            figs = page.locator(".grpo-plotly")
            n_figs = figs.count()
            whole_s, n_math = scroll_through(page, n_figs)
            drawn = page.evaluate(f"() => {DRAWN_JS}")
            if drawn < n_figs:
                problems.append(f"{name}: {n_figs - drawn} of {n_figs} figures did not draw")
            rendered = page.evaluate(f"() => {MATH_DONE_JS}")
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
            times.append(first_s)
            print(f"{name:32s} figures {drawn}/{n_figs}  controls driven {driven:2d}  equations {rendered}/{n_math}  "
                  f"first screen {first_s:.2f} s  whole page {whole_s:.2f} s  errors {len(errors)}", flush=True)
            ctx.close()
        browser.close()
    if times:
        print(f"first screen: median {statistics.median(times):.2f} s, slowest {slowest[1]} {slowest[0]:.2f} s "
              "(load, then every figure and equation of the first viewport drawn)")
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
