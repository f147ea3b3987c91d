#!/usr/bin/env bash
# `make up`: every readmit service as a local process under one supervisor (honcho), health-checked
# with a deadline, then a table of URLs and logins. `make down` stops them; `make logs` follows them.
# State stays under READMIT_HOME. Ports: MLFLOW_PORT DAGSTER_PORT AIRFLOW_PORT API_PORT UI_PORT PROMETHEUS_PORT
# PUSHGATEWAY_PORT ALERTMANAGER_PORT ALERT_SINK_PORT (the last three run when their Debian packages are installed).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
: "${READMIT_HOME:=$repo/.readmit}"
: "${MLFLOW_PORT:=5000}" "${DAGSTER_PORT:=3070}" "${AIRFLOW_PORT:=8080}" "${API_PORT:=3000}" "${UI_PORT:=8501}" "${PROMETHEUS_PORT:=9090}"
: "${PUSHGATEWAY_PORT:=9091}" "${ALERTMANAGER_PORT:=9093}" "${ALERT_SINK_PORT:=9096}"
observe=0; command -v prometheus >/dev/null && command -v prometheus-pushgateway >/dev/null \
  && command -v prometheus-alertmanager >/dev/null && observe=1
stack="$READMIT_HOME/stack"
mkdir -p "$stack" "$READMIT_HOME/dagster"
if [ -f "$stack/honcho.pid" ] && kill -0 "$(cat "$stack/honcho.pid")" 2>/dev/null; then
  echo "readmit is already up (pid $(cat "$stack/honcho.pid")); make down first"; exit 0
fi
bin="$repo/.venv/bin"
for port in "$MLFLOW_PORT" "$DAGSTER_PORT" "$AIRFLOW_PORT" "$API_PORT" "$UI_PORT" "$PROMETHEUS_PORT" \
           "$PUSHGATEWAY_PORT" "$ALERTMANAGER_PORT" "$ALERT_SINK_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use: stop what listens there or choose another (see make up's port variables)"; exit 1
  fi
done

# MLflow's backend store and the Dagster instance (runs, events, schedules): the local PostgreSQL when it
# answers, else sqlite under READMIT_HOME. Each home gets its own Dagster database, so two homes never mix
# their batches and runs; a home that already has a dagster.yaml keeps its storage (nothing moves silently).
backend="sqlite:///$READMIT_HOME/mlflow.db"
dagster_db="readmit_dagster_$(printf %s "$READMIT_HOME" | sha1sum | cut -c1-10)"
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 \
   && DAGSTER_DB="$dagster_db" "$bin/python" - <<'PY' 2>/dev/null
import os
import psycopg2
c = psycopg2.connect("postgresql://readmit:readmit@127.0.0.1:5432/postgres"); c.autocommit = True
cur = c.cursor()
for name in ("readmit_mlflow", os.environ["DAGSTER_DB"]):
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    cur.fetchone() or cur.execute(f'CREATE DATABASE "{name}"')
PY
then
  backend="postgresql+psycopg2://readmit:readmit@127.0.0.1:5432/readmit_mlflow"
  [ -f "$READMIT_HOME/dagster/dagster.yaml" ] || cat > "$READMIT_HOME/dagster/dagster.yaml" <<YAML
# Written by make up: PostgreSQL answered, so the instance lives there (dagster-postgres), as in compose.
storage:
  postgres:
    postgres_url: postgresql+psycopg2://readmit:readmit@127.0.0.1:5432/$dagster_db
telemetry:
  enabled: false
YAML
fi
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$READMIT_HOME/mlartifacts}"
[ -f "$READMIT_HOME/dagster/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$READMIT_HOME/dagster/dagster.yaml"

# MLflow behind its basic-auth app (only the gate can promote): an admin, the pipeline's user (may register and
# move @production) and the API's user (read only). Passwords are generated once into a file only root reads.
users="$stack/mlflow-users.env"
if [ ! -f "$users" ]; then
  token() { "$bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))'; }
  umask 077
  cat > "$users" <<USERS
READMIT_MLFLOW_ADMIN_USERNAME=admin
READMIT_MLFLOW_ADMIN_PASSWORD=$(token)
READMIT_MLFLOW_PIPELINE_USERNAME=pipeline
READMIT_MLFLOW_PIPELINE_PASSWORD=$(token)
READMIT_MLFLOW_API_USERNAME=api
READMIT_MLFLOW_API_PASSWORD=$(token)
MLFLOW_FLASK_SERVER_SECRET_KEY=$(token)
USERS
  umask 022
fi
set -a; . "$users"; set +a
"$bin/python" -m assets.resources.mlflow_auth config "$stack/mlflow-auth.ini" "sqlite:///$READMIT_HOME/mlflow-auth.db"
printf 'MLFLOW_TRACKING_USERNAME=%s\nMLFLOW_TRACKING_PASSWORD=%s\n' "$READMIT_MLFLOW_API_USERNAME" \
  "$READMIT_MLFLOW_API_PASSWORD" > "$stack/api-mlflow.env" && chmod 600 "$stack/api-mlflow.env"
as_api="set -a; . $stack/api-mlflow.env; set +a; exec"  # the API and the UI read the registry as the API user

cat > "$stack/.env" <<ENV
READMIT_HOME=$READMIT_HOME
READMIT_MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT
READMIT_API_URL=http://127.0.0.1:$API_PORT
DAGSTER_HOME=$READMIT_HOME/dagster
OMP_NUM_THREADS=1
AIRFLOW_PORT=$AIRFLOW_PORT
MLFLOW_AUTH_CONFIG_PATH=$stack/mlflow-auth.ini
MLFLOW_FLASK_SERVER_SECRET_KEY=$MLFLOW_FLASK_SERVER_SECRET_KEY
MLFLOW_TRACKING_USERNAME=$READMIT_MLFLOW_PIPELINE_USERNAME
MLFLOW_TRACKING_PASSWORD=$READMIT_MLFLOW_PIPELINE_PASSWORD
ENV
[ "$observe" = 1 ] && echo "READMIT_PUSHGATEWAY_URL=http://127.0.0.1:$PUSHGATEWAY_PORT" >> "$stack/.env"
chmod 600 "$stack/.env"
sed "s/127.0.0.1:3000/127.0.0.1:$API_PORT/; s/127.0.0.1:9090/127.0.0.1:$PROMETHEUS_PORT/; s|rules.yml|$repo/observability/prometheus/rules.yml|
     s/127.0.0.1:9091/127.0.0.1:$PUSHGATEWAY_PORT/; s/127.0.0.1:9093/127.0.0.1:$ALERTMANAGER_PORT/" \
  "$repo/observability/prometheus/prometheus.yml" > "$stack/prometheus.yml"
sed "s/127.0.0.1:9096/127.0.0.1:$ALERT_SINK_PORT/" "$repo/observability/alertmanager/alertmanager.yml" > "$stack/alertmanager.yml"
{
  echo "mlflow: $bin/mlflow server --app-name basic-auth --host 127.0.0.1 --port $MLFLOW_PORT --workers 1 --backend-store-uri $backend --artifacts-destination $artifacts --allowed-hosts 127.0.0.1:$MLFLOW_PORT,localhost:$MLFLOW_PORT"
  echo "dagster: $bin/dagster dev -h 127.0.0.1 -p $DAGSTER_PORT"  # the code location: [tool.dagster] in pyproject.toml
  echo "airflow: bash $repo/scripts/airflow.sh"
  echo "api: bash -c '$as_api $bin/bentoml serve bento.service:ReadmissionService --host 127.0.0.1 --port $API_PORT'"
  echo "ui: bash -c '$as_api $bin/streamlit run $repo/ui/app.py --server.address 127.0.0.1 --server.port $UI_PORT --server.headless true --browser.gatherUsageStats false'"
  if [ "$observe" = 1 ]; then
    echo "prometheus: prometheus --config.file=$stack/prometheus.yml --storage.tsdb.path=$READMIT_HOME/prometheus --web.listen-address=127.0.0.1:$PROMETHEUS_PORT"
    echo "pushgateway: prometheus-pushgateway --web.listen-address=127.0.0.1:$PUSHGATEWAY_PORT"
    echo "alertmanager: prometheus-alertmanager --config.file=$stack/alertmanager.yml --storage.path=$READMIT_HOME/alertmanager --web.listen-address=127.0.0.1:$ALERTMANAGER_PORT --cluster.listen-address="
    echo "alerts: $bin/python -m observability.alert_sink --port $ALERT_SINK_PORT --out $READMIT_HOME/alerts.jsonl"
  fi
} > "$stack/Procfile"

cd "$repo"
PATH="$bin:$PATH" setsid "$bin/honcho" -f "$stack/Procfile" -e "$stack/.env" -d "$repo" start > "$stack/stack.log" 2>&1 &
echo $! > "$stack/honcho.pid"

wait_for() {  # name url deadline-seconds
  local deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null "$2" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then echo "  $1 did not become healthy at $2 (see make logs)"; return 1; fi
    kill -0 "$(cat "$stack/honcho.pid")" 2>/dev/null || { echo "the supervisor exited: see $stack/stack.log"; exit 1; }
    sleep 1
  done
  echo "  $1 healthy"
}
echo "waiting for services (MLflow backend: ${backend%%:*})..."
status=0
wait_for MLflow "http://127.0.0.1:$MLFLOW_PORT/health" 300 || status=1
"$bin/python" -m assets.resources.mlflow_auth provision "http://127.0.0.1:$MLFLOW_PORT" || status=1
wait_for API "http://127.0.0.1:$API_PORT/livez" 120 || status=1
wait_for Streamlit "http://127.0.0.1:$UI_PORT/_stcore/health" 120 || status=1
wait_for Dagster "http://127.0.0.1:$DAGSTER_PORT/server_info" 180 || status=1
wait_for Airflow "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" 240 || status=1
if [ "$observe" = 1 ]; then
  wait_for Prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" 60 || status=1
  wait_for Pushgateway "http://127.0.0.1:$PUSHGATEWAY_PORT/-/ready" 60 || status=1
  wait_for Alertmanager "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready" 60 || status=1
else
  echo "  Prometheus, Pushgateway and Alertmanager skipped: make system-packages installs them"
fi
cat <<TABLE

  service     URL                                  login
  Airflow     http://127.0.0.1:$AIRFLOW_PORT               ${READMIT_AIRFLOW_USER:-admin} / \$READMIT_AIRFLOW_PASSWORD (else: $READMIT_HOME/airflow/simple_auth_manager_passwords.json.generated)
  Dagster     http://127.0.0.1:$DAGSTER_PORT               -
  MLflow      http://127.0.0.1:$MLFLOW_PORT               admin / READMIT_MLFLOW_ADMIN_PASSWORD in $stack/mlflow-users.env
  API         http://127.0.0.1:$API_PORT/               bearer \$READMIT_API_KEY when set
  Streamlit   http://127.0.0.1:$UI_PORT               -
  Prometheus  http://127.0.0.1:$PROMETHEUS_PORT               -
  Pushgateway http://127.0.0.1:$PUSHGATEWAY_PORT               -   (per-batch monitoring gauges)
  Alertmanager http://127.0.0.1:$ALERTMANAGER_PORT              -   (notifications: $READMIT_HOME/alerts.jsonl)

  logs: make logs   stop: make down   (the API is ready once a model is promoted: Airflow's first tick, or readmit demo)
TABLE
exit $status
