"""The typed settings: each variable parsed by its field's type, a bad one named, the environment read only
by `from_env`."""
from __future__ import annotations

import pytest

from assets.settings import Settings


@pytest.mark.parametrize("variable, value", [
    ("READMIT_OFFLINE", "banana"),  # read as False before the settings were typed
    ("READMIT_REQUIRE_API_KEY", "sometimes"),
    ("READMIT_BATCH_SIZE", "1.5"),
    ("READMIT_MIN_CELL", "eleven"),
])
def test_a_value_that_does_not_parse_names_its_variable_and_the_value(variable, value):
    with pytest.raises(ValueError, match=f"{variable}: .*{value!r}"):
        Settings.from_env({variable: value})


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("yes", True), ("0", False),
                                             ("false", False), ("no", False)])
def test_a_switch_reads_the_usual_spellings(value, expected):
    assert Settings.from_env({"READMIT_OFFLINE": value}).offline is expected


def test_building_settings_by_hand_never_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("READMIT_BATCH_SIZE", "9")
    monkeypatch.setenv("READMIT_PROMOTION_MARGIN", "-1")
    assert Settings(home=tmp_path).batch_size == 15_000
    assert Settings.from_env({"READMIT_HOME": str(tmp_path), "READMIT_BATCH_SIZE": "9"}).batch_size == 9
    with pytest.raises(ValueError, match="READMIT_PROMOTION_MARGIN"):
        Settings.from_env()


def test_variable_names_are_exact():
    assert Settings.from_env({"readmit_batch_size": "5", "READMIT_Batch_Size": "6"}).batch_size == 15_000
    assert Settings.from_env({"READMIT_BATCH_SIZE": "7"}).batch_size == 7


def test_an_empty_variable_means_unset_and_dagster_home_is_dagsters_own(tmp_path):
    settings = Settings.from_env({"READMIT_BATCH_SIZE": "", "READMIT_HOME": str(tmp_path / "h"),
                                  "DAGSTER_HOME": str(tmp_path / "d"), "READMIT_DAGSTER_HOME_DIR": "/elsewhere"})
    assert settings.batch_size == 15_000
    assert settings.dagster_home == tmp_path / "d"


def test_a_copy_is_checked_like_the_original_and_settings_are_frozen(tmp_path):
    settings = Settings(home=tmp_path)
    with pytest.raises(ValueError, match="PROMOTION_MARGIN"):
        settings.with_(promotion_margin=-1.0)
    with pytest.raises(ValueError, match="batch_sise"):
        settings.with_(batch_sise=3)  # a misspelt setting is refused, never ignored
    with pytest.raises(ValueError):
        settings.batch_size = 3
    assert settings.with_(batch_size=3).batch_size == 3 and settings.batch_size == 15_000
