# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench fuzz soak lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,proxy,metrics,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gateway serve --host 127.0.0.1 --port 8080

test: $(STAMP)
	@command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install -y redis-server"; exit 1; }
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py

fuzz: $(STAMP)
	$(BIN)/python bench/fuzz.py

soak: $(STAMP)
	@command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install -y redis-server"; exit 1; }
	$(BIN)/python bench/soak.py

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench

typecheck: $(STAMP)
	$(BIN)/mypy gateway

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
