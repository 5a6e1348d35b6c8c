import pytest

from kdlab.__main__ import (RUN_CELL_TIMEOUT_S, build_parser, execute_notebook, main, notebook_paths, parse_parameters,
                            results_markdown)


def test_env_prints_the_report(capsys):
    assert main(["env"]) == 0
    assert "profile" in capsys.readouterr().out


def test_teachers_list_and_verify(capsys):
    assert main(["teachers", "list"]) == 0
    listing = capsys.readouterr().out
    assert "shapes_cnn" in listing and "not built" not in listing  # every shipped teacher shows its score
    assert "test mIoU" in listing and "test AbsRel" in listing and "test acc" in listing
    assert "test verification acc" in listing
    assert main(["teachers", "verify"]) == 0
    assert "ok" in capsys.readouterr().out


def test_results_prints_each_reference_runs_headline_tables(capsys):
    assert main(["results", "02_cskd", "05_disdepth.ipynb"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("<!-- python -m kdlab results ") == 2 and printed.count("<!-- end of generated results -->") == 2
    assert "| run | seeds | test accuracy | Δ vs no KD (paired) | 95 % interval | wins | verdict |" in printed
    assert "test AbsRel" in printed and results_markdown("02_cskd") in printed
    with pytest.raises(SystemExit, match="no reference run declared for '99_nothing'"):
        main(["results", "99_nothing"])


def test_parameters_parse_as_literals():
    assert parse_parameters(["T=2", "NAME=abc", "XS=[1, 2]"]) == {"T": 2, "NAME": "abc", "XS": [1, 2]}
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        parse_parameters(["oops"])


def test_notebook_names_resolve():
    assert notebook_paths(["00_primer"], False)[0].name == "00_primer.ipynb"
    assert any(p.name == "00_primer.ipynb" for p in notebook_paths([], True))
    with pytest.raises(SystemExit, match="available"):
        notebook_paths(["99_nothing"], False)
    with pytest.raises(SystemExit, match="--all"):
        notebook_paths([], False)


def test_bad_commands_exit_with_usage():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["teachers", "burn"])
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_cell_timeout_defaults_and_rejects_negative_seconds():
    parser = build_parser()
    assert parser.parse_args(["run", "00_primer"]).cell_timeout == RUN_CELL_TIMEOUT_S
    assert parser.parse_args(["run", "00_primer", "--cell-timeout", "0"]).cell_timeout == 0
    assert parser.parse_args(["reference", "00_primer"]).cell_timeout == 0  # reference cells train for long
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "00_primer", "--cell-timeout", "-5"])


def test_a_stalled_cell_fails_the_run_instead_of_hanging_it(tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(60)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "stall.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(Exception, match="(?i)timed? ?out"):
        execute_notebook(path, tmp_path / "out", {}, html=False, cell_timeout=2)


def test_docs_renders_the_course_into_the_book(tmp_path):
    from kdlab.book import render_doc

    assert main(["docs", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "course.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>kdlab — the course</title>" in page
    assert page.count("<h2>Lesson ") == 6 and "<table>" in page and "http" not in page.split("<body>")[0]
    rubric = (tmp_path / "rubric.html").read_text()
    assert rubric.count("<table>") == 6 and "<h2>05 DisDepth</h2>" in rubric
    notation = (tmp_path / "notation.html").read_text()
    assert "<title>kdlab — notation</title>" in notation and notation.count("<tr>") > 60
    with pytest.raises(FileNotFoundError, match="no document"):
        render_doc(tmp_path / "missing.md", tmp_path)


def test_handout_drops_solutions_and_the_recorded_results_but_keeps_the_rest(tmp_path):
    import json

    from kdlab.__main__ import NOTEBOOK_DIR
    from kdlab.book import handout

    original = json.loads((NOTEBOOK_DIR / "05_disdepth.ipynb").read_text(encoding="utf-8"))
    copy_ = handout(original)
    texts = ["".join(c["source"]) for c in copy_["cells"]]
    assert not any(t.strip().startswith("*Solution") for t in texts)
    assert not any("by_hand" in t for t in texts), "no solution code left"
    assert not any("record_results(" in t or "## 11 · Recorded results" in t for t in texts)
    assert any("**Further reading.**" in t for t in texts), "the reading list before the tests' section stays"
    assert any("check_silog_grad(my_silog_grad)" in t for t in texts), "the exercises and their checks stay"
    assert any("parameters" in c["metadata"].get("tags", []) for c in copy_["cells"])
    assert len(original["cells"]) > len(copy_["cells"]) and original == json.loads(
        (NOTEBOOK_DIR / "05_disdepth.ipynb").read_text(encoding="utf-8")), "the notebook itself is untouched"
    assert main(["handout", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9]*.ipynb"))
    broken = {"cells": [{"cell_type": "markdown", "source": ["*Solution 1*"], "metadata": {}}], "metadata": {}}
    with pytest.raises(ValueError, match="without a code cell"):
        handout(broken)


def test_slide_types_follow_the_headings_and_skip_parameters_and_the_tests_section():
    from kdlab.book import slide_types

    def cell(kind, text, **metadata):
        return {"cell_type": kind, "source": [text], "metadata": metadata}

    notebook = {"cells": [cell("markdown", "# 05 · DisDepth"), cell("code", "PROFILE = 'auto'", tags=["parameters"]),
                          cell("markdown", "## 3 · The idea"), cell("code", "x = 1"), cell("markdown", "### 3.1 Loss"),
                          cell("markdown", "plain prose", slideshow={"slide_type": "fragment"}),
                          cell("markdown", "**Further reading.** ...\n\n## 11 · Recorded results (read by the tests)"),
                          cell("code", "record_results(...)")], "metadata": {}}
    kinds = [c["metadata"]["slideshow"]["slide_type"] for c in slide_types(notebook)["cells"]]
    assert kinds == ["slide", "skip", "slide", "-", "subslide", "fragment", "skip", "skip"]
    assert "slideshow" not in notebook["cells"][0]["metadata"], "the notebook itself is untouched"


def test_decks_load_every_script_and_style_from_the_local_assets(tmp_path):
    from kdlab.__main__ import NOTEBOOK_DIR
    from kdlab.book import SLIDE_ASSETS, remote_assets, write_deck

    page = write_deck(NOTEBOOK_DIR / "05_disdepth.ipynb", tmp_path).read_text(encoding="utf-8")
    assert remote_assets(page) == [] and page.count("<section") > 10
    for name, path in SLIDE_ASSETS.items():
        assert f"assets/{path}" in page, name
    assert remote_assets('<script src="https://cdn.example/x.js"></script><link href="//cdn.example/y.css">'
                         '<a href="https://arxiv.org/abs/1">a paper</a>') == ["https://cdn.example/x.js",
                                                                             "//cdn.example/y.css"]
    assert main(["slides", "--out", str(tmp_path)]) == 1, "without the npm assets it says so and stops"


def test_solutions_write_the_lecturers_answer_key_with_every_solution(tmp_path):
    import json

    from kdlab.__main__ import NOTEBOOK_DIR
    from kdlab.book import answer_key

    assert main(["solutions", "--out", str(tmp_path)]) == 0
    for path in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        solutions = sum("".join(c["source"]).strip().startswith("*Solution ") for c in cells)
        key = (tmp_path / f"{path.stem}.md").read_text(encoding="utf-8")
        assert key.startswith(f"# {path.stem} — answer key") and key.count("*Solution ") >= solutions >= 4
        assert "Recorded results" not in key and key.count("```python") >= solutions
        assert (tmp_path / f"{path.stem}.html").read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="no '## ... exercises' heading"):
        answer_key({"cells": [{"cell_type": "markdown", "source": "## 1 · Setup"}]}, "bad")
    with pytest.raises(ValueError, match="no \\*Solution N\\* cells"):
        answer_key({"cells": [{"cell_type": "markdown", "source": "## 9 · Exercises\n1. derive it"}]}, "bad")
