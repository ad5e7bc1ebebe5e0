# Fresh machine: `make demo` runs the main job, `make test` runs the tests. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The datasets sit beside the project on the development machines; elsewhere the loaders fetch them.
BBRANGE_DATA_DIR ?= $(if $(wildcard ../shared/datasets/mnist),$(abspath ../shared/datasets),$(HOME)/.cache/bbrange/datasets)
export BBRANGE_DATA_DIR

.PHONY: install demo test bench clean

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

clean:
	rm -rf $(VENV) models runs .pytest_cache
