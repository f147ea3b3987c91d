"""What happens to a gate winner, and what a person may do about it (READMIT_PROMOTION, issue 31).

The gate (`assets/graph/model.py`) decides whether a challenger is *better*; the policy decides whether
being better is *enough*:

- `auto`: the winner serves at once (the alias moves in the gate's run);
- `shadow`: the winner becomes `@challenger`; the service scores a share of live requests with it beside
  the champion (bento/shadow.py), and `review_shadow` promotes it once its agreement passes
  (`assets/model/shadow.py`), or drops it when it fails;
- `approve`: the winner (after shadow, with `shadow+approve`) waits as `@candidate` until a person runs
  `readmit approve`; under `approve` even the first version waits, so nothing serves unapproved.

Every step is a transition on file (`ModelRegistry.record_transition`: a run beside the gate's decision,
and tags on the version): proposed, shadow started, shadow passed / failed, approved / rejected, promoted,
rolled back, each with who, when, why and the figures. A person's action (approve, reject, rollback) needs
the registry's write credentials, the pipeline's: the API's key opens nothing here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from assets.model.shadow import ShadowBounds, judge_shadow
from assets.resources.registry import CANDIDATE_ALIAS, CHALLENGER_ALIAS, ModelRegistry

PROPOSED, SHADOW_STARTED, SHADOW_PASSED, SHADOW_FAILED = "proposed", "shadow started", "shadow passed", "shadow failed"
APPROVED, REJECTED, PROMOTED, ROLLED_BACK = "approved", "rejected", "promoted", "rolled back"
PIPELINE = "pipeline"  # who made an automatic transition


class PromotionError(ValueError):
    """An action that cannot be taken (no such candidate, nothing to roll back to, a version that fails its
    load checks): the alias has not moved."""


@dataclass(frozen=True)
class Policy:
    """READMIT_PROMOTION as two switches."""

    shadow: bool = False
    approve: bool = False

    @classmethod
    def named(cls, name: str) -> "Policy":
        parts = set(name.split("+"))
        if not parts <= {"auto", "shadow", "approve"} or ("auto" in parts and len(parts) > 1):
            raise ValueError(f"unknown promotion policy {name!r}: auto, shadow, approve or shadow+approve")
        return cls(shadow="shadow" in parts, approve="approve" in parts)


def route_winner(registry: ModelRegistry, policy: Policy, version: int, champion: int | None, reason: str,
                 figures: dict) -> str:
    """Where the gate's winner goes, as the policy says: `production`, `challenger` or `candidate`.

    A newer winner supersedes one still in shadow or awaiting approval (it learnt from more): the older one
    is recorded as failed / rejected by the pipeline, naming its successor."""
    registry.record_transition(version, PROPOSED, PIPELINE, reason, figures)
    # Whatever the policy is now, nothing older stays on the way: a version left waiting under another policy
    # would otherwise be promoted (or approved) later over the newer one, never compared with it.
    _supersede(registry, CHALLENGER_ALIAS, version, SHADOW_FAILED)
    _supersede(registry, CANDIDATE_ALIAS, version, REJECTED)
    if policy.shadow and champion is not None:
        registry.set_alias(CHALLENGER_ALIAS, version)
        registry.record_transition(version, SHADOW_STARTED, PIPELINE,
                                   f"served in shadow beside the champion v{champion}", {})
        return CHALLENGER_ALIAS
    if policy.approve:
        return _await_approval(registry, version)
    _promote(registry, version, PIPELINE, "no champion to shadow: " + reason if policy.shadow else reason, figures)
    return "production"


def review_shadow(registry: ModelRegistry, policy: Policy, bounds: ShadowBounds,
                  shadow_record: Callable[[int], dict | None]) -> dict:
    """Judge the challenger's shadow record (what the service measured, `shadow_record(version)`):
    promote it (or hand it to a person) when it passes, drop it when it fails, wait while it has too few
    requests. Returns what happened: {version, outcome (none|waiting|passed|failed), reason, figures}."""
    challenger = registry.alias(CHALLENGER_ALIAS)
    if challenger is None:
        return {"version": None, "outcome": "none", "reason": "no challenger in shadow", "figures": {}}
    version = int(challenger.version)
    figures = shadow_record(version) or {}
    production = registry.production()
    compared = figures.get("champion_version")
    if compared is not None and (production is None or int(compared) != int(production.version)):
        # measured against a version that no longer serves (a rollback since): the service starts again
        return {"version": version, "outcome": "waiting", "figures": {},
                "reason": f"the shadow record compares with v{compared}, not the production version"}
    passed, why = judge_shadow(figures, bounds)
    if passed is None:
        return {"version": version, "outcome": "waiting", "reason": why, "figures": figures}
    if not _holds(registry, CHALLENGER_ALIAS, version):  # a person (or a newer winner) acted while we read
        return {"version": version, "outcome": "none", "figures": {},
                "reason": f"v{version} left the challenger alias during the review"}
    registry.record_transition(version, SHADOW_PASSED if passed else SHADOW_FAILED, PIPELINE, why, figures)
    if passed and not policy.approve:
        _promote(registry, version, PIPELINE, why, figures)  # the alias moves before the challenger is let go
    elif passed:
        _supersede(registry, CANDIDATE_ALIAS, version, REJECTED)
        registry.set_alias(CANDIDATE_ALIAS, version)
    registry.clear_alias(CHALLENGER_ALIAS, expected=version)
    return {"version": version, "outcome": "passed" if passed else "failed", "reason": why, "figures": figures}


def approve(registry: ModelRegistry, version: int, by: str, reason: str,
            load_check: Callable[[int], None]) -> dict:
    """A person approves the `@candidate`: checked like any load, then served."""
    by, reason = _named(by), _why(reason)
    candidate = _the(registry, CANDIDATE_ALIAS, version, "approve")
    live = registry.production()
    if live is not None and int(live.version) > candidate:
        raise PromotionError(f"v{candidate} is older than v{live.version} in production: it was never compared "
                             "with it (reject it; a newer gate winner will be proposed)")
    _checked(load_check, candidate)
    _the(registry, CANDIDATE_ALIAS, version, "approve")  # still the candidate after the (slow) load check
    registry.set_production(candidate)  # first: a failure here leaves the candidate waiting, nothing on file
    record = registry.record_transition(candidate, APPROVED, by, reason)
    registry.record_transition(candidate, PROMOTED, by, f"approved by {by}: {reason}", {})
    registry.clear_alias(CANDIDATE_ALIAS, expected=candidate)
    return record


def reject(registry: ModelRegistry, version: int, by: str, reason: str) -> dict:
    """A person rejects the `@candidate` or the `@challenger`: it never serves (a newer winner may)."""
    by, reason = _named(by), _why(reason)
    for alias in (CANDIDATE_ALIAS, CHALLENGER_ALIAS):
        held = registry.alias(alias)
        if held is not None and int(held.version) == int(version):
            registry.clear_alias(alias, expected=int(version))
            return registry.record_transition(version, REJECTED, by, reason)
    raise PromotionError(f"version {version} is neither the candidate nor the challenger "
                         f"({_describe(registry)}): there is nothing to reject")


def rollback(registry: ModelRegistry, by: str, reason: str, load_check: Callable[[int], None],
             to: int | None = None) -> dict:
    """Move `@production` back: to `to`, or to the version that served before the current one. The target
    passes the same load checks and smoke test as any load, else nothing moves."""
    by, reason = _named(by), _why(reason)
    current = registry.production()
    if current is None:
        raise PromotionError("nothing is in production: there is nothing to roll back")
    target = int(to) if to is not None else previous_production(registry, int(current.version))
    if target is None:
        raise PromotionError(f"v{current.version} is the only version that has served: name one with --to")
    if target == int(current.version):
        raise PromotionError(f"v{target} is already in production")
    served = {int(v.version) for v in registry.versions() if v.tags.get("alias_moved_at")}
    if target not in served:
        raise PromotionError(f"version {target} has never served (versions that have: {sorted(served)}): a "
                             "rollback returns to one of those; a new version reaches production by the gate "
                             "(and `readmit approve`)")
    _checked(load_check, target)
    if int(registry.production().version) != int(current.version):
        raise PromotionError(f"production moved from v{current.version} during the load check: nothing changed")
    registry.set_production(target)
    # The version rolled back from is not "the previous production" of a later default rollback.
    registry.client().set_model_version_tag(registry.model_name, str(current.version), "rolled_back_at",
                                            f"{time.time():.3f}")
    return registry.record_transition(target, ROLLED_BACK, by, reason,
                                      {"from_version": int(current.version), "to_version": target})


def serving_check(registry: ModelRegistry) -> Callable[[int], None]:
    """The service's own load of a version: its files against their (signed) digests, unpickled, then the
    smoke test of its serving form (`assets.model.compiled.smoke_tested`). Raises when it would be refused."""
    def check(version: int) -> None:
        from assets.model.compiled import smoke_tested

        smoke_tested(registry.load_for_serving(version))
    return check


def previous_production(registry: ModelRegistry, current: int) -> int | None:
    """The version that served last before `current`: every move of the alias stamps `alias_moved_at` on the
    version it moved to, so the newest stamp but the current one's is the previous production."""
    moved = [(float(v.tags["alias_moved_at"]), int(v.version)) for v in registry.versions()
             if v.tags.get("alias_moved_at") and int(v.version) != current
             and float(v.tags.get("rolled_back_at") or 0) < float(v.tags["alias_moved_at"])]
    return max(moved)[1] if moved else None


def _await_approval(registry: ModelRegistry, version: int) -> str:
    registry.set_alias(CANDIDATE_ALIAS, version)
    return CANDIDATE_ALIAS


def _holds(registry: ModelRegistry, alias: str, version: int) -> bool:
    held = registry.alias(alias)
    return held is not None and int(held.version) == int(version)


def _promote(registry: ModelRegistry, version: int, by: str, reason: str, figures: dict) -> None:
    registry.set_production(version)
    registry.record_transition(version, PROMOTED, by, reason, figures)


def _supersede(registry: ModelRegistry, alias: str, successor: int, kind: str) -> None:
    held = registry.alias(alias)
    if held is not None and int(held.version) != int(successor):
        registry.clear_alias(alias, expected=int(held.version))
        registry.record_transition(held.version, kind, PIPELINE, f"superseded by v{successor}, a newer gate winner")


def _the(registry: ModelRegistry, alias: str, version: int, action: str) -> int:
    held = registry.alias(alias)
    if held is None or int(held.version) != int(version):
        raise PromotionError(f"version {version} is not the {alias} ({_describe(registry)}): nothing to {action}")
    return int(held.version)


def _checked(load_check: Callable[[int], None], version: int) -> None:
    try:
        load_check(version)
    except Exception as err:  # noqa: BLE001 - any failure of the load is a refusal, said in one line
        raise PromotionError(f"v{version} fails the load checks ({type(err).__name__}: {str(err)[:300]}): "
                             "the alias has not moved") from err


def _describe(registry: ModelRegistry) -> str:
    held = {alias: registry.alias(alias) for alias in (CANDIDATE_ALIAS, CHALLENGER_ALIAS)}
    return ", ".join(f"{alias}: {'v' + str(v.version) if v else 'none'}" for alias, v in held.items())


def _named(by: str) -> str:
    if not by or not by.strip():
        raise PromotionError("--by must name the person who decides")
    return by.strip()


def _why(reason: str) -> str:
    if not reason or not reason.strip():
        raise PromotionError("--reason must say why")
    return reason.strip()
