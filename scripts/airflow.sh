#!/usr/bin/env bash
# `make airflow`: Airflow 3 standalone on the repo's DAG folder, sharing READMIT_HOME with the CLI.
# Login: READMIT_AIRFLOW_USER (default admin) / READMIT_AIRFLOW_PASSWORD (when unset, one is generated once).
# The password lives only in Airflow's own file (mode 600) and is never printed: this script names the file.
# Metadata DB: sqlite under READMIT_HOME, or READMIT_AIRFLOW_DB_URL.
set -euo pipefail
umask 077
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
# Written before Airflow starts, so its simple auth manager finds the user and neither generates nor prints one.
if [ -n "${READMIT_AIRFLOW_PASSWORD:-}" ]; then
  USER_NAME="$user" python - "$passwords" <<'PY'
import json, os, sys
with open(sys.argv[1], "w") as f:
    json.dump({os.environ["USER_NAME"]: os.environ["READMIT_AIRFLOW_PASSWORD"]}, f)
PY
elif ! USER_NAME="$user" python - "$passwords" <<'PY'
import json, os, sys
try:
    sys.exit(0 if os.environ["USER_NAME"] in json.load(open(sys.argv[1])) else 1)
except (OSError, ValueError):
    sys.exit(1)
PY
then
  USER_NAME="$user" python - "$passwords" <<'PY'
import json, os, secrets, sys
with open(sys.argv[1], "w") as f:
    json.dump({os.environ["USER_NAME"]: secrets.token_urlsafe(18)}, f)
PY
fi
chmod 600 "$passwords"
unset READMIT_AIRFLOW_PASSWORD  # Airflow's processes read the file, not this variable
echo "Airflow UI: http://127.0.0.1:$port  (login: $user; password in $passwords)"
exec airflow standalone
