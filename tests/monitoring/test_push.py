"""The Pushgateway sender against a real HTTP server on loopback that records what it is sent: the gauges and
labels alert rules read, the pipeline's login, and a gateway that is down or refuses never fails a batch."""
import base64
import logging

from assets.monitoring.push import JOB, OUTCOMES_JOB, RELEASE_JOB, push_batch_gauges, push_outcome_gauges, push_release_gauges
from assets.settings import Settings

log = logging.getLogger("test-push")


REPORT = {"summary": {"model_version": 2, "roc_auc": None, "ece": None, "max_psi": 0.3, "drift": "alarm",
                      "drift_unacknowledged": "warn", "rows": None, "pr_auc": None, "holdout_roc_auc": 0.68,
                      "estimated": {"roc_auc": 0.655, "roc_auc_low": 0.63, "roc_auc_high": 0.68, "pr_auc": None},
                      "pages": [], "drift_warnings": [
                          {"feature": "age_years", "psi": 0.3, "weight": 0.06, "acknowledged": False},
                          {"feature": "payer_code", "psi": 1.2, "weight": 0.024, "acknowledged": True}]},
          "psi": {"age_years": 0.3, "payer_code": 1.2, "__risk__": 0.1}}


def test_batch_gauges_carry_the_batch_the_version_and_the_pipelines_login(gateway):
    url, received, _ = gateway
    assert push_batch_gauges(url, "batch-007", REPORT, log, auth=("pipeline", "s3cret")) is True
    (push,) = received
    assert push["path"] == f"/metrics/job/{JOB}"
    assert push["auth"] == "Basic " + base64.b64encode(b"pipeline:s3cret").decode()
    body = push["body"]
    assert 'readmit_batch_estimated_roc_auc{batch="batch-007",model_version="2"} 0.655' in body
    assert 'readmit_batch_estimated_roc_auc_high{batch="batch-007",model_version="2"} 0.68' in body
    assert 'readmit_batch_holdout_roc_auc{batch="batch-007",model_version="2"} 0.68' in body
    assert 'readmit_batch_number{batch="batch-007",model_version="2"} 7.0' in body
    assert 'readmit_batch_judged{batch="batch-007",model_version="2"} 1.0' in body
    assert 'readmit_batch_page{batch="batch-007",kind="prediction_drift",model_version="2"} 0.0' in body
    assert 'readmit_batch_page{batch="batch-007",kind="estimated_drop",model_version="2"} 0.0' in body
    # payer_code (alarm) was acknowledged: the level the warning rule reads is the largest one nobody has
    assert 'readmit_batch_drift_level{batch="batch-007",model_version="2"} 1.0' in body
    assert 'readmit_batch_feature_psi{batch="batch-007",feature="age_years",model_version="2"} 0.3' in body
    assert ('readmit_batch_drift_weight{acknowledged="true",batch="batch-007",feature="payer_code",model_version="2"}'
            ' 0.024') in body
    assert "readmit_batch_roc_auc" not in body and "pr_auc" not in body  # not measured yet: not sent as 0


def test_outcome_gauges_carry_the_realised_figures_beside_the_estimate(gateway):
    url, received, _ = gateway
    summary = {"estimated": {"roc_auc": 0.655, "roc_auc_low": 0.63, "roc_auc_high": 0.68},
               "realised": {"model_version": 2, "roc_auc": 0.61, "holdout_roc_auc": 0.68, "estimate_error": 0.045,
                            "ece": None},
               "pages": ["realised ROC-AUC 0.610 is more than 0.05 below the holdout figure 0.680"]}
    assert push_outcome_gauges(url, "batch-005", summary, log, auth=("pipeline", "s3cret")) is True
    (push,) = received
    assert push["path"] == f"/metrics/job/{OUTCOMES_JOB}"
    body = push["body"]
    assert 'readmit_labelled_batch_roc_auc{batch="batch-005",model_version="2"} 0.61' in body
    assert 'readmit_labelled_batch_estimated_roc_auc_low{batch="batch-005",model_version="2"} 0.63' in body
    assert 'readmit_labelled_batch_estimate_error{batch="batch-005",model_version="2"} 0.045' in body
    assert "readmit_labelled_batch_ece" not in body
    assert "readmit_labelled_batch_judged" not in body  # given-up batches have a group of their own
    assert 'readmit_labelled_batch_page{batch="batch-005",kind="realised_drop",model_version="2"} 1.0' in body
    assert 'readmit_labelled_batch_page{batch="batch-005",kind="concept_drift",model_version="2"} 0.0' in body
    assert push_outcome_gauges(url, "batch-001", {"realised": None}, log, auth=("p", "q")) is False  # nothing judged


def test_a_batch_nothing_could_judge_is_sent_as_not_judged(gateway):
    url, received, _ = gateway
    push_batch_gauges(url, "batch-001", {"summary": {"model_version": None}, "psi": {}}, log, auth=("p", "q"))
    assert 'readmit_batch_judged{batch="batch-001",model_version="none"} 0.0' in received[0]["body"]


def test_release_gauges_say_when_and_how_often_from_settings(gateway):
    url, received, _ = gateway
    settings = Settings(pushgateway_url=url, pushgateway_username="pipeline", pushgateway_password="pw",
                        batch_interval_seconds=120, monitoring_stale_intervals=4)
    assert push_release_gauges(settings, "batch-002", "2026-12-01T00:00:00+00:00", log)
    body = received[0]["body"]
    assert received[0]["path"] == f"/metrics/job/{RELEASE_JOB}" and received[0]["auth"].startswith("Basic ")
    assert "readmit_batch_interval_seconds 120.0" in body and "readmit_monitoring_stale_intervals 4.0" in body
    assert "readmit_label_delay_batches 0.0" in body
    assert "readmit_batch_first_released_timestamp_seconds 1.7960832e+09" in body  # 2026-12-01T00:00Z
    assert push_release_gauges(Settings(), "batch-002", None, log) is False  # no gateway configured: nothing sent


def test_a_gateway_that_refuses_or_is_down_is_logged_never_raised(gateway, caplog):
    url, _, state = gateway
    state["status"] = 401
    with caplog.at_level(logging.WARNING):
        assert push_batch_gauges(url, "batch-003", REPORT, log, auth=("pipeline", "wrong")) is False
        assert push_batch_gauges("http://127.0.0.1:9", "batch-003", REPORT, log, auth=("p", "q")) is False
    assert sum("could not push" in record.message for record in caplog.records) == 2
