"""Airflow's login in compose: READMIT_AIRFLOW_USER / READMIT_AIRFLOW_PASSWORD into the simple auth manager's file.

Without it Airflow generates a password and prints it to the log. The file is written mode 600 for the
container's user and never echoed; the password reaches this process through the environment, not argv.
"""
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
password = os.environ["READMIT_AIRFLOW_PASSWORD"]
if not password:
    raise SystemExit("READMIT_AIRFLOW_PASSWORD is empty: set it in compose/.env")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as file:
    json.dump({os.environ["READMIT_AIRFLOW_USER"]: password}, file)
os.chmod(path, 0o600)  # an older file keeps its mode on O_CREAT
print(f"Airflow login ready for {os.environ['READMIT_AIRFLOW_USER']} ({path}, mode 600)")
