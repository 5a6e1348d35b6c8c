r"""One notation for every notebook: the symbols of ``docs/notation.md`` and the check that a notebook's LaTeX uses
no other.

A *symbol* is what a reader must look up: a Latin or Greek letter, ``\ell``, or a letter in a math alphabet
(``\mathcal{L}``, ``\mathbb{R}``, ``\mathbf{W}``), wherever it stands — in a subscript too. Decorations do not
make a new symbol (``\hat y`` and ``y'`` are forms of ``y``). *Names* are not symbols: anything inside
``\text``, ``\mathrm`` or ``\operatorname`` (``\mathrm{KL}``, the role labels ``z_\mathrm{s}``, ``F^\mathrm{T}``)
and a sub- or superscript of two or more letters (``\mathcal{L}_{OFA}``, ``z_{cls}``) — the table lists the names
too, but a name can repeat a letter without clashing with it. The table (course documents, ``docs/notation.md``)
has one row per symbol; :func:`undefined_symbols` is what ``tests/test_notation.py`` runs on every notebook.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

GREEK = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi rho sigma tau "
    "upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi Omega ell".split())
"""The commands that are symbols (Greek letters and ``\\ell``); every other command is an operator or spacing."""

MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$", re.S)
"""Inline (``$…$``) and display (``$$…$$``) math in Markdown."""
_NAME = re.compile(r"\\(?:text|mathrm|operatorname|textrm|texttt|textbf|textit|mbox)\s*\{[^{}]*\}")
_LABEL = re.compile(r"[_^]\{\s*[A-Za-z][A-Za-z\- ]*[A-Za-z]\s*\}")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\{[^}]*\}")
_TOKEN = re.compile(r"\\(mathcal|mathbb|mathbf|boldsymbol)\s*\{?\s*([A-Za-z0-9])\s*\}?|\\([A-Za-z]+)|([A-Za-z])")


def latex_symbols(tex: str) -> list[str]:
    r"""The symbols of one LaTeX math string, in order, with repeats: ``"\mathcal{L}_{KD} = T^2\,\mathrm{KL}(q\|p)"``
    gives ``["\mathcal{L}", "T", "q", "p"]``."""
    tex = _ENVIRONMENT.sub(" ", _LABEL.sub(" ", _NAME.sub(" ", tex)))
    symbols = []
    for match in _TOKEN.finditer(tex):
        alphabet, letter, command, plain = match.groups()
        if alphabet:
            symbols.append(f"\\{alphabet}{{{letter}}}")
        elif command:
            if command in GREEK:
                symbols.append(f"\\{command}")
        else:
            symbols.append(plain)
    return symbols


def math_segments(markdown: str) -> list[str]:
    """The LaTeX of every ``$…$`` and ``$$…$$`` in a Markdown text (code spans excluded)."""
    text = re.sub(r"`[^`]*`", " ", markdown)
    return [display or inline for display, inline in MATH.findall(text) if display or inline]


def read_table(path: Path) -> tuple[dict[str, str], set[str]]:
    """``({symbol: meaning}, paper_symbols)`` from the notation document's symbol table: the table whose header
    starts ``| symbol | meaning |``; its first column defines the symbols (every symbol of that cell, one row each),
    its last column, "the paper's symbol", names the letters a notebook may quote as a paper's. A symbol defined
    twice is a ``ValueError``: one symbol, one meaning."""
    lines = Path(path).read_text().splitlines()
    start = next((k for k, line in enumerate(lines) if line.replace(" ", "").startswith("|symbol|meaning|")), None)
    if start is None:
        raise ValueError(f"{path} has no table headed '| symbol | meaning | ...'")
    meanings: dict[str, str] = {}
    paper: set[str] = set()
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for symbol in dict.fromkeys(s for tex in math_segments(cells[0]) for s in latex_symbols(tex)):
            if symbol in meanings:
                raise ValueError(f"{symbol} is defined twice in {path}: {meanings[symbol]!r} and {cells[1]!r}")
            meanings[symbol] = cells[1]
        paper.update(s for tex in math_segments(cells[-1]) for s in latex_symbols(tex))
    return meanings, paper


def notebook_symbols(path: Path) -> dict[str, list[str]]:
    """``{symbol: [where, ...]}`` for the LaTeX of a notebook's Markdown cells; ``where`` is ``"cell N: <math>"``."""
    cells = json.loads(Path(path).read_text())["cells"]
    found: dict[str, list[str]] = {}
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        for tex in math_segments("".join(cell["source"])):
            for symbol in dict.fromkeys(latex_symbols(tex)):
                found.setdefault(symbol, []).append(f"cell {index}: ${tex.strip()[:60]}$")
    return found


def undefined_symbols(notebooks: Iterable[Path], table: Path) -> dict[str, list[str]]:
    """``{symbol: [notebook, cell, math]}`` for every symbol the notebooks' LaTeX uses that the table neither
    defines nor lists as a paper's symbol; empty when the notebooks follow the table."""
    meanings, paper = read_table(table)
    missing: dict[str, list[str]] = {}
    for path in notebooks:
        for symbol, places in notebook_symbols(path).items():
            if symbol not in meanings and symbol not in paper:
                missing.setdefault(symbol, []).extend(f"{Path(path).name} {place}" for place in places)
    return missing
