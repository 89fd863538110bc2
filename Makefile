# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CVENV := .venv-compiled
CBIN := $(CVENV)/bin
CSTAMP := $(CVENV)/.installed

.PHONY: demo test bench fuzz soak lint typecheck clean compiled test-compiled

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,proxy,metrics,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gateway serve --host 127.0.0.1 --port 8080

# The Node clients the tests run (tests/test_sts_node.py: @alicloud/pop-core), from the committed lock file.
NODE_CLIENTS := tests/node/node_modules/.package-lock.json
$(NODE_CLIENTS): tests/node/package.json tests/node/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: apt-get install -y nodejs npm"; exit 1; }
	npm ci --prefix tests/node --no-audit --no-fund --silent

# The tests marked slow included; the fuzz campaign and the soak skip themselves unless sized (below).
test: $(STAMP) $(NODE_CLIENTS)
	@command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install -y redis-server"; exit 1; }
	$(BIN)/pytest -q -p no:cacheprovider

# With the compiled build too: its rows sit beside the pure-Python ones in the same run. Each driver runs
# alone as `python -m bench.<driver>` from here (bench/__init__.py lists them).
bench: $(STAMP) $(CSTAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run

# Sizes: GATEWAY_FUZZ_INPUTS (100,000), GATEWAY_DIFF_EXAMPLES (10,000); `-s` shows the fuzz report.
GATEWAY_FUZZ_INPUTS ?= 100000
GATEWAY_DIFF_EXAMPLES ?= 10000
fuzz: $(STAMP)
	GATEWAY_FUZZ_INPUTS=$(GATEWAY_FUZZ_INPUTS) $(BIN)/pytest -q -s -p no:cacheprovider tests/test_fuzz_campaign.py
	GATEWAY_DIFF_EXAMPLES=$(GATEWAY_DIFF_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider tests/test_differential.py

# Length and load: SOAK_MINUTES (10), SOAK_RATE (400 req/s), SOAK_CONNECTIONS (16); tests/test_soak.py.
SOAK_MINUTES ?= 10
soak: $(STAMP)
	@command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install -y redis-server"; exit 1; }
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/pytest -q -s -p no:cacheprovider tests/test_soak.py

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench

typecheck: $(STAMP)
	$(BIN)/mypy gateway

# The opt-in mypyc build (setup.py, GATEWAY_COMPILE=1): a wheel with the hot modules compiled, installed
# (not editable) into a venv of its own. Never built in place: an extension module next to its .py
# shadows it, and later edits of the checkout would be silently ignored. The first install brings the
# dependencies (mypy checks the sources against them), the compiled wheel then replaces the package.
# The .pth file puts the checkout on the path *after* site-packages: `tests` and `bench` import from
# it, `gateway` from the wheel. mypy is pinned: the suite proved the C that this mypyc writes, not the next one.
$(CSTAMP): pyproject.toml setup.py $(shell find gateway -name '*.py')
	test -x $(CBIN)/python || $(PYTHON) -m venv $(CVENV)
	$(CBIN)/pip install --quiet --upgrade pip 'setuptools>=70.1' 'mypy==2.4.1'
	$(CBIN)/pip install --quiet '.[test,proxy,metrics]'
	rm -rf build/wheels build/compiled
	GATEWAY_COMPILE=1 $(CBIN)/pip wheel --quiet --no-build-isolation --no-deps -w build/wheels .
	$(CBIN)/pip install --quiet --force-reinstall --no-deps build/wheels/acs_gateway-*.whl
	$(CBIN)/python -c 'import sys, sysconfig; open(sysconfig.get_paths()["purelib"] + "/acs-gateway-checkout.pth", "w").write(sys.argv[1] + "\n")' "$(CURDIR)"
	touch $(CSTAMP)

compiled: $(CSTAMP)

# The whole suite against the compiled install. pytest's pythonpath (".") would put the sources first,
# so it is emptied and the rootdir appended; PYTHONSAFEPATH keeps `python -m gateway` children (cwd:
# the checkout) from importing the sources too. tests/conftest.py fails the run if `gateway` is not
# the compiled one, in this process or in a child.
test-compiled: $(CSTAMP) $(NODE_CLIENTS)
	@command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install -y redis-server"; exit 1; }
	GATEWAY_EXPECT_COMPILED=1 PYTHONSAFEPATH=1 $(CBIN)/pytest -q -p no:cacheprovider -o pythonpath= --import-mode=append

clean:
	rm -rf $(VENV) $(CVENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
