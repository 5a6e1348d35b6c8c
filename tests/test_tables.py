"""kdlab.tables: result tables as Markdown and HTML, "mean ± std" cells, and no plotting library on import."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from kdlab.tables import ResultsTable, format_mean_std, results_table


def test_importing_tables_loads_no_plotting_or_widget_library():
    code = ("import kdlab.tables, sys; "
            "loaded = [m for m in ('matplotlib', 'seaborn', 'ipywidgets') if m in sys.modules]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", "import kdlab.tables, sys; assert 'matplotlib' not in sys.modules"],
                   check=True)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_format_mean_std():
    assert format_mean_std([0.81, 0.83]) == "82.0 ± 1.4%"  # sample std (ddof = 1)
    assert format_mean_std([0.5]) == "50.0%"
    assert format_mean_std(0.5, pct=False) == "0.5"
    assert format_mean_std(torch.tensor([1.0, 2.0, 3.0]), pct=False, digits=2) == "2.00 ± 1.00"
    with pytest.raises(ValueError, match="at least one"):
        format_mean_std([])


def test_results_table_text_and_html():
    rows = [
        {"method": "KD", "acc": format_mean_std([0.81, 0.83]), "loss": 0.123456},
        {"method": "<b>OFA</b>", "acc": "85.0%"},
    ]
    table = results_table(rows, ["method", "acc", "loss"], title="CIFAR")
    assert isinstance(table, ResultsTable)
    text = str(table).splitlines()
    assert text[:2] == ["**CIFAR**", ""]
    assert text[2:5] == ["| method | acc | loss |", "|---|---|---|", "| KD | 82.0 ± 1.4% | 0.1235 |"]
    assert text[5] == "| <b>OFA</b> | 85.0% | – |"
    assert repr(table) == str(table)
    page = table._repr_html_()
    assert page.startswith("<table><caption>CIFAR</caption>")
    assert "&lt;b&gt;OFA&lt;/b&gt;" in page and "<th>loss</th>" in page
    assert str(results_table(rows)).splitlines()[0] == "| method | acc | loss |"  # default columns
    with pytest.raises(ValueError, match="column"):
        results_table([])
