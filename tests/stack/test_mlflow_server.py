"""MLflow as deployed: a tracking server on PostgreSQL with artifacts on S3, driven by the same code."""
import boto3
import mlflow
import numpy as np
import psycopg2
import pytest

from assets.encounters.schemas import feature_columns
from assets.model.portable import packaged
from assets.model.train import Hyperparameters, train_candidates
from assets.resources.registry import ModelRegistry

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    from assets.encounters.synthetic import generate_encounters
    from assets.encounters.labels import labelled_encounters

    clean, _ = labelled_encounters(generate_encounters(3_000, seed=2), "batch-001")
    candidates, holdout = train_candidates(clean, Hyperparameters(hgb_max_iter=30))
    return candidates[-1], holdout


def test_log_register_promote_and_load_by_alias_on_postgres_and_s3(mlflow_server, postgres_url, s3_endpoint, candidate):
    _, url = mlflow_server
    model_candidate, holdout = candidate
    registry = ModelRegistry(tracking_uri=url, model_name="readmission")
    with packaged(model_candidate.model, holdout[feature_columns()].head(20)) as package:
        run_id, model_uri = registry.log_candidate(model_candidate.model, model_candidate.metrics, {"candidate": "hgb"},
                                                   {"readmit.data_source": "synthetic"}, {}, package)
    first = registry.register(model_uri, tags={"roc_auc": "0.7"})
    registry.set_production(first.version)
    second = registry.register(model_uri, tags={"roc_auc": "0.71"})
    assert registry.production().version == first.version
    registry.set_production(second.version)
    assert registry.production().version == second.version

    mlflow.set_tracking_uri(url)
    loaded = mlflow.sklearn.load_model("models:/readmission@production")
    risk = loaded.predict(holdout[feature_columns()].head(10))
    np.testing.assert_allclose(risk, model_candidate.model.predict(holdout[feature_columns()].head(10)))

    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint)
            .list_objects_v2(Bucket="readmit", Prefix="mlartifacts/").get("Contents", [])]
    assert any(k.endswith("model.pkl") for k in keys), keys  # the model bytes live in S3
    with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT name, version FROM model_versions ORDER BY version")
        assert cursor.fetchall() == [("readmission", 1), ("readmission", 2)]
        cursor.execute("SELECT alias, version FROM registered_model_aliases")
        assert cursor.fetchall() == [("production", 2)]
        cursor.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", (run_id,))
        assert cursor.fetchone()[0] == 1
