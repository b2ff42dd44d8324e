# The two commands a newcomer types: `make demo` and `make test`. Each creates .venv if missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dparena-installed
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test test-all bench lint install publish catalogue clean-results quick-timings

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, in its own command, from the pinned local build (see constraints.txt)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[all,dev]" -c constraints.txt
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dparena fetch adult mnist rotten-tomatoes inception-fid all-minilm-l6-v2
	$(BIN)/dparena run benchmarks/suites/quick.toml --jobs 2

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks/perf --benchmark-only --benchmark-json=benchmarks/perf/last-run.json -q

# The quick suite's wall time, cold (a fresh store and a fresh $DPARENA_HOME/cache: eval features,
# stage-1 models and XLA compilations are computed, as on a clean CI machine; pinned assets, wheels
# and built models are linked from your home), with its per-stage table, into the committed
# benchmarks/perf/quick-suite.json: a slowdown shows in review (docs/performance.md).
QT := $(or $(TMPDIR),/tmp)/dparena-quick-timings
quick-timings: $(STAMP)
	rm -rf $(QT) && mkdir -p $(QT)/home
	src=$${DPARENA_HOME:-$$HOME/.cache/dparena}; for d in assets wheels models secrets; do \
	  if [ -d $$src/$$d ]; then ln -s $$src/$$d $(QT)/home/$$d; fi; done
	DPARENA_HOME=$(QT)/home $(BIN)/dparena run benchmarks/suites/quick.toml --jobs 2 --quiet \
	  --db $(QT)/runs.sqlite --timings --timings-json benchmarks/perf/quick-suite.json

# Regenerate the published results: the full quick-suite tables (results/quick/{leaderboard.md,
# .html,plots/,samples/}, written by `dparena run`), results/baseline.json, and the README's short front
# table, read from results/{tabular-cpu,text-cpu,baselines-cpu,mnist-cpu}/leaderboard.md
# (dparena/leaderboard/publish.py; those CPU suites are re-run by hand, each tens of minutes:
# dparena run benchmarks/suites/NAME.toml, then copy its leaderboard, plots and samples here).
publish: $(STAMP)
	$(BIN)/dparena run benchmarks/suites/quick.toml --quiet --jobs 2
	$(BIN)/dparena leaderboard --db results/quick/runs.sqlite --format json --out results/baseline.json
	$(BIN)/python -m dparena.leaderboard.publish README.md results

# Regenerate docs/catalogue.md from the registered classes (tests/test_registry.py checks it).
catalogue: $(STAMP)
	$(BIN)/dparena list --format md > docs/catalogue.md.tmp && mv docs/catalogue.md.tmp docs/catalogue.md

# ruff, and the import contract: imports point down the layers (tools/check_layers.py)
lint: $(STAMP)
	$(BIN)/ruff check dparena tests benchmarks tools
	$(BIN)/python tools/check_layers.py

clean-results:
	rm -rf results/quick/runs.sqlite results/quick/artifacts
