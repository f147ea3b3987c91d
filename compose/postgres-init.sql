-- One PostgreSQL, three databases: MLflow's backend store, Airflow's metadata, Dagster's storage.
CREATE DATABASE mlflow;
CREATE DATABASE airflow;
CREATE DATABASE dagster;
