#!/usr/bin/env bash
# `make airflow`: Airflow 3 standalone on the repo's DAG folder, sharing READMIT_HOME with the CLI.
# Login: READMIT_AIRFLOW_USER (default admin) / READMIT_AIRFLOW_PASSWORD (when unset, Airflow generates
# one and this script prints it). Metadata DB: sqlite under READMIT_HOME, or READMIT_AIRFLOW_DB_URL.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
: "${READMIT_HOME:=$repo/.readmit}"
port="${AIRFLOW_PORT:-8080}"
user="${READMIT_AIRFLOW_USER:-admin}"
export READMIT_HOME
export AIRFLOW_HOME="${AIRFLOW_HOME:-$READMIT_HOME/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$repo/airflow/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=120  # the DAG is built from the Dagster graph: ~7 s to parse
# The DAG only changes with the code: re-parse every 5 minutes, not Airflow's 30 s (a parse is seconds of CPU).
export AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="${AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL:-300}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="$user:admin"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$port"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$port"
if [ -n "${READMIT_AIRFLOW_DB_URL:-}" ]; then
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$READMIT_AIRFLOW_DB_URL"
fi
mkdir -p "$AIRFLOW_HOME"
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
if [ -n "${READMIT_AIRFLOW_PASSWORD:-}" ]; then
  printf '{"%s": "%s"}\n' "$user" "$READMIT_AIRFLOW_PASSWORD" > "$passwords"
fi
echo "Airflow UI: http://127.0.0.1:$port  (login: $user; password in $passwords)"
exec airflow standalone
