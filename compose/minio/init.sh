#!/bin/sh
# minio-init: the buckets, and one MinIO user per service with only the access it needs. The root keys
# stay in the minio and minio-init containers; every other service holds its own user's keys.
#   pipeline (Airflow, Dagster): read and write the lake bucket `readmit`
#   mlflow (the tracking server): read and write the artifact bucket `mlflow`
#   api (k8s serving side): read the artifact bucket `mlflow`, nothing else
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing local/readmit
mc mb --ignore-existing local/mlflow
for policy in readmit-lake-rw mlflow-artifacts-rw mlflow-artifacts-ro; do
  mc admin policy create local "$policy" "/policies/$policy.json"
done
user() {  # name secret policy
  mc admin user add local "$1" "$2"
  mc admin policy attach local "$3" --user "$1" || true  # already attached on a re-run
}
user "$READMIT_S3_PIPELINE_USER" "$READMIT_S3_PIPELINE_PASSWORD" readmit-lake-rw
user "$READMIT_S3_MLFLOW_USER" "$READMIT_S3_MLFLOW_PASSWORD" mlflow-artifacts-rw
user "$READMIT_S3_API_USER" "$READMIT_S3_API_PASSWORD" mlflow-artifacts-ro
