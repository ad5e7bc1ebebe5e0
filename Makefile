# Fresh machine: `make demo` runs the main job, `make test` runs the tests. Both create .venv first.
# `make compose-smoke` runs docker compose up for real (root, Docker; see deploy/smoke/smoke.py): not in CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# KServe's model server, for tests/targets only: it pins its own web stack, so it lives in its own venv.
KSERVE_VENV ?= .venv-kserve
# The datasets sit beside the project on the development machines; elsewhere the loaders fetch them.
BBRANGE_DATA_DIR ?= $(if $(wildcard ../shared/datasets/mnist),$(abspath ../shared/datasets),$(HOME)/.cache/bbrange/datasets)
export BBRANGE_DATA_DIR

.PHONY: install kserve-env chromium demo test bench clean compose-smoke

$(BIN)/bbrange: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/bbrange

$(KSERVE_VENV)/.ready: tests/targets/kserve-requirements.txt
	rm -rf $(KSERVE_VENV)
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install --quiet --no-compile -r tests/targets/kserve-requirements.txt
	touch $@

kserve-env: $(KSERVE_VENV)/.ready

demo: install
	$(BIN)/bbrange demo

# The report tests open pages in a real browser: Debian's chromium (Playwright drives it; its own download
# does not work offline). CI runs as root on a fresh machine.
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	apt-get update && apt-get install -y chromium

chromium: $(CHROMIUM)

test: install kserve-env chromium
	$(BIN)/pytest -q

# The user's step goes through the project's typed clients: the .venv's python. BBRANGE_SMOKE_IMAGES=public uses
# the public images (internet).
compose-smoke: install
	$(BIN)/python deploy/smoke/smoke.py

clean:
	rm -rf $(VENV) $(KSERVE_VENV) models runs .pytest_cache
