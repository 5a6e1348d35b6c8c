"""The course's built artefacts around the notebooks: the course documents as HTML (``make book``), the students'
handouts and the lecturer's answer keys (``make handout``, ``make solutions``), offline reveal.js decks
(``make slides``), and alt text on every figure of the book's pages and decks.

Alt text: nbconvert writes a figure as ``<img src="data:image/png;base64,...">`` with no useful ``alt``, so a screen
reader says nothing useful. Every figure in the notebooks comes after the prose that says what to look at in it (the
caption convention of the notebooks); :func:`figure_captions` reads that prose for each image output, in order, and
:func:`with_alt_text` writes it into the page's ``<img>`` tags.
"""
from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
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


COURSE_DOCS = ("course.md", "notation.md", "rubric.md")
"""The course documents ``python -m kdlab docs`` renders into the book (``docs/``)."""


def render_doc(path: Path, out_dir: Path) -> Path:
    """``docs/<name>.md`` as a standalone ``<out_dir>/<name>.html`` (Markdown tables included; no script, no CDN)."""
    import mistune

    if not path.is_file():
        raise FileNotFoundError(f"no document {path}")
    body = mistune.create_markdown(plugins=["table"])(path.read_text())
    lines = path.read_text().splitlines()
    title = next((line.lstrip("# ").strip() for line in lines if line.startswith("# ")), path.stem)
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{max-width:60rem;margin:2rem auto;font-family:sans-serif;line-height:1.45}"
            "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.25rem .5rem;vertical-align:top}"
            f"</style></head><body>\n{body}</body></html>\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{path.stem}.html"
    output.write_text(page)
    return output


def handout(notebook: dict) -> dict:
    """A student's copy of a notebook (a copy of its JSON): without the solutions (each "*Solution N*" heading and
    the code cell under it) and without the section the tests read ("Recorded results", which records what the
    solutions computed); every other cell, the parameters tag and the exercises' check cells stay."""
    cells, kept, skip_next = copy.deepcopy(notebook["cells"]), [], False
    for cell in cells:
        text = "".join(cell["source"])
        if skip_next and cell["cell_type"] == "code":
            skip_next = False
            continue
        if cell["cell_type"] == "markdown" and re.match(r"\*Solution \d+\*", text.strip()):
            skip_next = True
            continue
        heading = re.search(r"^## \d+ · Recorded results", text, flags=re.M)
        if heading:
            if text[:heading.start()].strip():
                cell["source"] = text[:heading.start()].rstrip("\n").splitlines(keepends=True)
                kept.append(cell)
            break
        kept.append(cell)
    if skip_next:
        raise ValueError("a *Solution* heading without a code cell under it")
    return {**notebook, "cells": kept}


def answer_key(notebook: dict, title: str) -> str:
    """The lecturer's answer key of a notebook as Markdown: its exercises section (from the first heading that names
    exercises up to the tests' "Recorded results"), Markdown cells as they are, every code cell — the solutions under
    their "*Solution N*" headings and the check cells — as a fenced Python block. A notebook without an exercises
    heading or without a solution is a ``ValueError``."""
    cells = notebook["cells"]
    start = next((k for k, cell in enumerate(cells) if cell["cell_type"] == "markdown"
                  and re.search(r"^## .*[Ee]xercises", "".join(cell["source"]), flags=re.M)), None)
    if start is None:
        raise ValueError(f"{title}: no '## ... exercises' heading")
    parts = [f"# {title} — answer key\n"]
    for k, cell in enumerate(cells[:start]):  # an exercise set inside a section: its solution and the cells around
        if cell["cell_type"] == "markdown" and re.match(r"\*Solution \d+\*", "".join(cell["source"]).strip()):
            parts += ["*(from the section above it in the notebook)* " + "".join(cell["source"]).strip(),
                      f"```python\n{''.join(cells[k + 1]['source']).strip()}\n```"]
    for cell in cells[start:]:
        text = "".join(cell["source"])
        heading = re.search(r"^## \d+ · Recorded results", text, flags=re.M)
        text = text[:heading.start()] if heading else text
        parts.append(text.strip() if cell["cell_type"] == "markdown" else f"```python\n{text.strip()}\n```")
        if heading:
            break
    if not any(re.match(r"\*Solution \d+\*", part) for part in parts):
        raise ValueError(f"{title}: no *Solution N* cells")
    return "\n\n".join(part for part in parts if part) + "\n"


SLIDE_ASSETS = {"reveal": "node_modules/reveal.js", "require": "node_modules/requirejs/require.js",
                "mathjax": "node_modules/mathjax/MathJax.js", "jquery": "node_modules/jquery/dist/jquery.min.js"}
"""Where ``make slides`` installs the decks' JavaScript (npm: reveal.js 4.0.2, nbconvert's version; requirejs;
MathJax 2.7.7, which nbconvert's template configures; jQuery 2.2.4, the 2.x nearest nbconvert's 2.0.3, which npm
does not hold), relative to the assets folder beside the decks."""


def slide_types(notebook: dict) -> dict:
    """A copy of a notebook with reveal.js slide types set from its structure: a cell that opens with a ``##``
    heading starts a slide, ``###`` a sub-slide; the parameters cell and the tests' "Recorded results" section are
    skipped; everything else continues the current slide. Cells that already carry a slide type keep it."""
    notebook, skipping = copy.deepcopy(notebook), False
    for cell in notebook["cells"]:
        text = "".join(cell["source"]).lstrip()
        skipping = skipping or bool(re.search(r"^## \d+ · Recorded results", text, flags=re.M))
        kind = ("skip" if skipping or "parameters" in cell["metadata"].get("tags", []) else
                "slide" if text.startswith("## ") or text.startswith("# ") else
                "subslide" if text.startswith("### ") else "-")
        cell["metadata"].setdefault("slideshow", {"slide_type": kind})
    return notebook


def write_deck(executed: Path, out_dir: Path, assets: str = "assets") -> Path:
    """An executed notebook as ``<out_dir>/<name>.slides.html``, a reveal.js deck whose scripts and styles all come
    from ``<out_dir>/<assets>`` (:data:`SLIDE_ASSETS`), never from a CDN."""
    from nbconvert import SlidesExporter
    from nbformat import reads


    exporter = SlidesExporter(reveal_url_prefix=f"{assets}/{SLIDE_ASSETS['reveal']}",
                              require_js_url=f"{assets}/{SLIDE_ASSETS['require']}",
                              jquery_url=f"{assets}/{SLIDE_ASSETS['jquery']}",
                              mathjax_url=f"{assets}/{SLIDE_ASSETS['mathjax']}?config=TeX-AMS_CHTML-full,Safe")
    notebook = slide_types(json.loads(executed.read_text(encoding="utf-8")))
    body, _ = exporter.from_notebook_node(reads(json.dumps(notebook), as_version=4))
    output = out_dir / f"{executed.stem}.slides.html"
    shown = [cell for cell in notebook["cells"] if cell["metadata"]["slideshow"]["slide_type"] != "skip"]
    output.write_text(with_alt_text(body, figure_captions(shown)), encoding="utf-8")
    return output


def remote_assets(page: str) -> list[str]:
    """The scripts and style sheets a page loads from the network (``<script src>`` / ``<link href>`` with a
    scheme): what an offline deck must not have. Links the reader may follow (``<a href>``) do not count."""
    tags = re.findall(r"<(?:script|link)\b[^>]*>", page)
    return [url for tag in tags for url in re.findall(r"(?:src|href)=[\"']((?:https?:)?//[^\"']+)", tag)]
