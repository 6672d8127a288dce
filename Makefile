# Two entry points, both usable from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint bench bench-load bench-library clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/moviematch

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The inner loop: lint, then every test that starts no subprocess or server (about a minute).
test-fast: lint
	$(BIN)/pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m bench.storage
	$(BIN)/python -m bench.startup

bench-load: $(STAMP)
	$(BIN)/python -m bench.load

# createRoom cold and cached at 1,000 / 20,000 / 100,000 films from a fake Plex and Jellyfin; RSS with 100 rooms.
bench-library: $(STAMP)
	$(BIN)/python -m bench.library

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
