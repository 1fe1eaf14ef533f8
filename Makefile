# Two commands do all set-up on a fresh machine (a .venv is made on first use):
#   make train   - the default recipe: LoRA on MiniLM-L6 for Rotten Tomatoes sentiment
#   make test    - the test suite
PY := .venv/bin/python
STAMP := .venv/.installed
CONFIG ?= recipes/configs/sentiment_minilm_lora.yaml
ARGS ?=

.PHONY: train test test-fast lint

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh scripts/setup_browser.sh scripts/setup_postgres.sh
	bash scripts/setup.sh
	touch $(STAMP)

train: $(STAMP)
	$(PY) recipes/classify.py --config $(CONFIG) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not distributed and not browser" $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check nlp_transfer recipes tests demo benchmarks
