# Two commands for a fresh machine: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Versions tested together (torchaudio 2.11 works with torch 2.14).
TORCH := torch==2.14.1 torchaudio==2.11.0
INSTALLED := $(VENV)/.installed

.PHONY: test demo clean

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH) -e '.[dev]'
	touch $@

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info
