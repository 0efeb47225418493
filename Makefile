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

# The synthetic-speech recipe end to end (about 10 minutes on 2 idle CPU cores), then one test file
# transcribed and the attention cost table. espeak-ng is installed with apt-get when run as root.
SYNTH := recipes/synth
demo: $(INSTALLED)
	@command -v espeak-ng >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q espeak-ng; \
	  else \
	    echo "make demo speaks its sentences with espeak-ng; install it with:"; \
	    echo "  sudo apt-get install espeak-ng    (Debian/Ubuntu; macOS: brew install espeak-ng)"; \
	    exit 1; \
	  fi; }
	$(SYNTH)/run.sh
	@echo; echo "== test WER/CER: voices never heard in training ($(SYNTH)/exp/RESULTS.md)"
	@grep -E '^\| (set|---|test|long) ' $(SYNTH)/exp/RESULTS.md
	@echo; echo "== tasr transcribe of one test file (reference: $$(head -1 $(SYNTH)/data/test.jsonl | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["text"])'))"
	$(BIN)/tasr transcribe $(SYNTH)/exp/model.pt $(SYNTH)/data/test/test-00000.wav --output-dir $(SYNTH)/exp/demo --format txt
	$(BIN)/tasr transcribe $(SYNTH)/exp/model.pt $(SYNTH)/data/test/test-00000.wav --output-dir $(SYNTH)/exp/demo/lexicon \
	  --format txt --beam 10 --lexicon $(SYNTH)/exp/words.txt
	@echo; echo "== attention cost against length (truncated: left 64, right 16 frames)"
	$(BIN)/tasr bench attention --lengths 1000,2000,4000,8000 --backends dense,chunked --repeats 3 \
	  --out $(SYNTH)/exp/demo/bench_attention

clean:
	rm -rf $(VENV) *.egg-info
