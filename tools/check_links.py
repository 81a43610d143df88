#!/usr/bin/env python
"""Check the internal links of the built book: every local href/src exists, every #fragment is an id.

Usage: python tools/check_links.py [_build/html] [--external]

Links to other sites (http, https, mailto) are listed but not fetched unless ``--external`` is
given (CI has no network). Exits 1 if an internal link is broken.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if a.get(key) and not (tag == "link" and a.get("rel") in ("preconnect", "dns-prefetch")):
                self.links.append(a[key])


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def check(root: Path, external: bool) -> int:
    pages = {p.resolve(): parse(p) for p in root.rglob("*.html") if "_static" not in p.parts}
    broken, outside = [], set()
    n_links = 0
    for path, page in pages.items():
        for link in page.links:
            scheme = urlparse(link).scheme
            if scheme in ("http", "https", "mailto"):
                outside.add(link)
                continue
            if scheme in ("data", "javascript", "about"):
                continue
            n_links += 1
            target, fragment = urldefrag(link)
            target = unquote(target.split("?")[0])
            dest = (path.parent / target).resolve() if target else path
            if dest.is_dir():
                dest = dest / "index.html"
            if not dest.exists():
                broken.append(f"{path.relative_to(root.resolve())}: {link} (no such file)")
                continue
            if fragment and dest.suffix == ".html":
                ids = pages[dest].ids if dest in pages else parse(dest).ids
                if unquote(fragment) not in ids:
                    broken.append(f"{path.relative_to(root.resolve())}: {link} (no id {fragment!r})")
    print(f"{len(pages)} pages, {n_links} internal links checked, {len(broken)} broken; "
          f"{len(outside)} distinct external links {'checked below' if external else 'not checked (no --external)'}")
    if external:
        for url in sorted(outside):
            if url.startswith("mailto:"):
                continue
            try:
                req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "grpo-book-linkcheck"})
                urllib.request.urlopen(req, timeout=15)
            except Exception as err:  # noqa: BLE001 - report whatever failed
                broken.append(f"external: {url} ({err})")
    for b in broken:
        print("  " + b)
    return 1 if broken else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="_build/html")
    parser.add_argument("--external", action="store_true", help="also fetch external links (needs network)")
    args = parser.parse_args()
    root = Path(args.root)
    if not (root / "index.html").is_file():
        sys.exit(f"{root}/index.html not found: build the book first (make book)")
    sys.exit(check(root, args.external))


if __name__ == "__main__":
    main()
