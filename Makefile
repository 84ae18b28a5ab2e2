# mmteach: set-up, run, test. `make run` and `make test` do everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501
# Many small matrix operations: BLAS threads only add overhead (see mmteach/__main__.py).
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: setup run test lint bench reference

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-sparse.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@# optional (CHOLMOD, a C build): without it large crossed designs use dense factors
	$(PY) -m pip install --quiet -r requirements-sparse.txt || echo "note: scikit-sparse did not \
	build (optional): large crossed designs use dense factors; apt-get install libsuitesparse-dev \
	and run make setup again for the sparse path."
	touch $(STAMP)

run: setup
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m mmteach bench --json

# Regenerate the R reference values (needs R with lme4, lmerTest, nlme, pbkrtest, geepack,
# jsonlite; reference_lme_broad.R also optimx and dfoptim for allFit).
reference:
	for f in tests/r/reference_*.R; do Rscript $$f || exit 1; done
