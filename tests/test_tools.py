"""The checks that run on the built book: tools/check_links.py (tools/browser_check.py runs in make test)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

import check_links  # noqa: E402


def _site(tmp_path, link):
    (tmp_path / "index.html").write_text('<html><body><a href="book/a.html">a</a></body></html>')
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "a.html").write_text(f'<html><body><h1 id="top">A</h1><a href="{link}">x</a>'
                                              '<a href="https://example.org/">out</a></body></html>')
    return tmp_path


def test_links_that_resolve_pass(tmp_path, capsys):
    assert check_links.check(_site(tmp_path, "../index.html"), external=False) == 0
    assert check_links.check(_site(tmp_path / "s2", "a.html#top") if (tmp_path / "s2").mkdir() is None else None,
                             external=False) == 0
    assert "1 distinct external links not checked" in capsys.readouterr().out


def test_a_missing_page_or_fragment_fails(tmp_path, capsys):
    (tmp_path / "s1").mkdir()
    assert check_links.check(_site(tmp_path / "s1", "missing.html"), external=False) == 1
    (tmp_path / "s2").mkdir()
    assert check_links.check(_site(tmp_path / "s2", "a.html#nowhere"), external=False) == 1
    out = capsys.readouterr().out
    assert "missing.html (no such file)" in out and "no id 'nowhere'" in out
