# readmit: one front door. Every target installs what it needs.
SHELL := /bin/bash
export READMIT_HOME ?= $(CURDIR)/.readmit
# uv is the project's own: a pinned copy in a private virtual environment under .tools/, so the bootstrap
# installs nothing into the system Python (PEP 668 refuses that on Debian 12) and needs no uv on PATH.
# Only .tools/bin (uv and uvx, nothing else) goes first on PATH, so every target and every process the tests
# start (e.g. `bentoml build`, which looks for uv there) find this same uv.
UV_VERSION := 0.13.9
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/bin/uv
export PATH := $(TOOLS)/bin:$(PATH)
RUN := $(UV) run --frozen
# Every process keeps the bytecode it compiles (__pycache__, git-ignored). A machine that sets
# PYTHONDONTWRITEBYTECODE (CI images do) made each process compile every module it imports again: importing the
# pipeline took 13.7 s instead of 5.5 s in each test worker, server, CLI and Airflow task (docs/benchmarks.md).
unexport PYTHONDONTWRITEBYTECODE
# No process make starts reports usage to a vendor (MLflow 3's client, BentoML's CLI and server do by default;
# assets/settings.py NO_TELEMETRY). To opt in, set them false in the shell (MLflow needs both of its two).
export MLFLOW_DISABLE_TELEMETRY ?= true
export BENTOML_DO_NOT_TRACK ?= true
export DO_NOT_TRACK ?= true
DAGSTER_PORT ?= 3070
API_PORT ?= 3000
# The project version names the Bento and the API image built from it (k8s/base/api.yaml runs that tag).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
UI_PORT ?= 8501

MLFLOW_PORT ?= 5000
# Pipeline processes (demo, dagster, airflow, mlflow) run under umask 077: lake files, raw arrivals,
# predictions and MLflow artifacts hold patient data and are private to the user who runs them.
# The MLflow server reads the embedded store by default, so `make mlflow` shows what `make demo` logged.
MLFLOW_BACKEND_STORE_URI ?= sqlite:///$(READMIT_HOME)/mlflow.db
MLFLOW_ARTIFACTS_DESTINATION ?= $(READMIT_HOME)/mlartifacts

.PHONY: system-packages install demo test test-real test-stack test-heavy figures dagster mlflow airflow serve ui observe loadtest deploy-check bento api-image bento-requirements up down logs status clean bench postgres

$(UV):
	@command -v python3 >/dev/null || { echo "readmit needs python3 (3.11) on PATH" >&2; exit 1; }
	@python3 -m venv --clear $(TOOLS)/uv-venv || { echo "python3 cannot create a virtual environment: \
	on Debian/Ubuntu install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
	$(TOOLS)/uv-venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	mkdir -p $(TOOLS)/bin && ln -sf ../uv-venv/bin/uv $(TOOLS)/bin/uv && ln -sf ../uv-venv/bin/uvx $(TOOLS)/bin/uvx

install: $(UV) ## create .venv with every dependency group from uv.lock
	$(UV) sync --frozen --all-groups

demo: install ## run the main job on the embedded default: every batch, no servers
	umask 077 && $(RUN) readmit demo

# One pytest worker per core plus one, at most four (pytest-xdist; whole files per worker, so module fixtures are
# made once): the tests wait on processes they start and on shared templates, and a third worker on two cores
# fills those waits (make test 388 s with two, 360 s with three: docs/benchmarks.md). `uv run pytest FILE` by
# hand stays a single process.
# (nproc without the OpenMP variables, which it honours: an exported OMP_NUM_THREADS=1 is not one core.)
CORES := $(shell env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)
TEST_WORKERS ?= $(shell echo $$(( $(CORES) + 1 < 4 ? $(CORES) + 1 : 4 )))

# The whole-tick fault tests (`faults`) run with the stack tests: each kills or starves one or two full ticks, and
# together they were a fifth of make test's time. make test keeps two end-to-end kills and the writer-level crash
# tests (docs/benchmarks.md, issue #29's eighth part).
test: install ## unit, contract and graph tests, on synthetic data (the README's test command)
	$(RUN) pytest -m "not stack and not realdata and not faults" -n $(TEST_WORKERS) --dist loadfile

test-real: install ## the same behaviours on the real UCI data (READMIT_SOURCE; skipped where it is absent)
	$(RUN) pytest -m "realdata and not stack" -n $(TEST_WORKERS) --dist loadfile

system-packages: ## Debian packages for the stack tests (chromium, prometheus); root
	bash scripts/system_packages.sh

# The stack tests spend much of their time waiting on the servers they start (an MLflow outage, Airflow's
# retries, a browser): one worker per core, at most four, whole files per worker (each starts its own servers
# on free ports; PostgreSQL databases have random names). 712 s on two cores, 1,348 s of test time.
STACK_WORKERS ?= $(shell echo $$(( $(CORES) < 4 ? $(CORES) : 4 )))

test-stack: install postgres system-packages ## tests against real servers on loopback (Postgres, MLflow server, moto S3), and the whole-tick fault tests
	$(RUN) pytest -m "stack or faults" -n $(STACK_WORKERS) --dist loadfile

# What .ci/run runs after the quickstart: the real-data and the stack tests in one pytest run, so the real demo
# and the real-data fits use the cores while the stack tests wait on their servers (809 s on two cores, where
# make test-real then make test-stack took 610 s + 712 s: docs/benchmarks.md).
test-heavy: install postgres system-packages ## make test-real and make test-stack in one run (what CI runs)
	$(RUN) pytest -m "realdata or stack or faults" -n $(TEST_WORKERS) --dist loadfile

figures: install postgres system-packages ## refresh the figures docs/ shows (end-to-end timings, UI screenshots) from a stack run
	$(RUN) pytest -m stack tests/stack/test_end_to_end.py tests/stack/test_ui_browser.py --figures-dir docs

dagster: install ## the Dagster UI on the instance the pipeline writes to
	umask 077 && $(RUN) python -c "from assets.pipeline import open_instance; from assets.settings import Settings; open_instance(Settings.from_env())"
	umask 077 && DAGSTER_HOME=$(READMIT_HOME)/dagster $(RUN) dagster dev -h 127.0.0.1 -p $(DAGSTER_PORT)

mlflow: install ## MLflow tracking server + UI (http://127.0.0.1:5000); Postgres/S3 via the variables above
	umask 077 && mkdir -p $(READMIT_HOME)
	umask 077 && $(RUN) mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1 \
	  --backend-store-uri $(MLFLOW_BACKEND_STORE_URI) --artifacts-destination $(MLFLOW_ARTIFACTS_DESTINATION) \
	  --allowed-hosts "127.0.0.1:$(MLFLOW_PORT),localhost:$(MLFLOW_PORT),$(MLFLOW_ALLOWED_HOSTS)"

airflow: install ## Airflow 3 standalone (http://127.0.0.1:8080), DAG readmit_assets unpaused; login in README
	umask 077 && $(UV) run --frozen bash scripts/airflow.sh

serve: install ## the prediction API on http://127.0.0.1:3000 (model: the registry's production alias)
	OMP_NUM_THREADS=1 $(RUN) bentoml serve bento.service:ReadmissionService --host 127.0.0.1 --port $(API_PORT)

ui: install ## the Streamlit app on http://127.0.0.1:8501 (calls the API at READMIT_API_URL)
	$(RUN) streamlit run ui/app.py --server.address 127.0.0.1 --server.port $(UI_PORT) --server.headless true --browser.gatherUsageStats false

observe: install ## Prometheus on http://127.0.0.1:9090 scraping the local API (Debian package prometheus)
	mkdir -p $(READMIT_HOME)/prometheus
	@command -v prometheus >/dev/null || { echo "make observe needs Prometheus: make system-packages (Debian package prometheus)" >&2; exit 1; }
	prometheus --config.file=observability/prometheus/prometheus.yml --storage.tsdb.path=$(READMIT_HOME)/prometheus \
	  --web.listen-address=127.0.0.1:9090

loadtest: install ## Locust step load against the API (make serve first); reports to docs/locust_results/
	$(RUN) python -m observability.locust.step_load --host http://127.0.0.1:$(API_PORT)

deploy-check: install ## validate compose and kustomize manifests offline (no Docker, no cluster)
	$(RUN) pytest -q tests/deploy

bento-requirements: $(UV) ## re-export bento/requirements.txt (project + serve group only) from uv.lock; a test fails when stale
	$(UV) export --frozen --no-default-groups --no-hashes --no-emit-project --group serve > bento/requirements.txt

bento: install ## build the Bento readmit:$(VERSION), packing the model that is in production now as its fallback
	$(RUN) python -m bento.packing
	$(RUN) bentoml delete --yes readmit:$(VERSION) >/dev/null 2>&1 || true
	$(RUN) bentoml build -f bento/bentofile.yaml --version $(VERSION) .

api-image: bento ## the API image k8s runs (readmit/api:$(VERSION)): the Bento, containerized (needs Docker)
	$(RUN) bentoml containerize readmit:$(VERSION) --image-tag readmit/api:$(VERSION)

up: install ## every service as a local process (MLflow, Dagster, Airflow, API, Streamlit, Prometheus)
	bash scripts/up.sh

down: ## stop what make up started
	bash scripts/down.sh

logs: ## follow the logs of make up
	tail -n 100 -f $(READMIT_HOME)/stack/stack.log

postgres: ## start the local PostgreSQL 15 cluster and the readmit role the stack tests use (root)
	bash scripts/postgres.sh

status: install
	$(RUN) readmit status

bench: install ## benchmarks that print ratios side by side
	$(RUN) python -m benchmarks.ingest
	$(RUN) python -m benchmarks.model_quality
	$(RUN) python -m benchmarks.tick_parts

clean: ## forget all runtime state under READMIT_HOME (the venv and .tools/ stay)
	rm -rf $(READMIT_HOME)
