"""``python -m kdlab``: run notebooks headless, build/verify teachers, benchmark, show the environment.

    python -m kdlab env
    python -m kdlab teachers list | verify | build [KEY ...]
    python -m kdlab run 00_primer [--profile cpu] [--out build] [-p TEMPERATURE=2] [--cell-timeout 1800]
    python -m kdlab run --all
    python -m kdlab reference 00_primer                    # declared long run -> data/results/00_primer.json
    python -m kdlab results [00_primer ...]                # the shipped reference runs' headline tables (Markdown)
    python -m kdlab bench models | data | ofa [--student vit --teacher cnn_small]
    python -m kdlab bench swtat [--sizes 16 32 64 --window 8 --repeats 3]
    python -m kdlab bench train | grid [--n-train 512 --epochs 1 --seeds 3]
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from .book import (COURSE_DOCS, SLIDE_ASSETS, answer_key, figure_captions, handout, remote_assets, render_doc,
                   with_alt_text, write_deck)
from .config import ROOT_DIR, env_report

NOTEBOOK_DIR = ROOT_DIR / "notebooks"


def notebook_paths(names: list[str], run_all: bool) -> list[Path]:
    """Resolve notebook names (``00_primer``, ``00_primer.ipynb`` or a path) to existing files."""
    if run_all:
        return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    paths = []
    for name in names:
        path = Path(name)
        if not path.exists():
            path = NOTEBOOK_DIR / (name if name.endswith(".ipynb") else f"{name}.ipynb")
        if not path.exists():
            available = ", ".join(p.stem for p in sorted(NOTEBOOK_DIR.glob("*.ipynb")))
            raise SystemExit(f"no notebook {name!r}; available: {available}")
        paths.append(path)
    if not paths:
        raise SystemExit("name at least one notebook, or pass --all")
    return paths


def parse_parameters(pairs: list[str]) -> dict[str, object]:
    """``["T=2", "NAME='x'"]`` -> ``{"T": 2, "NAME": "x"}`` (values parsed as Python literals when possible)."""
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"bad parameter {pair!r}; use NAME=VALUE")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return params


def execute_notebook(path: Path, out_dir: Path, parameters: dict[str, object], html: bool,
                     cell_timeout: float | None = None) -> Path:
    """Run one notebook into ``out_dir`` (:func:`kdlab.runner.execute_notebook`: a stalled cell fails the run,
    naming the cell) and export HTML; return the executed notebook path.

    ``cell_timeout`` (seconds, ``None`` or 0 = no limit) also fails a cell that runs longer.
    """
    from .runner import execute_notebook as run_notebook

    output = run_notebook(path, out_dir / path.name, parameters, cell_timeout=cell_timeout)
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(output))
        captions = figure_captions(json.loads(output.read_text(encoding="utf-8"))["cells"])
        output.with_suffix(".html").write_text(with_alt_text(body, captions), encoding="utf-8")
    return output


def cmd_run(args: argparse.Namespace) -> int:
    parameters = {"PROFILE": args.profile, **parse_parameters(args.parameter)}
    for path in notebook_paths(args.notebooks, args.all):
        start = time.perf_counter()
        print(f"running {path.name} with {parameters} ...", flush=True)
        output = execute_notebook(path, Path(args.out), parameters, html=not args.no_html,
                                  cell_timeout=args.cell_timeout)
        print(f"  done in {time.perf_counter() - start:.0f} s -> {output}", flush=True)
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    """The long run declared in ``kdlab.recipes.REFERENCE``; the notebook saves data/results/<name>.json."""
    from .recipes import REFERENCE

    for path in notebook_paths(args.notebooks, False):
        if path.stem not in REFERENCE:
            raise SystemExit(f"no reference run declared for {path.stem}; add it to kdlab.recipes.REFERENCE")
        parameters = {key.upper(): value for key, value in REFERENCE[path.stem].items()}
        parameters["SAVE_REFERENCE"] = True
        start = time.perf_counter()
        print(f"reference run of {path.name} with {parameters} ...", flush=True)
        execute_notebook(path, Path(args.out), parameters, html=True, cell_timeout=args.cell_timeout)
        print(f"{path.name}: reference run done in {time.perf_counter() - start:.0f} s")
    return 0


def results_markdown(notebook: str) -> str:
    """The headline tables of ``notebook``'s shipped reference run as Markdown, each followed by its verdict
    sentences (``kdlab.workbook.HEADLINES``): the README's results tables are this text, pasted."""
    from .recipes import reference_recipe
    from .results import load_reference
    from .workbook import reference_tables

    reference = load_reference(notebook, reference_recipe(notebook))
    if reference is None:
        raise SystemExit(f"no reference results shipped for {notebook}: run `python -m kdlab reference {notebook}`")
    blocks = [reference.stale_warning()] if reference.stale else []
    for table, sentences in reference_tables(reference):
        blocks.append(f"{table}\n\n{sentences}")
    return "\n\n".join(blocks)


def cmd_results(args: argparse.Namespace) -> int:
    from .recipes import REFERENCE

    for name in args.notebooks or list(REFERENCE):
        stem = Path(name).stem
        if stem not in REFERENCE:
            raise SystemExit(f"no reference run declared for {stem!r}; known: {', '.join(REFERENCE)}")
        print(f"<!-- python -m kdlab results {stem} -->\n{results_markdown(stem)}\n<!-- end of generated results -->\n")
    return 0


def cmd_teachers(args: argparse.Namespace) -> int:
    from .teachers import TEACHERS, build_teacher, check_teacher, read_manifest

    keys = args.keys or sorted(TEACHERS)
    if args.action == "list":
        manifest = read_manifest()
        for key in keys:
            entry = manifest.get(key, {})
            metrics = entry.get("metrics", {})
            score = (f"test mIoU {metrics['test_miou']:.1%}" if "test_miou" in metrics
                     else f"test AbsRel {metrics['test_abs_rel']:.3f}" if "test_abs_rel" in metrics
                     else f"test verification acc {metrics['test_verif_acc']:.1%}" if "test_verif_acc" in metrics
                     else f"test acc {metrics['test_acc']:.1%}" if "test_acc" in metrics else None)
            shown = f"{score}, {entry['params'] / 1e6:.2f} M params" if score else "not built"
            print(f"{key:<14} {TEACHERS[key].description:<70} {shown}")
        return 0
    if args.action == "verify":
        problems = {key: check_teacher(key) for key in keys}
        for key, problem in problems.items():
            print(f"{key:<14} {'ok' if problem is None else problem}")
        return 1 if any(problems.values()) else 0
    for key in keys:
        print(f"building {key} ...", flush=True)
        build_teacher(key, device=args.device)
        print(f"  {key}: {read_manifest()[key]['metrics']}", flush=True)
    return 0


def cmd_lab(args: argparse.Namespace) -> NoReturn:
    """Start JupyterLab the safe way (:func:`kdlab.lab.lab_command`) after merging the offline settings overrides;
    the process is replaced by the server (Ctrl-C stops it)."""
    import os

    from .lab import install_overrides, lab_command

    print(f"settings overrides: {install_overrides()}", flush=True)
    if os.environ.pop("MPLBACKEND", None):  # e.g. Agg from a headless shell: Jupyter would then show no figures
        print("MPLBACKEND unset for the lab: Jupyter's inline backend draws the figures", flush=True)
    command = lab_command(args.root_dir, port=args.port, token=args.token, open_browser=not args.no_browser,
                          expose_app=args.expose_app)
    os.execv(command[0], command)


def cmd_train(args: argparse.Namespace) -> int:
    """``python -m kdlab train CONFIG``: check the config (every problem at once), then train it here or on every
    rank of a ``torchrun`` job (:mod:`kdlab.trainer`)."""
    from .trainer import build, check_config, describe, read_config, train

    try:
        config = check_config(read_config(args.config))
        if args.out:
            config["output"]["dir"] = args.out
        if args.dry_run:
            print(describe(config, build(config)))
            return 0
        final = train(config, resume=args.resume, progress=not args.quiet)
    except (ValueError, FileNotFoundError) as error:
        print(f"kdlab train: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if final:
        print(json.dumps(final["test"], indent=2))
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    for name in COURSE_DOCS:
        print(f"rendered {render_doc(ROOT_DIR / 'docs' / name, Path(args.out))}")
    return 0


def every_notebook_into(out: Path) -> Iterator[tuple[Path, dict]]:
    """``(path, notebook JSON)`` of every numbered notebook, after creating the output folder ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for path in notebook_paths([], True):
        yield path, json.loads(path.read_text(encoding="utf-8"))


def cmd_solutions(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for path, notebook in every_notebook_into(out):
        key = answer_key(notebook, path.stem)
        (out / f"{path.stem}.md").write_text(key, encoding="utf-8")
        render_doc(out / f"{path.stem}.md", out)
        print(f"{out / path.stem}.md (.html): {key.count('*Solution ')} solutions")
    return 0


def cmd_handout(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for path, notebook in every_notebook_into(out):
        copy_ = handout(notebook)
        (out / path.name).write_text(json.dumps(copy_, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{out / path.name}: {len(copy_['cells'])} cells, no solutions")
    return 0


def cmd_slides(args: argparse.Namespace) -> int:
    out = Path(args.out)
    missing = [path for path in SLIDE_ASSETS.values() if not (out / "assets" / path).exists()]
    if missing:
        print(f"missing slide assets under {out / 'assets'}: {missing}; `make slides` installs them with npm")
        return 1
    executed_dir = out / "executed"
    for path in notebook_paths(args.notebooks, not args.notebooks):
        execute_notebook(path, executed_dir, {"PROFILE": args.profile}, html=False,
                         cell_timeout=RUN_CELL_TIMEOUT_S)
        deck = write_deck(executed_dir / path.name, out)
        remote = remote_assets(deck.read_text(encoding="utf-8"))
        if remote:
            raise RuntimeError(f"{deck} loads {remote} from the network")
        print(f"{deck}: offline deck")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    runs = {
        "models": lambda: bench.models(args.batch_size or 64, args.seconds),
        "data": lambda: bench.data(args.n),
        "ofa": lambda: bench.ofa(args.student, args.teacher, args.batch_size or 64, args.seconds),
        "swtat": lambda: bench.swtat(tuple(args.sizes), args.channels, args.batch_size or 8, args.window,
                                     args.repeats),
        "train": lambda: bench.train(args.batch_size or 64, args.seconds),
        "grid": lambda: bench.grid(args.n_train, args.epochs, args.seeds),
    }
    if args.what == "train":  # per-step utilisation, then the grid's before / after
        print("Training steps on one thread (teacher memo off):")
        print(format_table(runs["train"]()))
        print("\nAn experiment grid, before (one process, every core, no memo) and after (workers + memo):")
        print(format_table(runs["grid"]()))
        return 0
    print(format_table(runs[args.what]()))
    return 0


def format_table(rows: list[dict[str, object]]) -> str:
    """Rows of equal keys as an aligned text table: a header line, then one line per row."""
    if not rows:
        return ""
    columns = list(rows[0])
    cells = [columns] + [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in cells)


RUN_CELL_TIMEOUT_S = 1800
"""``run``'s default per-cell limit: three times the whole ``cpu`` budget of a notebook, so only a stalled kernel
(seen rarely with widget cells when several kernels share two cores) reaches it."""


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def add_course_commands(sub: argparse._SubParsersAction) -> None:
    """The commands around the notebooks: ``slides``, ``lab``, ``handout``, ``solutions``, ``docs``."""
    slides = sub.add_parser("slides", help="executed reveal.js decks of the notebooks, offline (make slides)")
    slides.add_argument("notebooks", nargs="*", help="notebook names (default: all)")
    slides.add_argument("--out", default="build/slides", help="output folder, with the npm assets in assets/")
    slides.add_argument("--profile", default="smoke", help="profile the decks are executed in (default smoke)")

    lab = sub.add_parser("lab", help="JupyterLab on 127.0.0.1 with a token and the offline settings (make lab)")
    lab.add_argument("--root-dir", default=str(NOTEBOOK_DIR), help="folder the lab serves (default: notebooks/)")
    lab.add_argument("--port", type=int, default=None, help="port (default: JupyterLab's, 8888 or the next free)")
    lab.add_argument("--token", default=None, help="login token (default: a random one, printed in the URL)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("--expose-app", action="store_true", help="window.jupyterapp in the page (browser tests)")

    hand = sub.add_parser("handout", help="students' copies of every notebook, without the solutions")
    hand.add_argument("--out", default="build/handout", help="output folder (default: build/handout)")

    solutions = sub.add_parser("solutions", help="the lecturer's answer key: every notebook's exercises and solutions "
                               "as Markdown and HTML (not in the students' handout)")
    solutions.add_argument("--out", default="build/solutions")

    docs = sub.add_parser("docs", help="render the course documents (docs/course.md, docs/notation.md, "
                          "docs/rubric.md) to HTML")
    docs.add_argument("--out", default="build", help="output folder (default: build)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kdlab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="print versions, device, threads and the resolved profile")

    run = sub.add_parser("run", help="execute notebooks headless with papermill (+ HTML)")
    run.add_argument("notebooks", nargs="*", help="notebook names, e.g. 00_primer")
    run.add_argument("--all", action="store_true", help="every numbered notebook in notebooks/")
    run.add_argument("--profile", default="auto", help="smoke | cpu | gpu | auto (default)")
    run.add_argument("--out", default="build", help="output folder (default: build)")
    run.add_argument("--no-html", action="store_true", help="skip the HTML export")
    run.add_argument("-p", "--parameter", action="append", default=[], help="NAME=VALUE for the parameters cell")
    run.add_argument("--cell-timeout", type=_seconds, default=RUN_CELL_TIMEOUT_S,
                     help=f"fail a cell that runs longer (seconds; 0 = no limit; default {RUN_CELL_TIMEOUT_S})")

    ref = sub.add_parser("reference", help="the declared long run of a notebook -> data/results/<notebook>.json")
    ref.add_argument("notebooks", nargs="+")
    ref.add_argument("--out", default="build/reference")
    ref.add_argument("--cell-timeout", type=_seconds, default=0,
                     help="fail a cell that runs longer (seconds; default 0 = no limit: reference cells train for long)")

    results = sub.add_parser("results", help="print the shipped reference runs' headline tables and verdicts (Markdown)")
    results.add_argument("notebooks", nargs="*", help="notebook names (default: every declared reference)")

    add_course_commands(sub)

    train = sub.add_parser("train", help="train one method from a config file (TOML/YAML), one process or torchrun")
    train.add_argument("config", help="the config file (sections data, teacher, student, method, train, output)")
    train.add_argument("--resume", action="store_true", help="continue from the output dir's checkpoint")
    train.add_argument("--dry-run", action="store_true", help="print the resolved config and parameter counts")
    train.add_argument("--out", default=None, help="output dir (overrides [output] dir)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    teachers = sub.add_parser("teachers", help="list, verify or (re)build the shipped teachers")
    teachers.add_argument("action", choices=["list", "verify", "build"])
    teachers.add_argument("keys", nargs="*", help="teacher keys (default: all)")
    teachers.add_argument("--device", default="cpu", help="device to train on when building (default cpu)")

    bench = sub.add_parser("bench", help="measure model, data-generation, OFA training-step, TaT-loss, training-utilisation and grid-throughput costs")
    bench.add_argument("what", choices=["models", "data", "ofa", "swtat", "train", "grid"])
    bench.add_argument("--student", default="vit", help="student model (ofa)")
    bench.add_argument("--teacher", default="cnn_small", help="teacher model (ofa)")
    bench.add_argument("--batch-size", type=int, default=None, help="default 64 (models, ofa), 8 (swtat)")
    bench.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    bench.add_argument("--n", type=int, default=10000, help="images to generate (data)")
    bench.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64], help="square map sides (swtat)")
    bench.add_argument("--channels", type=int, default=64, help="map channels (swtat)")
    bench.add_argument("--window", type=int, default=8, help="window size M (swtat)")
    bench.add_argument("--repeats", type=int, default=3, help="timed steps per loss, median reported (swtat)")
    bench.add_argument("--n-train", type=int, default=512, help="training images per run (grid, train)")
    bench.add_argument("--epochs", type=int, default=1, help="epochs per run (grid, train)")
    bench.add_argument("--seeds", type=int, default=3, help="seeds per row (grid, train)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "env":
        print(env_report())
        return 0
    handlers = {"run": cmd_run, "reference": cmd_reference, "results": cmd_results, "teachers": cmd_teachers,
                "bench": cmd_bench, "docs": cmd_docs, "handout": cmd_handout, "solutions": cmd_solutions,
                "lab": cmd_lab, "train": cmd_train,
                "slides": cmd_slides}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
