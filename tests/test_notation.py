"""One notation: every notebook's LaTeX uses only the symbols of docs/notation.md, each defined once."""
from pathlib import Path

import pytest

from kdlab.notation import latex_symbols, math_segments, notebook_symbols, read_table, undefined_symbols

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "notation.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_every_notebook_uses_only_the_tables_symbols():
    assert len(NOTEBOOKS) == 6
    missing = undefined_symbols(NOTEBOOKS, TABLE)
    assert not missing, "symbols outside docs/notation.md:\n" + "\n".join(
        f"  {symbol}: {places[:3]}" for symbol, places in missing.items())


def test_the_table_defines_each_symbol_once_and_every_notebook_links_to_it():
    meanings, paper = read_table(TABLE)
    assert {"T", "\\alpha", "\\gamma", "\\lambda", "\\omega", "\\kappa", "p", "q", "z"} <= set(meanings)
    assert "(02)" in meanings["\\omega"] and "temperature" in meanings["T"]
    assert "\\varepsilon" in paper and "\\varepsilon" not in meanings
    for path in NOTEBOOKS:
        assert "docs/notation.md" in path.read_text(), f"{path.name} does not link to the notation table"


def test_symbols_names_and_decorations():
    assert latex_symbols(r"\mathcal{L}_{KD} = T^2\,\mathrm{KL}(q\,\|\,p)") == ["\\mathcal{L}", "T", "q", "p"]
    # role labels and multi-letter subscripts are names; decorations keep the symbol; bold W is its own symbol
    assert latex_symbols(r"z_\mathrm{s} - \hat z_{cls} + \tilde F^\mathrm{T}_l") == ["z", "z", "F", "l"]
    assert latex_symbols(r"\mathbf{W}_\mathrm{q} \ne W,\ \ell_k,\ \mathbb{1}[k=j]") == [
        "\\mathbf{W}", "W", "\\ell", "k", "\\mathbb{1}", "k", "j"]
    assert latex_symbols(r"\begin{cases} x \end{cases}\ \sqrt{\log x}") == ["x", "x"]
    assert math_segments("a $x$ and `$y$` and $$\\alpha$$") == ["x", "\\alpha"]


def test_a_symbol_outside_the_table_is_reported_where_it_stands(tmp_path):
    import json

    notebook = tmp_path / "nb.ipynb"
    cells = [{"cell_type": "markdown", "source": ["Let $\\Gamma = \\varkappa + T$."]},
             {"cell_type": "code", "source": ["x = '$Q$'"]}]
    notebook.write_text(json.dumps({"cells": cells}))
    where = "cell 0: $\\Gamma = \\varkappa + T$"
    assert notebook_symbols(notebook) == {"\\Gamma": [where], "T": [where]}
    assert undefined_symbols([notebook], TABLE) == {"\\Gamma": [f"nb.ipynb {where}"]}


def test_a_table_that_defines_a_symbol_twice_or_is_missing_is_refused(tmp_path):
    twice = tmp_path / "twice.md"
    twice.write_text("| symbol | meaning | paper |\n|---|---|---|\n| $T$ | temperature | |\n| $T$ | teacher | |\n")
    with pytest.raises(ValueError, match="defined twice"):
        read_table(twice)
    none = tmp_path / "none.md"
    none.write_text("# no table here\n")
    with pytest.raises(ValueError, match="no table"):
        read_table(none)
