-- One PostgreSQL: MLflow's backend store and its users (basic-auth), Airflow's metadata, Dagster's storage.
CREATE DATABASE mlflow;
CREATE DATABASE mlflow_auth;
CREATE DATABASE airflow;
CREATE DATABASE dagster;
