# readmit: one front door. Every target installs what it needs (uv bootstraps itself with pip).
SHELL := /bin/bash
export READMIT_HOME ?= $(CURDIR)/.readmit
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
DAGSTER_PORT ?= 3070

.PHONY: install demo test test-stack dagster status clean bench

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

install: $(UV) ## create .venv with every dependency group from uv.lock
	$(UV) sync --frozen --all-groups

demo: install ## run the main job on the embedded default: every batch, no servers
	$(RUN) readmit demo

test: install ## unit, contract and graph tests (real data too when READMIT_SOURCE is set)
	$(RUN) pytest -m "not stack"

test-stack: install ## tests against real servers on loopback (Postgres, MLflow server, moto S3)
	$(RUN) pytest -m stack

dagster: install ## the Dagster UI on the instance the pipeline writes to
	mkdir -p $(READMIT_HOME)/dagster && [ -f $(READMIT_HOME)/dagster/dagster.yaml ] || printf 'telemetry:\n  enabled: false\n' > $(READMIT_HOME)/dagster/dagster.yaml
	DAGSTER_HOME=$(READMIT_HOME)/dagster $(RUN) dagster dev -m assets.definitions -h 127.0.0.1 -p $(DAGSTER_PORT)

status: install
	$(RUN) readmit status

bench: install ## benchmarks that print ratios side by side
	$(RUN) python -m benchmarks.ingest

clean: ## forget all runtime state under READMIT_HOME
	rm -rf $(READMIT_HOME)
