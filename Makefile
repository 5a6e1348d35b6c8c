# kdlab — the two commands of the README (`make lab`, `make test`) and a few helpers.
# Every target creates the virtual environment first when it is missing or out of date.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdlab-installed
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: env lab test test-fast book handout solutions slides teachers bench strip clean help

help:
	@echo "make lab       set up .venv if needed, then start JupyterLab on notebooks/ (127.0.0.1)"
	@echo "make test      set up .venv if needed, then run unit tests + every notebook (smoke profile)"
	@echo "make book      execute every notebook (profile auto) into build/ (.ipynb + .html), and the course docs"
	@echo "make slides    executed reveal.js decks of every notebook, offline (assets from npm) into build/slides/"
	@echo "make handout   students' copies of the notebooks, without the solutions, into build/handout/"
	@echo "make solutions the lecturer's answer key (exercises + solutions, Markdown and HTML) into build/solutions/"
	@echo "make teachers  retrain the shipped teachers into data/teachers/"
	@echo "make env       only create/update .venv"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing kdlab and its pinned dependencies into $(VENV) (a few minutes the first time)..."
	$(PIP_INSTALL) -e ".[notebooks,test]"
	@touch $@

env: $(STAMP)

# 127.0.0.1 only, a token, the offline settings overrides, --allow-root when root (kdlab/lab.py).
lab: $(STAMP)
	$(BIN)/python -m kdlab lab --root-dir notebooks

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not notebook"

book: $(STAMP)
	$(BIN)/python -m kdlab run --all --profile auto --out build
	$(BIN)/python -m kdlab docs --out build

slides: $(STAMP)
	mkdir -p build/slides/assets
	npm install --no-save --no-package-lock --prefix build/slides/assets reveal.js@4.0.2 requirejs@2.3.6 mathjax@2.7.7 jquery@2.2.4
	$(BIN)/python -m kdlab slides --out build/slides

handout: $(STAMP)
	$(BIN)/python -m kdlab handout --out build/handout

solutions: $(STAMP)
	$(BIN)/python -m kdlab solutions --out build/solutions

teachers: $(STAMP)
	$(BIN)/python -m kdlab teachers build

strip: $(STAMP)
	$(BIN)/nbstripout --keep-id notebooks/*.ipynb

clean:
	rm -rf build .pytest_cache
