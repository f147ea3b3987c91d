"""The promotion policy on a real registry (two versions from two ticks): where a gate winner goes, what a
review of its shadow does, and what a person may do; every step on file with who and why."""
import pytest

from assets.model import promotion
from assets.model.promotion import Policy, PromotionError
from assets.model.shadow import ShadowBounds
from assets.resources.model_files import DIGEST_TAG
from assets.resources.registry import CANDIDATE_ALIAS, CHALLENGER_ALIAS, ModelRegistry

GOOD = {"requests": 900, "rank_correlation": 0.95, "top_overlap": 0.8, "flip_rate": 0.05, "mean_abs_delta": 0.01,
        "psi": 0.01}
BAD = {**GOOD, "rank_correlation": 0.02, "top_overlap": 0.1}


@pytest.fixture
def registry(trained_settings, tmp_path):
    """A fresh copy of the trained registry per test, production on v1, and no alias on the way."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(trained_settings.home, home)
    registry = ModelRegistry.from_settings(trained_settings.with_(home=home))
    for version in registry.versions():  # as if v1 were the only version ever served
        if version.tags.get("alias_moved_at"):
            registry.client().delete_model_version_tag(registry.model_name, version.version, "alias_moved_at")
    registry.set_production(1)
    for alias in (CHALLENGER_ALIAS, CANDIDATE_ALIAS):
        registry.clear_alias(alias)
    return registry


def _kinds(registry, version):
    return [t["transition"] for t in registry.transitions(version)]


def passes(version):
    return None


def test_policy_names():
    assert Policy.named("auto") == Policy() and Policy.named("shadow+approve") == Policy(shadow=True, approve=True)
    for name in ("yolo", "auto+approve", ""):
        with pytest.raises(ValueError):
            Policy.named(name)


def test_auto_serves_the_winner_at_once_and_says_so(registry):
    placed = promotion.route_winner(registry, Policy(), 2, 1, "better by 0.01", {"challenger_roc_auc": 0.7})
    assert placed == "production" and int(registry.production().version) == 2
    assert _kinds(registry, 2)[-2:] == ["proposed", "promoted"]
    record = registry.transitions(2)[-1]
    assert record["by"] == "pipeline" and record["reason"] == "better by 0.01"


def test_approve_holds_the_winner_until_a_named_person_approves_it(registry):
    assert promotion.route_winner(registry, Policy(approve=True), 2, 1, "better", {}) == CANDIDATE_ALIAS
    assert int(registry.production().version) == 1 and int(registry.alias(CANDIDATE_ALIAS).version) == 2
    with pytest.raises(PromotionError, match="not the candidate"):
        promotion.approve(registry, 1, "Ana", "looks fine", passes)
    with pytest.raises(PromotionError, match="--by"):
        promotion.approve(registry, 2, "  ", "looks fine", passes)
    with pytest.raises(PromotionError, match="--reason"):
        promotion.approve(registry, 2, "Ana", "", passes)
    assert int(registry.production().version) == 1  # nothing moved on a refusal
    promotion.approve(registry, 2, "Ana Lima", "card reviewed", promotion.serving_check(registry))
    assert int(registry.production().version) == 2 and registry.alias(CANDIDATE_ALIAS) is None
    assert _kinds(registry, 2)[-3:] == ["proposed", "approved", "promoted"]
    approved = registry.transitions(2)[-2]
    assert approved["by"] == "Ana Lima" and approved["reason"] == "card reviewed"
    tags = registry.client().get_model_version(registry.model_name, "2").tags
    assert tags["approved_by"] == "Ana Lima" and tags["transition"] == "promoted"


def test_a_candidate_that_fails_the_service_load_checks_is_never_approved(registry):
    promotion.route_winner(registry, Policy(approve=True), 2, 1, "better", {})
    registry.client().set_model_version_tag(registry.model_name, "2", DIGEST_TAG, "model/model.pkl=" + "0" * 64)
    with pytest.raises(PromotionError, match="fails the load checks"):
        promotion.approve(registry, 2, "Ana", "ok", promotion.serving_check(registry))
    assert int(registry.production().version) == 1 and int(registry.alias(CANDIDATE_ALIAS).version) == 2


def test_reject_drops_the_candidate_and_a_newer_winner_supersedes_an_older_one(registry):
    promotion.route_winner(registry, Policy(approve=True), 1, None, "first", {})
    promotion.route_winner(registry, Policy(approve=True), 2, 1, "newer", {})
    assert _kinds(registry, 1)[-1] == "rejected" and registry.transitions(1)[-1]["by"] == "pipeline"
    promotion.reject(registry, 2, "Bo", "subgroup gap too wide")
    assert registry.alias(CANDIDATE_ALIAS) is None and int(registry.production().version) == 1
    assert registry.transitions(2)[-1]["by"] == "Bo"
    with pytest.raises(PromotionError, match="nothing to reject"):
        promotion.reject(registry, 2, "Bo", "again")


def test_shadow_review_waits_promotes_on_agreement_and_drops_a_disagreeing_challenger(registry):
    assert promotion.route_winner(registry, Policy(shadow=True), 2, 1, "better", {}) == CHALLENGER_ALIAS
    assert _kinds(registry, 2)[-2:] == ["proposed", "shadow started"] and int(registry.production().version) == 1
    bounds = ShadowBounds()
    waiting = promotion.review_shadow(registry, Policy(shadow=True), bounds, lambda v: {**GOOD, "requests": 10})
    assert waiting["outcome"] == "waiting" and int(registry.alias(CHALLENGER_ALIAS).version) == 2
    unreachable = promotion.review_shadow(registry, Policy(shadow=True), bounds, lambda v: None)
    assert unreachable["outcome"] == "waiting"
    stale = promotion.review_shadow(registry, Policy(shadow=True), bounds, lambda v: {**GOOD, "champion_version": 7})
    assert stale["outcome"] == "waiting" and "not the production version" in stale["reason"]
    failed = promotion.review_shadow(registry, Policy(shadow=True), bounds, lambda v: BAD)
    assert failed["outcome"] == "failed" and "rank_correlation" in failed["reason"]
    assert registry.alias(CHALLENGER_ALIAS) is None and int(registry.production().version) == 1
    assert registry.transitions(2)[-1]["figures"]["rank_correlation"] == pytest.approx(0.02)
    promotion.route_winner(registry, Policy(shadow=True), 2, 1, "better", {})
    passed = promotion.review_shadow(registry, Policy(shadow=True), bounds, lambda v: GOOD)
    assert passed["outcome"] == "passed" and int(registry.production().version) == 2
    assert _kinds(registry, 2)[-2:] == ["shadow passed", "promoted"]


def test_shadow_then_approve_hands_an_agreeing_challenger_to_a_person(registry):
    policy = Policy(shadow=True, approve=True)
    promotion.route_winner(registry, policy, 2, 1, "better", {})
    promotion.review_shadow(registry, policy, ShadowBounds(), lambda v: GOOD)
    assert int(registry.production().version) == 1 and int(registry.alias(CANDIDATE_ALIAS).version) == 2
    assert promotion.review_shadow(registry, policy, ShadowBounds(), lambda v: GOOD)["outcome"] == "none"


def test_the_first_version_under_shadow_alone_serves_but_under_approve_waits(registry):
    registry.client().delete_registered_model_alias(registry.model_name, "production")
    assert promotion.route_winner(registry, Policy(shadow=True, approve=True), 1, None, "first", {}) == CANDIDATE_ALIAS
    assert registry.production() is None
    registry.clear_alias(CANDIDATE_ALIAS)
    assert promotion.route_winner(registry, Policy(shadow=True), 1, None, "first", {}) == "production"
    assert registry.transitions(1)[-1]["reason"].startswith("no champion to shadow")


def test_rollback_returns_to_the_previous_production_only(registry):
    with pytest.raises(PromotionError, match="only version"):
        promotion.rollback(registry, "Ana", "undo", passes)
    registry.set_production(2)
    with pytest.raises(PromotionError, match="already in production"):
        promotion.rollback(registry, "Ana", "undo", passes, to=2)
    with pytest.raises(PromotionError, match="never served"):
        promotion.rollback(registry, "Ana", "undo", passes, to=99)
    record = promotion.rollback(registry, "Ana", "ECE doubled overnight", promotion.serving_check(registry))
    assert int(registry.production().version) == 1 and record["by"] == "Ana"
    assert record["figures"] == {"from_version": 2, "to_version": 1}
    assert registry.transitions(1)[-1]["transition"] == "rolled back"
    registry.client().set_model_version_tag(registry.model_name, "2", DIGEST_TAG, "model/model.pkl=" + "0" * 64)
    with pytest.raises(PromotionError, match="fails the load checks"):
        promotion.rollback(registry, "Ana", "back again", promotion.serving_check(registry), to=2)
    assert int(registry.production().version) == 1


def test_a_winner_under_any_policy_supersedes_what_waits_and_an_older_candidate_cannot_be_approved(registry):
    promotion.route_winner(registry, Policy(approve=True), 2, 1, "better", {})
    promotion.route_winner(registry, Policy(), 1, 2, "policy now auto", {})  # e.g. READMIT_PROMOTION changed
    assert registry.alias(CANDIDATE_ALIAS) is None and _kinds(registry, 2)[-1] == "rejected"
    registry.set_production(2)
    registry.set_alias(CANDIDATE_ALIAS, 1)  # left waiting by hand, older than production
    with pytest.raises(PromotionError, match="older than"):
        promotion.approve(registry, 1, "Ana", "ok", passes)
    assert int(registry.production().version) == 2


def test_a_person_acting_during_a_review_wins(registry):
    promotion.route_winner(registry, Policy(shadow=True), 2, 1, "better", {})

    def rejected_while_reading(version):
        promotion.reject(registry, 2, "Bo", "not this one")
        return GOOD

    outcome = promotion.review_shadow(registry, Policy(shadow=True), ShadowBounds(), rejected_while_reading)
    assert outcome["outcome"] == "none" and int(registry.production().version) == 1
    assert _kinds(registry, 2)[-1] == "rejected"
    registry.set_alias(CANDIDATE_ALIAS, 2)
    registry.clear_alias(CANDIDATE_ALIAS, expected=1)  # only while it still names the version read
    assert int(registry.alias(CANDIDATE_ALIAS).version) == 2


def test_two_default_rollbacks_do_not_restore_the_version_rolled_back_from(registry):
    registry.set_production(2)
    promotion.rollback(registry, "Ana", "v2 misbehaves", passes)
    assert int(registry.production().version) == 1
    with pytest.raises(PromotionError, match="only version"):
        promotion.rollback(registry, "Ana", "again", passes)
    promotion.rollback(registry, "Ana", "v2 fixed upstream", passes, to=2)  # named: a person's choice
    assert int(registry.production().version) == 2
