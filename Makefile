# Fresh machine: `make demo` runs the main job, `make test` runs the tests. Both create .venv first.
# `make compose-smoke` runs docker compose up for real (root, Docker; see deploy/smoke/smoke.py): not in CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The datasets sit beside the project on the development machines; elsewhere the loaders fetch them.
BBRANGE_DATA_DIR ?= $(if $(wildcard ../shared/datasets/mnist),$(abspath ../shared/datasets),$(HOME)/.cache/bbrange/datasets)
export BBRANGE_DATA_DIR

.PHONY: install demo test bench clean compose-smoke

$(BIN)/bbrange: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/bbrange

demo: install
	$(BIN)/bbrange demo

test: install
	$(BIN)/pytest -q

# Standard library only: needs no .venv. BBRANGE_SMOKE_IMAGES=public uses the public images (internet).
compose-smoke:
	$(PYTHON) deploy/smoke/smoke.py

clean:
	rm -rf $(VENV) models runs .pytest_cache
