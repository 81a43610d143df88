"""The book's reserved symbols mean one thing each (the notation table of the intro).

The table (intro, section `notation`) reserves:

- $r$ for rewards;
- $\\rho$ for the PPO ratio $\\pi_\\theta/\\pi_\\text{old}$ (per token $\\rho_{i,t}$, per answer
  $\\rho_i$), $s_i$ for GSPO's length-normalised sequence ratio;
- $\\kappa$ for the ratio $\\pi_\\text{ref}/\\pi_\\theta$ of the KL estimators $k_1, k_2, k_3$;
- $\\epsilon$ for the clip range ($\\epsilon_\\text{low}$, $\\epsilon_\\text{high}$);
- $\\xi$ for the small constant added to a std, $A = (r - \\bar r)/(s + \\xi)$.

This test reads the math of every chapter (the markdown cells of ``book/*.ipynb`` and
``book/*.md``) and fails on a line that uses a reserved symbol for something else. The
rules are patterns, each aimed at one collision the book has had:

- ``varepsilon``: ``\\varepsilon`` is not a symbol of the book (it was the std constant
  while ``\\epsilon`` was the clip, two epsilons for two things);
- ``clip-as-std-constant``: ``\\epsilon`` added to a std (``s + \\epsilon``), or set to a
  tiny power of ten (``\\epsilon = 10^{-8}``);
- ``std-constant-as-clip``: ``1 \\pm \\xi`` and the like;
- ``ratio-definition``: a symbol defined as a quotient of two policies must be the one the
  table reserves for that quotient ($\\rho$ or $s$ for $\\pi_\\theta/\\pi_\\text{old}$,
  $\\kappa$ for $\\pi_\\text{ref}/\\pi_\\theta$);
- ``reserved-redefined``: $\\rho$ or $\\kappa$ defined as something that is not a ratio of
  policies (a correlation, say);
- ``kl-estimator-argument``: $k_1 = -\\log x$, $k_2 = \\frac12(\\log x)^2$,
  $k_3 = x - 1 - \\log x$ with $x \\ne \\kappa$;
- ``clip-argument``: $\\mathrm{clip}(x, \\dots)$ with $x$ neither $\\rho$ nor $s$.

Each rule is also run on a short bad and a short good example, so a rule that matches
nothing cannot pass unnoticed.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

# Chapters another branch is rewriting at the time this test was written; they are
# reported (xfail with the offending lines) instead of failing the suite. Remove a name
# once its chapter follows the table; an entry whose chapter passes shows as XPASS.
PENDING: set[str] = set()

_PI = re.compile(r"\\pi_(?:\{\\theta_\\text\{old\}\}|\\theta_\\text\{old\}|\\theta|\\text\{(old|ref)\}|\\mathrm\{(old|ref)\}|\{\\mathrm\{(old|ref)\}\}|\{\\text\{(old|ref)\}\}|(old|ref))")
# A symbol being defined: \rho, \rho_{i,t}, r_t(\theta), \kappa(o), s_i ... followed by "=".
_SYMBOL = r"(\\[a-zA-Z]+|[a-zA-Z])(?:_\{[^{}]*\}|_[a-zA-Z0-9]|_\\[a-zA-Z]+)?(?:\([^()=]*\))?"
_DEFINITION = re.compile(_SYMBOL + r"\s*=\s*")


def _policy_kind(text: str) -> str | None:
    """'theta', 'old' or 'ref' for the first policy named in ``text``, else None."""
    m = _PI.search(text)
    if not m:
        return None
    tag = next((g for g in m.groups() if g), None)
    if tag is None:
        return "old" if "old" in m.group(0) else "theta"
    return tag


def _split_quotient(rhs: str) -> tuple[str, str] | None:
    """Numerator and denominator of a leading \\frac{..}{..} or a/b, else None."""
    rhs = rhs.lstrip()
    if rhs.startswith("\\frac") or rhs.startswith("\\dfrac") or rhs.startswith("\\tfrac"):
        i = rhs.find("{")
        if i < 0:
            return None
        parts = []
        for _ in range(2):
            depth, start = 0, i
            for j in range(i, len(rhs)):
                if rhs[j] == "{":
                    depth += 1
                elif rhs[j] == "}":
                    depth -= 1
                    if depth == 0:
                        parts.append(rhs[start + 1 : j])
                        i = j + 1
                        while i < len(rhs) and rhs[i] != "{":
                            if not rhs[i].isspace():
                                return None
                            i += 1
                        break
            else:
                return None
            if len(parts) == 2:
                break
        return (parts[0], parts[1]) if len(parts) == 2 else None
    m = re.match(r"(\\pi_[^/]*?)\s*/\s*(\\pi_\S+)", rhs)
    if m:
        return m.group(1), m.group(2)
    return None


def math_spans(text: str) -> list[str]:
    """The $$...$$ and $...$ spans of a markdown text, code spans removed."""
    # fenced code (```python, ```text, ```) is dropped; MyST directives (```{glossary}) are kept
    text = re.sub(r"^(`{3,})(?!\{)[^\n]*\n.*?^\1[ \t]*$", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    spans = re.findall(r"\$\$(.+?)\$\$", text, flags=re.S)
    text = re.sub(r"\$\$(.+?)\$\$", "", text, flags=re.S)
    spans += re.findall(r"\$([^$\n]+?)\$", text)
    return spans


def _ratio_definitions(span: str):
    for m in _DEFINITION.finditer(span):
        symbol = m.group(1)
        rhs = span[m.end() :]
        quotient = _split_quotient(rhs)
        yield symbol, quotient, rhs


def violations_in_math(span: str) -> list[tuple[str, str]]:
    """(rule, excerpt) for every collision in one math span."""
    found = []
    flat = " ".join(span.split())
    if "\\varepsilon" in flat:
        found.append(("varepsilon", flat))
    # \epsilon added to something that is not the 1 of a clip bound
    for m in re.finditer(r"(\S+)\s*\+\s*\\epsilon", flat):
        if not re.search(r"(?:^|[^0-9.])1$", m.group(1)):
            found.append(("clip-as-std-constant", flat))
            break
    if re.search(r"\\epsilon(?:_\\text\{\w+\}|_\{[^}]*\})?\s*(?:=|\\approx|\\sim)\s*10\^", flat):
        found.append(("clip-as-std-constant", flat))
    if re.search(r"1\s*(?:\+|-|\\pm|\\mp)\s*\\xi", flat):
        found.append(("std-constant-as-clip", flat))
    for symbol, quotient, rhs in _ratio_definitions(flat):
        if quotient is not None:
            num, den = (_policy_kind(x) for x in quotient)
            if num == "theta" and den == "old" and symbol not in ("\\rho", "s"):
                found.append(("ratio-definition", flat))
            elif num == "ref" and den == "theta" and symbol != "\\kappa":
                found.append(("ratio-definition", flat))
            elif symbol in ("\\rho", "\\kappa") and (num, den) not in (("theta", "old"), ("ref", "theta")):
                found.append(("reserved-redefined", flat))
        elif symbol in ("\\rho", "\\kappa") and re.match(r"\\(?:sigma|operatorname|mathrm\{Corr|text\{corr)", rhs):
            found.append(("reserved-redefined", flat))
    for pattern in (
        r"k_1\s*=\s*-\s*\\log\s*(\\[a-zA-Z]+|[a-zA-Z])",
        r"k_2\s*=\s*\\[td]?frac\{?1\}?\{?2\}?\s*\(\s*\\log\s*(\\[a-zA-Z]+|[a-zA-Z])",
        r"k_3\s*=\s*(\\[a-zA-Z]+|[a-zA-Z])\s*-\s*1\s*-\s*\\log",
    ):
        for m in re.finditer(pattern, flat):
            if m.group(1) != "\\kappa":
                found.append(("kl-estimator-argument", flat))
    for m in re.finditer(r"\\(?:mathrm|operatorname|text)\{clip\}\s*(?:\\big|\\Big|\\left)?\(\s*(\\[a-zA-Z]+|[a-zA-Z])", flat):
        if m.group(1) not in ("\\rho", "s"):
            found.append(("clip-argument", flat))
    return found


def chapter_texts(path: Path) -> list[tuple[str, str]]:
    """(where, markdown) for each markdown cell of a notebook, or the whole .md file."""
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        return [(f"cell {i} (id {c.get('id')})", c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]
    return [("file", path.read_text(encoding="utf-8"))]


def chapter_violations(path: Path) -> list[str]:
    out = []
    for where, text in chapter_texts(path):
        for span in math_spans(text):
            for rule, excerpt in violations_in_math(span):
                out.append(f"{path.name}, {where}: [{rule}] ${excerpt[:160]}$")
    return out


CHAPTERS = sorted(BOOK.glob("*.ipynb")) + sorted(BOOK.glob("*.md"))


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_follows_the_notation_table(path, request):
    if path.name in PENDING:
        request.applymarker(pytest.mark.xfail(reason="chapter owned by another branch; see PENDING", strict=False))
    bad = chapter_violations(path)
    assert not bad, "reserved symbols used for something else:\n" + "\n".join(bad)


def test_the_intro_has_the_notation_table():
    text = "\n".join(t for _, t in chapter_texts(BOOK / "intro.ipynb"))
    assert "(notation)=" in text
    for symbol in ("\\rho", "s_i", "\\kappa", "\\epsilon", "\\xi", "r_i"):
        assert symbol in text, symbol


BAD = [
    ("varepsilon", r"A_i = \frac{r_i - \bar r}{s + \varepsilon}"),
    ("clip-as-std-constant", r"A_i = \frac{r_i - \bar r}{s + \epsilon}"),
    ("clip-as-std-constant", r"(\sigma_r + \epsilon)"),
    ("clip-as-std-constant", r"\epsilon = 10^{-8}"),
    ("std-constant-as-clip", r"\mathrm{clip}(\rho, 1 - \xi, 1 + \xi)"),
    ("ratio-definition", r"\rho = \pi_\text{ref}(o)/\pi_\theta(o)"),
    ("ratio-definition", r"r = \pi_\text{ref}/\pi_\theta"),
    ("ratio-definition", r"r_t(\theta) = \frac{\pi_\theta(o_t \mid q, o_{<t})}{\pi_\text{old}(o_t \mid q, o_{<t})}"),
    ("ratio-definition", r"\kappa_{i,t} = \frac{\pi_\theta(o_{i,t})}{\pi_{\theta_\text{old}}(o_{i,t})}"),
    ("reserved-redefined", r"\rho = \frac{\sigma_c^2}{\sigma_c^2 + \sigma_e^2}"),
    ("kl-estimator-argument", r"k_1 = -\log\rho, \qquad k_3 = \rho - 1 - \log\rho"),
    ("kl-estimator-argument", r"k_2 = \tfrac{1}{2}(\log r)^2"),
    ("clip-argument", r"\min(r_t A_t, \mathrm{clip}(r_t, 1-\epsilon, 1+\epsilon) A_t)"),
    ("clip-argument", r"\operatorname{clip}(\kappa, 0.8, 1.2)"),
]
GOOD = [
    r"A_i = \frac{r_i - \bar r}{s + \xi}",
    r"\min\big(\rho_{i,t} A_i,\ \operatorname{clip}(\rho_{i,t}, 1-\epsilon, 1+\epsilon) A_i\big)",
    r"[1-\epsilon_\text{low}, 1+\epsilon_\text{high}]",
    r"\rho_{i,t} = \frac{\pi_\theta(o_{i,t} \mid q, o_{i,<t})}{\pi_{\theta_\text{old}}(o_{i,t} \mid q, o_{i,<t})}",
    r"\rho_\theta(o) = \frac{\pi_\theta(o \mid q)}{\pi_\text{old}(o \mid q)}",
    r"\kappa = \pi_\text{ref}(o)/\pi_\theta(o)",
    r"k_1 = -\log\kappa, \qquad k_2 = \tfrac{1}{2}(\log\kappa)^2, \qquad k_3 = \kappa - 1 - \log\kappa",
    r"\mathrm{clip}(s_i, 1-\epsilon, 1+\epsilon)",
    r"w = \pi_\text{old} / \pi_\text{sampler}",
    r"\xi = 10^{-8}",
    r"\phi = \frac{\sigma_c^2}{\sigma_c^2 + \sigma_e^2}",
    r"\rho = 1",
]


@pytest.mark.parametrize("rule, math", BAD)
def test_each_rule_catches_its_collision(rule, math):
    assert rule in {r for r, _ in violations_in_math(math)}


@pytest.mark.parametrize("math", GOOD)
def test_the_table_itself_passes(math):
    assert violations_in_math(math) == []


def test_math_spans_skip_code():
    spans = math_spans("a `$x$` b $\\rho$ c\n$$\nk_3\n$$\n```python\n$y$\n```\n```{glossary}\nx\n  $k_1$\n```")
    assert spans == ["\nk_3\n", "\\rho", "k_1"]
