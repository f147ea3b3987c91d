-- One PostgreSQL, one role per service, each the owner of its own databases and unable to open the others':
--   mlflow  : mlflow (backend store) and mlflow_auth (its basic-auth users)
--   airflow : airflow (metadata)
--   dagster : dagster (runs, events, schedules of the shared instance)
-- Runs once, on an empty data volume (docker-entrypoint-initdb.d), as the superuser, whose password stays in the
-- postgres container. Each role's password comes from this container's environment through psql's \getenv,
-- never from a command line; an unset one leaves :'...' unexpanded and the init fails (ON_ERROR_STOP).
\getenv mlflow_password READMIT_PG_MLFLOW_PASSWORD
\getenv airflow_password READMIT_PG_AIRFLOW_PASSWORD
\getenv dagster_password READMIT_PG_DAGSTER_PASSWORD
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE ROLE dagster LOGIN PASSWORD :'dagster_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE dagster OWNER dagster;
REVOKE ALL ON DATABASE mlflow, mlflow_auth, airflow, dagster FROM PUBLIC;
GRANT CONNECT ON DATABASE mlflow, mlflow_auth TO mlflow;
GRANT CONNECT ON DATABASE airflow TO airflow;
GRANT CONNECT ON DATABASE dagster TO dagster;
