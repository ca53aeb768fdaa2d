# Two commands set everything up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
RUN ?= runs/xception

.PHONY: serve test prepare lint train export evaluate bench screenshots clean

# Python caches compiled imports even where the environment turns that off: the suite starts
# dozens of Python processes (servers, Ray workers, command-line runs), and each would compile
# its imports again (a fresh clone's tests took 373 s without the cache, 318 s with it).
export PYTHONDONTWRITEBYTECODE :=

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per install flavour, redone when pyproject.toml changes.
$(VENV)/.runtime: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --no-compile -e '.[dev,train,batch]'
	touch $@ $(VENV)/.runtime

prepare: $(VENV)/.runtime
	$(PY) -m service.inference.prepare

serve: prepare
	EMOTION_HOST=$(HOST) EMOTION_PORT=$(PORT) $(PY) -m service

test: $(VENV)/.dev prepare
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

train: $(VENV)/.dev
	$(PY) -m training.train --out $(RUN) --resume

export: $(VENV)/.dev
	$(PY) -m training.export --run $(RUN)

evaluate: $(VENV)/.dev
	$(PY) -m training.evaluate $(MODEL)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Not part of `make test`: takes about ten minutes and wants an otherwise idle machine.
bench: $(VENV)/.dev prepare
	$(PY) -m benchmarks.run

# The README's pictures, from real scenes (needs Chromium).
screenshots: $(VENV)/.dev prepare
	PYTHONPATH=. $(PY) docs/make_screenshots.py
