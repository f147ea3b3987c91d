"""No launch can change the gate's rules or where the pipeline reads and writes: policy and locations are
bound when the definitions are built, and a run config that sets them is refused by Dagster's validation
(the launchpad, GraphQL and `execute_in_process` all validate against the same schema)."""
import dagster as dg
import pytest

from assets.definitions import build_definitions
from assets.settings import Settings

# One override per resource field a launch could abuse: the gate's margins, the tracking server (which would
# receive the pipeline's MLflow password), the lake, the dataset, the training and monitoring policy.
# Each names every required field too, so the only thing validation can object to is the override itself.
TRACKING = {"tracking_uri": "sqlite:////tmp/elsewhere.db"}
DATASET = {"home": "/tmp/elsewhere", "source_url": "http://elsewhere"}
ATTACKS = {
    "a negative promotion margin": {"registry": {**TRACKING, "promotion_margin": -1.0}},
    "a subgroup margin that hides any loss": {"registry": {**TRACKING, "subgroup_margin": 9.0}},
    "a tiny subgroup minimum": {"registry": {**TRACKING, "subgroup_min_rows": 1}},
    "another tracking server": {"registry": {"tracking_uri": "http://elsewhere"}},
    "another lake root": {"lake": {"root": "/tmp/elsewhere"}},
    "the IO manager's lake": {"io_manager": {"lake": {"root": "/tmp/elsewhere"}}},
    "another dataset": {"dataset": {**DATASET, "source": "/etc/passwd"}},
    "an unbounded training read": {"training": {"max_rows": 0}},
    "a drift alarm that never fires": {"monitoring": {"drift_alarm": 99.0}},
}


@pytest.fixture(scope="module")
def definitions(tmp_path_factory):
    return build_definitions(Settings(home=tmp_path_factory.mktemp("home"), offline=True))


def _jobs(definitions):
    return [definitions.resolve_job_def(job.name) for job in definitions.jobs]


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=list(ATTACKS))
def test_a_launch_that_sets_policy_or_a_location_is_refused_for_every_job(definitions, attack):
    for job in _jobs(definitions):
        resources = {key: {"config": config} for key, config in attack.items() if key in job.resource_defs}
        assert resources, (job.name, attack)
        with pytest.raises(dg.DagsterInvalidConfigError, match="unexpected config entr"):
            dg.validate_run_config(job, {"resources": resources})


def test_hyperparameters_stay_in_the_launchpad(definitions):
    retrain = definitions.resolve_job_def("retrain")
    dg.validate_run_config(retrain, {"ops": {"readmission_model": {"config": {"hgb_max_iter": 50}}}})


def test_an_empty_launch_config_is_valid_for_every_job(definitions):
    for job in _jobs(definitions):
        dg.validate_run_config(job, {})


@pytest.mark.parametrize("variable", ["PROMOTION_MARGIN", "SUBGROUP_MARGIN"])
@pytest.mark.parametrize("value", ["-1", "-0.001", "nan", "inf"])
def test_a_margin_below_zero_or_not_a_number_is_refused_when_settings_are_read(variable, value):
    with pytest.raises(ValueError, match=f"READMIT_{variable}"):
        Settings.from_env({f"READMIT_{variable}": value})


def test_a_subgroup_minimum_below_one_is_refused():
    with pytest.raises(ValueError, match="READMIT_SUBGROUP_MIN_ROWS"):
        Settings.from_env({"READMIT_SUBGROUP_MIN_ROWS": "0"})
