# The commands the README names. Each target builds .venv itself when it is
# missing or older than pyproject.toml / constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_ARGS ?=
# JupyterLab reads setting defaults from here, inside the venv: the project's
# own, not the user's home directory.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.d/emlib.json
# Quiet a jupyter_core deprecation warning (pytest turns warnings into errors).
export JUPYTER_PLATFORM_DIRS := 1

.PHONY: lab test test-book lint bench mutate html clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed; set PYTHON=python3.x"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3
	touch $(STAMP)

# A quiet JupyterLab: no news pop-up, no update check (lab/overrides.json).
lab: $(STAMP) $(LAB_SETTINGS)
	$(BIN)/jupyter lab notebooks $(LAB_ARGS)

$(LAB_SETTINGS): lab/overrides.json $(STAMP)
	mkdir -p $(dir $@)
	cp $< $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Everything but the book: lint, unit tests, doctests, every notebook (nbval).
# Python's bytecode caches (__pycache__, ignored by git) are written even
# where the environment sets PYTHONDONTWRITEBYTECODE: pytest keeps its
# rewritten test modules there, which each of the run's processes would
# otherwise rewrite and compile again, run after run.
test: lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n 2 -m "not book"

# The book: the Sphinx build of `make html`, read as HTML and in headless
# Chromium (tests/test_html_book.py). CI runs it after `make test`.
test-book: $(STAMP)
	$(BIN)/pytest -m book

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_em.py
	$(BIN)/python benchmarks/bench_multivariate.py
	$(BIN)/python benchmarks/bench_dask.py
	$(BIN)/python benchmarks/bench_accelerate.py
	$(BIN)/python benchmarks/bench_hmm.py

# Mutation testing (tools/mutate.py; not part of `make test`, it takes hours
# in full): each mutant of emlib against the notebooks alone. Narrow it with,
# e.g., MUTATE_ARGS="--module multivariate --sample 40 --seed 0 --workers 2".
MUTATE_ARGS ?=
mutate: $(STAMP)
	$(BIN)/python tools/mutate.py $(MUTATE_ARGS)

# The notebooks, with their stored outputs, as a book readable offline:
# open build/html/index.html. Sphinx + MyST-NB, configured in book/conf.py;
# the contents are notebooks/index.md. Warnings (a broken link) are errors.
html: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html -c book -d build/doctrees \
	  notebooks build/html
	@echo "open build/html/index.html"

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
