"""Equation <-> code: docstrings cite only labels that exist, and the book maps every labelled
equation to the functions that compute it (the page book/code-map.md, built by _ext/code_map.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "_ext"))

import code_map  # noqa: E402


def test_every_cited_label_exists():
    labels = code_map.book_labels(ROOT)
    bad = []
    for c in code_map.code_citations(ROOT):
        lab = labels.get(c.label)
        if lab is None:
            bad.append(f"{c.path}:{c.line} {c.obj} cites {c.label!r}, which no page of the book defines")
        elif c.kind == "equation" and lab.kind != "equation":
            bad.append(f"{c.path}:{c.line} {c.obj} cites Eq. {c.label!r}, which is a section label")
    assert not bad, "\n".join(bad)


def test_the_reader_finds_labels_and_citations():
    labels = code_map.book_labels(ROOT)
    assert labels["adv-group"].kind == "equation" and labels["adv-group"].page == "book/normalisation"
    assert labels["normalisation-formula"].kind == "section"
    cites = {(c.label, c.obj) for c in code_map.code_citations(ROOT)}
    assert ("adv-group", "grpo_core.advantages.group_advantages") in cites
    assert ("grpo-loss", "grpo_core.objective.grpo_loss") in cites
    assert ("kl-estimators", "grpo_core.kl.kl_k3") in cites


def test_citation_pattern_reads_lists_and_ranges():
    doc = "see book Eqs. ``a-1``, ``b-2`` and ``c`` and book section ``sec-x``; Eq. ``d``..``e``."
    found = [(m.group(1), code_map.NAME.findall(m.group(2))) for m in code_map.CITATION.finditer(doc)]
    assert found == [("Eqs.", ["a-1", "b-2", "c"]), ("section", ["sec-x"]), ("Eq.", ["d", "e"])]


def test_code_map_lists_every_labelled_equation_once():
    labels = code_map.book_labels(ROOT)
    table = code_map.code_map_markdown(ROOT)
    equations = [lab.name for lab in labels.values() if lab.kind == "equation"]
    for name in equations:
        assert table.count(f"{{eq}}`{name}`") == 1, name
    assert "`grpo_core.advantages.group_advantages`" in table
    assert table.count("\n") == len(equations) + 2  # header, rule, one row per equation
