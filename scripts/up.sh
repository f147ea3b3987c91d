#!/usr/bin/env bash
# `make up`: every readmit service as a local process under one supervisor (honcho), health-checked
# with a deadline, then a table of URLs, logins and the files that keep their passwords. `make down` stops
# them; `make logs` follows them. State stays under READMIT_HOME, private to this user (umask 077).
# Public ports: MLFLOW_PORT DAGSTER_PORT AIRFLOW_PORT API_PORT UI_PORT PROMETHEUS_PORT PUSHGATEWAY_PORT
# ALERTMANAGER_PORT ALERT_SINK_PORT (the last four run when their Debian packages are installed). Dagster's
# webserver and Streamlit listen on internal loopback ports (DAGSTER_WEB_PORT, DAGSTER_GRPC_PORT,
# UI_BACKEND_PORT: free ports unless set) behind Caddy (compose/front/Caddyfile), which asks for a login.
# Every credential is generated once into $READMIT_HOME/stack/secrets (mode 600) and handed only to the
# processes that use it (scripts/run_with.sh and the env files under $READMIT_HOME/stack/env).
set -euo pipefail
umask 077  # the lake, raw arrivals, MLflow artifacts, logs and secrets: files 0600, folders 0700
# No usage reports to vendors from any service (MLflow 3 and BentoML report by default: assets/settings.py NO_TELEMETRY).
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}" BENTOML_DO_NOT_TRACK="${BENTOML_DO_NOT_TRACK:-true}" \
  DO_NOT_TRACK="${DO_NOT_TRACK:-true}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
: "${READMIT_HOME:=$repo/.readmit}"
: "${MLFLOW_PORT:=5000}" "${DAGSTER_PORT:=3070}" "${AIRFLOW_PORT:=8080}" "${API_PORT:=3000}" "${UI_PORT:=8501}" "${PROMETHEUS_PORT:=9090}"
: "${PUSHGATEWAY_PORT:=9091}" "${ALERTMANAGER_PORT:=9093}" "${ALERT_SINK_PORT:=9096}"
bin="$repo/.venv/bin"
free_port() { "$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
: "${DAGSTER_WEB_PORT:=$(free_port)}" "${DAGSTER_GRPC_PORT:=$(free_port)}" "${UI_BACKEND_PORT:=$(free_port)}"
observe=0; command -v prometheus >/dev/null && command -v prometheus-pushgateway >/dev/null \
  && command -v prometheus-alertmanager >/dev/null && observe=1
if ! command -v caddy >/dev/null; then
  echo "make up needs Caddy in front of Dagster and Streamlit (they have no login): make system-packages"; exit 1
fi
stack="$READMIT_HOME/stack" secrets="$READMIT_HOME/stack/secrets" envs="$READMIT_HOME/stack/env"
mkdir -p "$stack" "$secrets" "$envs" "$READMIT_HOME/dagster"
chmod 700 "$READMIT_HOME" "$stack" "$secrets" "$envs"
if [ -f "$stack/honcho.pid" ] && kill -0 "$(cat "$stack/honcho.pid")" 2>/dev/null; then
  echo "readmit is already up (pid $(cat "$stack/honcho.pid")); make down first"; exit 0
fi
for port in "$MLFLOW_PORT" "$DAGSTER_PORT" "$AIRFLOW_PORT" "$API_PORT" "$UI_PORT" "$PROMETHEUS_PORT" \
           "$PUSHGATEWAY_PORT" "$ALERTMANAGER_PORT" "$ALERT_SINK_PORT" "$DAGSTER_WEB_PORT" "$DAGSTER_GRPC_PORT" "$UI_BACKEND_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use: stop what listens there or choose another (see make up's port variables)"; exit 1
  fi
done
printf 'DAGSTER_WEB_PORT=%s\nDAGSTER_GRPC_PORT=%s\nUI_BACKEND_PORT=%s\n' "$DAGSTER_WEB_PORT" "$DAGSTER_GRPC_PORT" \
  "$UI_BACKEND_PORT" > "$stack/internal-ports.env"

# Passwords: generated once, one file each, never printed, never on a command line or in the supervisor's env.
secret() {  # NAME: make sure $secrets/NAME holds a password
  [ -s "$secrets/$1" ] || "$bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$secrets/$1"
}
bcrypt_of() {  # NAME: the bcrypt hash of $secrets/NAME (what the web configs hold), computed once
  if [ ! -s "$secrets/$1.bcrypt" ] || [ "$secrets/$1" -nt "$secrets/$1.bcrypt" ]; then
    caddy hash-password < "$secrets/$1" > "$secrets/$1.bcrypt"
  fi
  cat "$secrets/$1.bcrypt"
}
kv() { printf "%s='%s'\n" "$1" "$2"; }  # one line of an env file sourced by scripts/run_with.sh
for name in operator clinician prometheus pushgateway-pipeline alertmanager api-key postgres-mlflow postgres-dagster; do
  secret "$name"
done
[ -n "${READMIT_API_KEY:-}" ] && printf '%s\n' "$READMIT_API_KEY" > "$secrets/api-key"  # yours, when you give one
# The pipeline signs the digests of every model file it registers; every loader verifies them before unpickling.
"$bin/python" -m assets.resources.model_files keygen "$secrets" > /dev/null

# MLflow's backend store and the Dagster instance (runs, events, schedules): the local PostgreSQL when it
# answers, else sqlite under READMIT_HOME. Each home gets its own two databases, each owned by a role of its
# own with a generated password (no other role may connect); the bootstrap login (READMIT_PG_BOOTSTRAP_DSN,
# default the local test role scripts/postgres.sh makes) only creates them. A home that already has a
# dagster.yaml keeps its storage (nothing moves silently).
backend="sqlite:///$READMIT_HOME/mlflow.db"
suffix="$(printf %s "$READMIT_HOME" | sha1sum | cut -c1-10)"
mlflow_db="readmit_mlflow_$suffix" dagster_db="readmit_dagster_$suffix"
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 \
   && PG_BOOTSTRAP="${READMIT_PG_BOOTSTRAP_DSN:-postgresql://readmit:readmit@127.0.0.1:5432/postgres}" \
      DATABASES="$mlflow_db=$secrets/postgres-mlflow $dagster_db=$secrets/postgres-dagster" \
      "$bin/python" - <<'PY' 2>"$stack/postgres.log"
import os
import psycopg2
from psycopg2 import sql

connection = psycopg2.connect(os.environ["PG_BOOTSTRAP"]); connection.autocommit = True
cur = connection.cursor()
for pair in os.environ["DATABASES"].split():
    name, password_file = pair.split("=", 1)
    role, password = sql.Identifier(name), open(password_file).read().strip()
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    cur.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s").format(role), (password,))
    cur.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))  # to create a database it owns
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    cur.fetchone() or cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
    cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(role))
PY
then
  backend="postgresql+psycopg2://$mlflow_db:$(cat "$secrets/postgres-mlflow")@127.0.0.1:5432/$mlflow_db"
  [ -f "$READMIT_HOME/dagster/dagster.yaml" ] || cat > "$READMIT_HOME/dagster/dagster.yaml" <<YAML
# Written by make up: PostgreSQL answered, so the instance lives there (dagster-postgres), as in compose.
# Its role's password is generated ($secrets/postgres-dagster); this file is mode 600. Run monitoring: a run
# whose process died is failed, so it cannot hold the one-run queue forever (assets/pipeline.py INSTANCE_CONFIG).
run_launcher:
  module: assets.run_launcher
  class: WatchedRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
storage:
  postgres:
    postgres_url: postgresql+psycopg2://$dagster_db:$(cat "$secrets/postgres-dagster")@127.0.0.1:5432/$dagster_db
telemetry:
  enabled: false
YAML
elif pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "PostgreSQL answered but its roles could not be made (see $stack/postgres.log; bash scripts/postgres.sh): sqlite"
fi
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$READMIT_HOME/mlartifacts}"
[ -f "$READMIT_HOME/dagster/dagster.yaml" ] || DAGSTER_HOME="$READMIT_HOME/dagster" "$bin/python" -c \
  "from assets.pipeline import open_instance; from assets.settings import Settings; open_instance(Settings.from_env())"
cat > "$stack/workspace.yaml" <<YAML
# The code location runs as its own process (dagster code-server: it holds the pipeline's credentials, and
# runs start as its children); the webserver and the daemon only talk to it.
load_from:
  - grpc_server: {host: 127.0.0.1, port: $DAGSTER_GRPC_PORT, location_name: readmit}
YAML

# MLflow behind its basic-auth app (only the gate can promote): an admin, the pipeline's user (may register and
# move @production) and the API's user (read only).
users="$stack/mlflow-users.env"
if [ ! -f "$users" ]; then
  token() { "$bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))'; }
  cat > "$users" <<USERS
READMIT_MLFLOW_ADMIN_USERNAME=admin
READMIT_MLFLOW_ADMIN_PASSWORD=$(token)
READMIT_MLFLOW_PIPELINE_USERNAME=pipeline
READMIT_MLFLOW_PIPELINE_PASSWORD=$(token)
READMIT_MLFLOW_API_USERNAME=api
READMIT_MLFLOW_API_PASSWORD=$(token)
MLFLOW_FLASK_SERVER_SECRET_KEY=$(token)
USERS
fi
chmod 600 "$users"
user_value() { sed -n "s/^$1=//p" "$users"; }  # read, never exported: this script's children see none of it
(set -a; . "$users"; set +a
 exec "$bin/python" -m assets.resources.mlflow_auth config "$stack/mlflow-auth.ini" "sqlite:///$READMIT_HOME/mlflow-auth.db")

# One env file per kind of process: what it may know, nothing more.
{ kv MLFLOW_AUTH_CONFIG_PATH "$stack/mlflow-auth.ini"; kv MLFLOW_FLASK_SERVER_SECRET_KEY "$(user_value MLFLOW_FLASK_SERVER_SECRET_KEY)"
  kv MLFLOW_BACKEND_STORE_URI "$backend"; } > "$envs/mlflow.env"   # the MLflow server (its admin is in the ini)
{ kv MLFLOW_TRACKING_USERNAME "$(user_value READMIT_MLFLOW_PIPELINE_USERNAME)"
  kv MLFLOW_TRACKING_PASSWORD "$(user_value READMIT_MLFLOW_PIPELINE_PASSWORD)"
  kv READMIT_MODEL_SIGNING_KEY "$secrets/model-signing.pem"; kv READMIT_MODEL_VERIFY_KEY "$secrets/model-verify.pem"
  if [ "$observe" = 1 ]; then
    kv READMIT_PUSHGATEWAY_URL "http://127.0.0.1:$PUSHGATEWAY_PORT"; kv READMIT_PUSHGATEWAY_USERNAME pipeline
    kv READMIT_PUSHGATEWAY_PASSWORD "$(cat "$secrets/pushgateway-pipeline")"
  fi; } > "$envs/pipeline.env"   # Dagster's code server and Airflow: they train, register, promote and push
{ [ -z "${READMIT_AIRFLOW_PASSWORD:-}" ] || kv READMIT_AIRFLOW_PASSWORD "$READMIT_AIRFLOW_PASSWORD"; } > "$envs/airflow.env"
{ kv MLFLOW_TRACKING_USERNAME "$(user_value READMIT_MLFLOW_API_USERNAME)"
  kv MLFLOW_TRACKING_PASSWORD "$(user_value READMIT_MLFLOW_API_PASSWORD)"
  kv READMIT_API_KEY "$(cat "$secrets/api-key")"; kv READMIT_REQUIRE_API_KEY 1
  kv READMIT_MODEL_VERIFY_KEY "$secrets/model-verify.pem"; } > "$envs/api.env"  # the API and the UI
{ kv READMIT_FRONT_BIND 127.0.0.1; kv XDG_CONFIG_HOME "$stack/caddy"; kv XDG_DATA_HOME "$stack/caddy"
  kv READMIT_FRONT_DAGSTER_PORT "$DAGSTER_PORT"; kv READMIT_FRONT_DAGSTER_UPSTREAM "127.0.0.1:$DAGSTER_WEB_PORT"
  kv READMIT_FRONT_DAGSTER_USER operator; kv READMIT_FRONT_DAGSTER_HASH "$(bcrypt_of operator)"
  kv READMIT_FRONT_UI_PORT "$UI_PORT"; kv READMIT_FRONT_UI_UPSTREAM "127.0.0.1:$UI_BACKEND_PORT"
  kv READMIT_FRONT_UI_USER clinician; kv READMIT_FRONT_UI_HASH "$(bcrypt_of clinician)"; } > "$envs/front.env"

cat > "$stack/.env" <<ENV
READMIT_HOME=$READMIT_HOME
READMIT_MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT
READMIT_API_URL=http://127.0.0.1:$API_PORT
DAGSTER_HOME=$READMIT_HOME/dagster
OMP_NUM_THREADS=1
AIRFLOW_PORT=$AIRFLOW_PORT
ENV
if [ "$observe" = 1 ]; then
  # Prometheus logs in to itself, the Pushgateway and Alertmanager as `prometheus` (password_file
  # secrets/prometheus, relative to the config); people log in as `operator`; the pipeline pushes as `pipeline`.
  web_users() { echo "basic_auth_users:"; for login in "$@"; do echo "  ${login%%=*}: '$(bcrypt_of "${login#*=}")'"; done; }
  web_users operator=operator prometheus=prometheus > "$stack/prometheus-web.yml"
  web_users operator=operator prometheus=prometheus pipeline=pushgateway-pipeline > "$stack/pushgateway-web.yml"
  web_users operator=operator prometheus=prometheus > "$stack/alertmanager-web.yml"
  sed "s/127.0.0.1:3000/127.0.0.1:$API_PORT/; s/127.0.0.1:9090/127.0.0.1:$PROMETHEUS_PORT/; s|rules.yml|$repo/observability/prometheus/rules.yml|
       s/127.0.0.1:9091/127.0.0.1:$PUSHGATEWAY_PORT/; s/127.0.0.1:9093/127.0.0.1:$ALERTMANAGER_PORT/" \
    "$repo/observability/prometheus/prometheus.yml" > "$stack/prometheus.yml"
  sed "s/127.0.0.1:9096/127.0.0.1:$ALERT_SINK_PORT/" "$repo/observability/alertmanager/alertmanager.yml" > "$stack/alertmanager.yml"
fi
run="bash $repo/scripts/run_with.sh"
{
  echo "mlflow: $run $envs/mlflow.env -- $bin/mlflow server --app-name basic-auth --host 127.0.0.1 --port $MLFLOW_PORT --workers 1 --artifacts-destination $artifacts --allowed-hosts 127.0.0.1:$MLFLOW_PORT,localhost:$MLFLOW_PORT"
  echo "dagster-code: $run $envs/pipeline.env -- $bin/dagster code-server start -h 127.0.0.1 -p $DAGSTER_GRPC_PORT -m assets.definitions --location-name readmit"
  echo "dagster-daemon: $run -- $bin/dagster-daemon run -w $stack/workspace.yaml"
  echo "dagster-web: $run -- $bin/dagster-webserver -h 127.0.0.1 -p $DAGSTER_WEB_PORT -w $stack/workspace.yaml"
  echo "front: $run $envs/front.env -- caddy run --config $repo/compose/front/Caddyfile --adapter caddyfile"
  echo "airflow: $run $envs/pipeline.env $envs/airflow.env -- bash $repo/scripts/airflow.sh"
  echo "api: $run $envs/api.env -- $bin/bentoml serve bento.service:ReadmissionService --host 127.0.0.1 --port $API_PORT"
  echo "ui: $run $envs/api.env -- $bin/streamlit run $repo/ui/app.py --server.address 127.0.0.1 --server.port $UI_BACKEND_PORT --server.headless true --browser.gatherUsageStats false"
  if [ "$observe" = 1 ]; then
    echo "prometheus: $run -- prometheus --config.file=$stack/prometheus.yml --web.config.file=$stack/prometheus-web.yml --storage.tsdb.path=$READMIT_HOME/prometheus --web.listen-address=127.0.0.1:$PROMETHEUS_PORT"
    echo "pushgateway: $run -- prometheus-pushgateway --web.config.file=$stack/pushgateway-web.yml --persistence.file=$READMIT_HOME/pushgateway.db --web.listen-address=127.0.0.1:$PUSHGATEWAY_PORT"
    echo "alertmanager: $run -- prometheus-alertmanager --config.file=$stack/alertmanager.yml --web.config.file=$stack/alertmanager-web.yml --storage.path=$READMIT_HOME/alertmanager --web.listen-address=127.0.0.1:$ALERTMANAGER_PORT --cluster.listen-address="
    echo "alerts: $run -- $bin/python -m observability.alert_sink --port $ALERT_SINK_PORT --out $READMIT_HOME/alerts.jsonl --user alertmanager --password-file $secrets/alertmanager"
  fi
} > "$stack/Procfile"

cd "$repo"
# The supervisor (and so every process) starts without any credential the caller's shell may hold, and
# without its AIRFLOW_HOME: the stack's Airflow lives under READMIT_HOME, where the table says its login is.
PATH="$bin:$PATH" setsid env -u AIRFLOW_HOME -u READMIT_AIRFLOW_PASSWORD -u READMIT_API_KEY -u READMIT_PUSHGATEWAY_PASSWORD \
  -u MLFLOW_TRACKING_USERNAME -u MLFLOW_TRACKING_PASSWORD -u READMIT_MLFLOW_ADMIN_PASSWORD \
  -u READMIT_MLFLOW_PIPELINE_PASSWORD -u READMIT_MLFLOW_API_PASSWORD -u MLFLOW_FLASK_SERVER_SECRET_KEY \
  -u READMIT_PG_BOOTSTRAP_DSN -u MLFLOW_BACKEND_STORE_URI -u MLFLOW_TRACKING_URI -u MLFLOW_REGISTRY_URI \
  "$bin/honcho" -f "$stack/Procfile" -e "$stack/.env" -d "$repo" start > "$stack/stack.log" 2>&1 &
echo $! > "$stack/honcho.pid"

wait_for() {  # name url deadline-seconds [login password-file]: the login goes to curl on stdin, not argv
  local deadline=$((SECONDS + $3)) config=""
  [ $# -lt 5 ] || config="user = \"$4:$(cat "$5")\""
  until curl -fsS -o /dev/null -K - "$2" <<<"$config" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then echo "  $1 did not become healthy at $2 (see make logs)"; return 1; fi
    kill -0 "$(cat "$stack/honcho.pid")" 2>/dev/null || { echo "the supervisor exited: see $stack/stack.log"; exit 1; }
    sleep 1
  done
  echo "  $1 healthy"
}
echo "waiting for services (MLflow backend: ${backend%%:*})..."
status=0
wait_for MLflow "http://127.0.0.1:$MLFLOW_PORT/health" 300 || status=1
# The admin makes the pipeline's and the API's users, the experiment and the registered model (only the
# pipeline may create more): the one step besides the MLflow server that holds the admin's password.
(set -a; . "$users"; set +a; exec "$bin/python" -m assets.resources.mlflow_auth provision "http://127.0.0.1:$MLFLOW_PORT") || status=1
wait_for API "http://127.0.0.1:$API_PORT/livez" 120 || status=1
wait_for Streamlit "http://127.0.0.1:$UI_PORT/_stcore/health" 120 || status=1
wait_for Dagster "http://127.0.0.1:$DAGSTER_PORT/server_info" 180 || status=1
wait_for Airflow "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" 240 || status=1
if [ "$observe" = 1 ]; then
  wait_for Prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" 60 operator "$secrets/operator" || status=1
  wait_for Pushgateway "http://127.0.0.1:$PUSHGATEWAY_PORT/-/ready" 60 operator "$secrets/operator" || status=1
  wait_for Alertmanager "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready" 60 operator "$secrets/operator" || status=1
else
  echo "  Prometheus, Pushgateway and Alertmanager skipped: make system-packages installs them"
fi
api_key="bearer token in $secrets/api-key"; [ -z "${READMIT_API_KEY:-}" ] || api_key="bearer \$READMIT_API_KEY (yours; kept in $secrets/api-key)"
cat <<TABLE

  service      URL                          login / where its password is kept (never printed)
  Airflow      http://127.0.0.1:$AIRFLOW_PORT        ${READMIT_AIRFLOW_USER:-admin} / $READMIT_HOME/airflow/simple_auth_manager_passwords.json.generated
  Dagster      http://127.0.0.1:$DAGSTER_PORT        operator / $secrets/operator
  MLflow       http://127.0.0.1:$MLFLOW_PORT        admin / READMIT_MLFLOW_ADMIN_PASSWORD in $users
  API          http://127.0.0.1:$API_PORT/       $api_key
  Streamlit    http://127.0.0.1:$UI_PORT        clinician / $secrets/clinician
  Prometheus   http://127.0.0.1:$PROMETHEUS_PORT        operator / $secrets/operator
  Pushgateway  http://127.0.0.1:$PUSHGATEWAY_PORT        operator / $secrets/operator   (the pipeline pushes as pipeline: $secrets/pushgateway-pipeline)
  Alertmanager http://127.0.0.1:$ALERTMANAGER_PORT        operator / $secrets/operator   (notifications: $READMIT_HOME/alerts.jsonl)

  curl: curl -u operator:"\$(cat $secrets/operator)" ...   logs: make logs   stop: make down
  (the API is ready once a model is promoted: Airflow's first tick, or readmit demo)
TABLE
exit $status
