# Build and test "GRPO, interactively". README: `make book`, `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
NBVAL := -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: venv book test bench notebooks serve

# One pip command, so that pip resolves the torch pin of requirements.txt
# together with the package's loose torch requirement.
# Reinstalled whenever requirements.txt or pyproject.toml changes (the stamp is older).
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt -e ".[book,test]"
	touch $@

# Always from an empty _build: an incremental build with -W can exit 0 on a broken book.
book: venv
	rm -rf _build
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# Unit tests, then the notebooks against their stored outputs, then the book
# (its extension fails the build if a figure is missing from the HTML), then the
# built site: internal links, and every page in headless Chromium with the network
# blocked (screenshots in _build/screenshots).
test: venv
	$(PY) -m pytest tests
	$(PY) -m pytest $(NBVAL) book/
	$(MAKE) book
	$(PY) tools/check_links.py _build/html
	$(PY) tools/browser_check.py _build/html --screenshots _build/screenshots

bench: venv
	for f in benchmarks/*.py; do $(PY) "$$f" || exit 1; done

notebooks: venv
	$(PY) tools/refresh_notebooks.py

# Preview the built book at http://localhost:8000 (after make book).
serve:
	$(PY) -m http.server 8000 -d _build/html
