"""The Models page on a real registry (Streamlit's AppTest, no browser): what is on the way, each version's
timeline, and the approve / reject / rollback form, which only a signed-in approver sees."""
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from assets.model.promotion import Policy, route_winner
from assets.resources.registry import CANDIDATE_ALIAS, ModelRegistry


def _models_page():
    from ui.views.models import render

    render()


@pytest.fixture
def waiting(trained_settings, tmp_path, monkeypatch):
    """A trained home with v1 in production and v2 awaiting approval; the page reads it."""
    home = tmp_path / "home"
    shutil.copytree(trained_settings.home, home)
    settings = trained_settings.with_(home=home)
    registry = ModelRegistry.from_settings(settings)
    registry.set_production(1)
    route_winner(registry, Policy(approve=True), 2, 1, "better by 0.004 on the holdout", {})
    monkeypatch.setenv("READMIT_HOME", str(home))
    return registry


def _person(monkeypatch, name):
    import ui.views.models

    monkeypatch.setattr(ui.views.models, "who", lambda: name)


def test_the_page_shows_the_candidate_and_its_timeline_and_no_form_to_a_non_approver(waiting, monkeypatch):
    monkeypatch.setenv("READMIT_APPROVERS", "Ana Lima")
    _person(monkeypatch, "Mallory")
    app = AppTest.from_function(_models_page, default_timeout=60).run()
    assert not app.exception
    assert any("Awaiting approval: version 2" in w.value for w in app.warning)
    app.selectbox[0].select(2).run()
    timeline = next(frame.value for frame in app.dataframe if "transition" in frame.value.columns)
    on_file = waiting.transitions(2)
    assert timeline["transition"].tolist() == [t["transition"] for t in on_file]
    assert timeline["transition"].iloc[-1] == "proposed" and timeline["by"].iloc[-1] == "pipeline"
    assert not app.radio and any("for approvers" in c.value for c in app.caption)


def test_an_approver_approves_from_the_page_and_it_is_signed_with_their_name(waiting, monkeypatch):
    monkeypatch.setenv("READMIT_APPROVERS", "Bo, Ana Lima")
    _person(monkeypatch, "Ana Lima")
    app = AppTest.from_function(_models_page, default_timeout=60).run()
    app.radio[0].set_value("approve")
    app.selectbox[1].select(2)
    app.text_input[0].input("card and subgroups reviewed")
    app.button[0].click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("approved by Ana Lima" in s.value for s in app.success)
    assert int(waiting.production().version) == 2 and waiting.alias(CANDIDATE_ALIAS) is None
    assert waiting.transitions(2)[-2]["by"] == "Ana Lima"
    app.radio[0].set_value("reject")
    app.selectbox[1].select(1)
    app.text_input[0].input("")
    app.button[0].click().run()
    assert any("Refused" in e.value for e in app.error)  # nothing to reject, and no reason given
