"""What the book's HTML (``make book``, ``make slides``) adds to nbconvert's export: alt text on every figure.

nbconvert writes a figure as ``<img src="data:image/png;base64,...">`` with no ``alt``, so a screen reader says
nothing useful. Every figure in the notebooks comes after the prose that says what to look at in it (the caption
convention of the notebooks); :func:`figure_captions` reads that prose for each image output, in order, and
:func:`with_alt_text` writes it into the page's ``<img>`` tags.
"""
from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

ALT_CHARS = 300
"""The longest alt text: the caption's first sentences up to this many characters."""
IMAGE_TYPES = ("image/png", "image/jpeg")
"""The outputs nbconvert writes as ``<img>`` (the notebooks' figures are PNG)."""
_IMG = re.compile(r"<img\b[^>]*\bsrc=\"data:image/[^>]*>")
_ALT = re.compile(r"\salt=\"[^\"]*\"")


def plain_text(markdown: str) -> str:
    """A Markdown cell as one line of plain text: headings, emphasis, code ticks, links' targets and ``$`` of math
    dropped (the math's LaTeX stays, readable aloud), whitespace collapsed."""
    text = re.sub(r"^#+\s*", "", markdown, flags=re.M)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_`$]+", "", text)
    return " ".join(text.split())


def shorten(text: str, limit: int = ALT_CHARS) -> str:
    """``text`` cut at the last sentence end within ``limit`` characters (or at a word, with "…")."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind(": "), cut.rfind("; "))
    return cut[: end + 1] if end > limit // 3 else cut.rsplit(" ", 1)[0] + " …"


def figure_captions(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """One caption per image output of the notebook's code cells, in page order: the plain text of the nearest
    Markdown cell above (shortened), or "A figure." where a figure has no prose above it."""
    captions, caption = [], "A figure."
    for cell in cells:
        if cell["cell_type"] == "markdown":
            text = plain_text("".join(cell["source"]))
            caption = shorten(text) if text else caption
        for output in cell.get("outputs", []):
            captions.extend(caption for kind in IMAGE_TYPES if kind in output.get("data", {}))
    return captions


def with_alt_text(page: str, captions: Sequence[str]) -> str:
    """``page`` with ``alt="<caption>"`` on its inline images (``<img ... src="data:image/...">``, replacing
    nbconvert's "No description has been provided for this image"), the k-th image getting the k-th caption; a
    ``ValueError`` when the counts differ (the page is not this notebook's)."""
    images = _IMG.findall(page)
    if len(images) != len(captions):
        raise ValueError(f"the page has {len(images)} inline images but the notebook {len(captions)} figures")
    alts = iter(captions)

    def described(match: re.Match) -> str:
        tag = _ALT.sub("", match.group(0))
        return f'<img alt="{html.escape(next(alts), quote=True)}"{tag[len("<img"):]}'

    return _IMG.sub(described, page)
