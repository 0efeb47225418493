# Two commands for a fresh machine: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Versions tested together (torchaudio 2.11 works with torch 2.14).
TORCH := torch==2.14.1 torchaudio==2.11.0
INSTALLED := $(VENV)/.installed

.PHONY: test espeak demo demo-an4 demo-synth bench-demo clean

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH) -e '.[dev,export]'
	touch $@

# All the tests, the slow end-to-end ones included (README: how to run the quick ones).
test: $(INSTALLED)
	@$(MAKE) --no-print-directory espeak || echo "== without espeak-ng the synthetic-speech tests skip"
	$(BIN)/python -m pytest -q

# espeak-ng speaks the synthetic-speech recipe's sentences; installed with apt-get when run as root.
espeak:
	@command -v espeak-ng >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q espeak-ng; \
	  else \
	    echo "espeak-ng is not installed; install it with:"; \
	    echo "  sudo apt-get install espeak-ng    (Debian/Ubuntu; macOS: brew install espeak-ng)"; \
	    exit 1; \
	  fi; }

# The AN4 recipe (real read speech, test speakers never heard) on a short schedule, about 15
# minutes on 2 CPU cores: downloads AN4, or uses AN4_ROOT (default ../shared/data/an4 when it
# exists); then one test file transcribed and the attention cost table. Without a network and
# without a local copy it falls back to the synthetic-speech recipe (demo-synth).
AN4 := recipes/an4
AN4_ROOT ?= $(wildcard ../shared/data/an4)
AN4_DEMO := $(AN4)/exp/demo
AN4_RUN := $(AN4)/run.sh --exp-dir $(AN4_DEMO) --epochs 20 --average-num 3 $(if $(AN4_ROOT),--corpus-dir $(AN4_ROOT))
demo: $(INSTALLED)
	@$(AN4_RUN) --stop-stage 0 || { echo; echo "== AN4 could not be had: the synthetic-speech demo instead"; \
	  $(MAKE) --no-print-directory demo-synth; exit 0; } && $(MAKE) --no-print-directory demo-an4

demo-an4: $(INSTALLED)
	$(AN4_RUN)
	@echo; echo "== test WER/CER on 10 speakers never heard in training ($(AN4_DEMO)/RESULTS.md)"
	@grep -E '^\| (set|---|test) ' $(AN4_DEMO)/RESULTS.md
	@echo "   peer: ESPnet egs2/an4/asr1 (Transformer encoder-decoder + CTC, BPE 30, beam 10): 7.6 % WER, 7.4 % with an LM; recipes/an4/README.md has the full schedule"
	@echo; echo "== tasr transcribe of one test file (reference: $$(head -1 $(AN4)/data/test.jsonl | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["text"])'))"
	$(BIN)/tasr transcribe $(AN4_DEMO)/model.pt "$$(head -1 $(AN4)/data/test.jsonl | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["audio"])')" \
	  --output-dir $(AN4_DEMO)/transcribe --format txt
	@$(MAKE) --no-print-directory bench-demo OUT=$(AN4_DEMO)/bench_attention

# The synthetic-speech recipe end to end (about 10 minutes on 2 idle CPU cores), then one test file
# transcribed and the attention cost table. espeak-ng is installed with apt-get when run as root.
SYNTH := recipes/synth
demo-synth: $(INSTALLED) espeak
	$(SYNTH)/run.sh
	@echo; echo "== test WER/CER: voices never heard in training ($(SYNTH)/exp/RESULTS.md)"
	@grep -E '^\| (set|---|test|long) ' $(SYNTH)/exp/RESULTS.md
	@echo; echo "== tasr transcribe of one test file (reference: $$(head -1 $(SYNTH)/data/test.jsonl | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["text"])'))"
	$(BIN)/tasr transcribe $(SYNTH)/exp/model.pt $(SYNTH)/data/test/test-00000.wav --output-dir $(SYNTH)/exp/demo --format txt
	$(BIN)/tasr transcribe $(SYNTH)/exp/model.pt $(SYNTH)/data/test/test-00000.wav --output-dir $(SYNTH)/exp/demo/lexicon \
	  --format txt --beam 10 --lexicon $(SYNTH)/exp/words.txt
	@$(MAKE) --no-print-directory bench-demo OUT=$(SYNTH)/exp/demo/bench_attention

bench-demo: $(INSTALLED)
	@echo; echo "== attention cost against length (truncated: left 64, right 16 frames)"
	$(BIN)/tasr bench attention --lengths 1000,2000,4000,8000 --backends dense,chunked --repeats 3 --out $(OUT)

clean:
	rm -rf $(VENV) *.egg-info
