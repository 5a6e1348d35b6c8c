"""Result tables for the notebooks: :func:`results_table` builds a small table object that renders as HTML in
Jupyter and as a Markdown table in text, with :func:`format_mean_std` for "mean ± std over seeds" cells.

Tables are text, not figures: importing this module loads neither matplotlib nor seaborn nor ipywidgets (a test
checks it), so code that only reports numbers (:mod:`kdlab.results`, :mod:`kdlab.experiments`) stays light.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Rows = Sequence[Mapping[str, Any]]


def _floats(values: Any) -> np.ndarray:
    """A tensor (any device, with or without grad), array, list or single number as a flat float64 array."""
    if hasattr(values, "detach"):
        values = values.detach().cpu()
    return np.asarray(values, dtype=np.float64).ravel()


def format_mean_std(values: Any, pct: bool = True, digits: int = 1) -> str:
    """``"81.2 ± 0.4%"``: mean ± sample standard deviation (ddof = 1) of ``values``; one value prints alone.

    ``pct`` multiplies by 100 and appends ``%`` (for fractions such as accuracy).
    """
    array = _floats(values) * (100.0 if pct else 1.0)
    if array.size == 0:
        raise ValueError("format_mean_std needs at least one value")
    suffix = "%" if pct else ""
    if array.size == 1:
        return f"{array[0]:.{digits}f}{suffix}"
    return f"{array.mean():.{digits}f} ± {array.std(ddof=1):.{digits}f}{suffix}"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ResultsTable:
    """A small table that shows as HTML in Jupyter and as a Markdown table with ``str()``."""

    def __init__(self, rows: Rows, columns: Sequence[str], title: str | None = None) -> None:
        self.columns = list(columns)
        self.cells = [[_cell(row.get(column)) for column in self.columns] for row in rows]
        self.title = title

    def __str__(self) -> str:
        lines = [f"**{self.title}**", ""] if self.title else []
        lines += ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.cells]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.cells)
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def results_table(rows: Rows, columns: Sequence[str] | None = None, title: str | None = None) -> ResultsTable:
    """A table of ``rows`` (dicts) with the given ``columns`` (default: every key, first-seen order).

    Cells are shown as given (strings such as :func:`format_mean_std`'s output), floats to 4 significant
    digits, missing entries as "–".
    """
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))
    if not columns:
        raise ValueError("results_table needs at least one column")
    return ResultsTable(rows, columns, title)
