# The README's two commands. Each sets itself up (idempotently) on a machine with only
# Python >= 3.10, gcc and make:  `make demo`  and  `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.selfcorrect-installed
# torch first, pinned: 2.13.0 resolves to the CPU build on the project's machines; the range in
# pyproject.toml then installs nothing more (GPU users install their own build).
TORCH ?= torch==2.13.0

.PHONY: demo test test-slow lint setup lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc 2>/dev/null || echo 2) \
	  $(BIN)/python -m pip install -q -c constraints.txt -e '.[all,dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/selfcorrect demo

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# Refresh the exact versions the tests passed with (run after a green `make test`).
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -i -E '^(torch|selfcorrect)[=@ ]' > constraints.txt

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
