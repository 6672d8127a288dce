# Two entry points, both usable from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What the server needs (`make run`), then the test and lint tools on top (`make test`).
SERVER_STAMP := $(VENV)/.installed-server
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint screenshots bench bench-load bench-library clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The server's dependencies (pyproject.toml's), pinned; the checkout itself runs in place, so that
# nothing is built (and no build backend fetched) before the first `make run`.
$(SERVER_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > $(VENV)/server-requirements.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -r $(VENV)/server-requirements.txt
	touch $@

$(STAMP): $(SERVER_STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

run: $(SERVER_STAMP)
	$(BIN)/python -m server

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The inner loop: lint, then every test that starts no subprocess or server (about three minutes here).
test-fast: lint
	$(BIN)/pytest -m "not slow"

# Renews docs/screenshots/ (the pictures of the screens kept in the repository) from the browser tests.
screenshots: $(STAMP)
	KEEP_SCREENSHOTS=1 $(BIN)/pytest -q tests/test_web_client.py -k "wider_than_a_phone or refuses_websockets or opens_offline or share"
	KEEP_SCREENSHOTS=1 $(BIN)/pytest -q tests/test_web_standing.py -k catalogue

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
