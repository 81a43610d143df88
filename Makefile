# Build and test "GRPO, interactively". README: `make book`, `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
NBVAL := -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: venv book test lab bench bench-trl notebooks serve conformance-venv conformance colab-check

# One pip command, so that pip resolves the torch pin of requirements.txt
# together with the package's loose torch requirement.
# Reinstalled whenever requirements.txt or pyproject.toml changes (the stamp is older).
# --no-compile: Python compiles each module when it is first imported instead (a fresh install
# took 39 s on 2 cores with pip's cache warm).
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --no-compile -r requirements.txt -e ".[book,test]"
	touch $@

# Always from an empty _build: an incremental build with -W can exit 0 on a broken book.
# = jupyter-book build . -W -n --keep-going, with the chapters executed two at a time.
book: venv
	rm -rf _build
	$(PY) tools/build_book.py --jobs 2

# Chromium first (installed with apt-get when missing and run as root, else one line saying how),
# then unit tests, then the notebooks against their stored outputs, then the book
# (its extension fails the build if a figure is missing from the HTML), then the
# built site: internal links, and every page in headless Chromium with the network
# blocked (screenshots in _build/screenshots); last, the live explorers in JupyterLab and
# Notebook 7 driven by keyboard and mouse (latencies printed; screenshots in _build/lab-screenshots).
test: venv
	sh tools/ensure_chromium.sh
	$(PY) -m pytest tests
	$(PY) -m pytest $(NBVAL) book/
	$(MAKE) book
	$(PY) tools/check_links.py _build/html
	$(PY) tools/browser_check.py _build/html --screenshots _build/screenshots
	$(PY) tools/lab_check.py --screenshots _build/lab-screenshots

# JupyterLab on this environment's kernel (grpo_core of this checkout, jupyterlab-myst for the
# chapters' MyST markup), opened on book/. As root (containers) it needs --allow-root.
lab: venv
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) book/

# The reference environment of the conformance suite: TRL 1.16.0 and verl 0.9.1 (the latter
# without its dependency list, plus what its loss code imports), the versions of
# requirements.txt as constraints. Built on first use; rebuilt when a requirements file or
# pyproject.toml changes. `make book` and `make test` never need it.
CONF_VENV ?= .venv-conformance
CONF_PY := $(CONF_VENV)/bin/python
conformance-venv: $(CONF_VENV)/.installed
$(CONF_VENV)/.installed: requirements.txt requirements-conformance.txt pyproject.toml
	test -x $(CONF_PY) || python3 -m venv $(CONF_VENV)
	$(CONF_PY) -m pip install -c requirements.txt -r requirements-conformance.txt -e .
	$(CONF_PY) -m pip install --no-deps verl==0.9.1
	touch $@

# grpo_core's loss and advantage presets against TRL's and verl's own code on random batches
# (tests/conformance; a skipped test fails the run). Prints and writes the max-difference table
# to _build/conformance.md.
conformance: conformance-venv
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
	  $(CONF_PY) -m pytest -p no:cacheprovider tests/conformance -q

bench: venv
	for f in benchmarks/*.py; do $(PY) "$$f" || exit 1; done

# grpo_core's trainer against TRL 1.16's GRPOTrainer, side by side, in the conformance environment
# (prints seconds per step, completion tokens per second, peak memory and `ratio ours/TRL`).
bench-trl: conformance-venv
	$(CONF_PY) benchmarks/bench_vs_trl.py

# Every chapter on Colab's own packages (requirements-colab.txt, in .venv-colab: plotly 5.24.1,
# ipywidgets 7.7.1, numpy 2.1.3, ...; Python 3.11 and CPU torch 2.13.0 here, Colab has 3.13 and
# 2.11), installed the way the first cell does, with a stand-in google.colab; every explorer
# control is moved through the widget protocol. Fails on any package pip changed, any error, any
# control that changes nothing; prints a table. Colab's own interpreter and torch, for example:
# make colab-check COLAB_PYTHON=python3.13 COLAB_VENV=.venv-colab313 COLAB_ARGS=--pin=torch==2.11.0
COLAB_VENV ?= .venv-colab
COLAB_PYTHON ?= python3
COLAB_ARGS ?=
colab-check: venv
	OMP_NUM_THREADS=1 $(PY) tools/colab_check.py --python $(COLAB_PYTHON) --venv $(COLAB_VENV) $(COLAB_ARGS)

notebooks: venv
	$(PY) tools/refresh_notebooks.py

# Preview the built book at http://localhost:8000 (after make book).
serve:
	$(PY) -m http.server 8000 -d _build/html
