"""Model assets: train and register candidates on the training set, then the promotion gate.

Thin wrappers: training and evaluation are pure (`train`, `evaluate`, `promote`); MLflow access goes
through the `ModelRegistry` resource. scikit-learn and matplotlib are imported inside the assets that
use them: the asset graph itself is read on every Airflow DAG parse and by every ingest run.
"""
import logging

import dagster as dg
import pandas as pd

from assets.graph.encounters import DatasetSource, training_set
from assets.encounters.batches import BatchLedger, now_iso
from assets.encounters.training import INDEX_COLUMNS, TrainingSetError, read_manifest, read_training_set
from assets.encounters.schemas import TARGET, feature_columns
from assets.model.hyperparameters import Hyperparameters
from assets.model.promote import decide
from assets.model.promotion import Policy, review_shadow, route_winner
from assets.model.shadow import ShadowBounds
from assets.resources.lake import Lake
from assets.resources.model_files import DIGEST_TAG, decode
from assets.resources.service_shadow import ServiceShadow
from assets.resources.registry import CHALLENGER_ALIAS, DATA_SOURCE_TAG, ModelRegistry, git_commit
from assets.settings import Settings


class TrainingPolicy(dg.ConfigurableResource):
    """How much history a retrain reads, from settings: at most `max_rows` training rows and the latest
    `holdout_max_rows` held-out rows (0: all). The defaults are above the 7-batch UCI history, so the
    demo learns from every row, and they bound a retrain's time and memory on a long feed."""

    max_rows: int = Settings.default("train_max_rows")
    holdout_max_rows: int = Settings.default("holdout_max_rows")

    @classmethod
    def from_settings(cls, settings: Settings) -> "TrainingPolicy":
        return cls(max_rows=settings.train_max_rows, holdout_max_rows=settings.holdout_max_rows)

    def read(self, lake: Lake, seed: int, train: bool = True) -> tuple[pd.DataFrame, dict]:
        """The bounded rows a retrain works on (see `bounded_encounters`), and the manifest's facts:
        `batches` (the ones this retrain judges), `rows` and `train_rows_available` in the whole history."""
        from assets.model.train import bounded_encounters

        manifest = read_manifest(lake)
        try:
            index = read_training_set(lake, columns=INDEX_COLUMNS)
            chosen, available = bounded_encounters(index, self.max_rows, self.holdout_max_rows, seed, train=train)
            rows = read_training_set(lake, wanted=chosen, remember=train)
        except TrainingSetError as error:
            raise dg.Failure(description=str(error)) from None
        return rows, {"batches": [entry["id"] for entry in manifest["batches"]], "rows": len(index),
                      "train_rows_available": available}


IMPORTANCE_ROWS = 2_000  # training rows the importance shares are averaged over (TreeSHAP: ~4 s, 300 trees)


class TrainingConfig(dg.Config):
    """Hyperparameters of the candidates (editable in the Dagster launchpad)."""

    lr_c: float = Hyperparameters.lr_c
    hgb_learning_rate: float = Hyperparameters.hgb_learning_rate
    hgb_max_iter: int = Hyperparameters.hgb_max_iter
    hgb_max_leaf_nodes: int = Hyperparameters.hgb_max_leaf_nodes
    hgb_min_samples_leaf: int = Hyperparameters.hgb_min_samples_leaf
    hgb_l2_regularization: float = Hyperparameters.hgb_l2_regularization
    random_state: int = Hyperparameters.random_state


@dg.asset(group_name="model", deps=[training_set], kinds={"sklearn", "mlflow"})
def readmission_model(context: dg.AssetExecutionContext, config: TrainingConfig,
                      registry: dg.ResourceParam[ModelRegistry], dataset: DatasetSource, training: TrainingPolicy,
                      lake: Lake) -> dg.MaterializeResult:
    """Every candidate trained and logged to MLflow; the best on the holdout registered as a new version."""
    from assets.encounters.synthetic import synthetic_probe
    from assets.monitoring.alerts import IMPORTANCE_SHARES
    from assets.model.evaluate import evaluation_plots
    from assets.model.explain import importance_shares
    from assets.model.features import CATEGORICAL, prepare_features
    from assets.model.portable import packaged
    from assets.model.train import split_training_set, train_candidates
    from assets.monitoring.drift import profile, reference_sample
    from assets.monitoring.quality import SUBGROUP_ATTRIBUTES, subgroup_metric_names, subgroup_metrics
    from assets.monitoring.suppression import suppress_groups

    params = Hyperparameters(**config.model_dump())
    rows, history = training.read(lake, params.random_state)
    candidates, holdout = train_candidates(rows, params, max_rows=training.max_rows,
                                           max_holdout=training.holdout_max_rows,
                                           available=history["train_rows_available"])
    y = holdout[TARGET].to_numpy(bool)
    # What monitoring compares every later batch with: the training patients' feature shares.
    train_sample = reference_sample(split_training_set(rows)[0])
    train_features = prepare_features(train_sample[feature_columns()])
    data_source = dataset.info().data_source
    batches = history["batches"]
    tags = {"readmit.batches": ",".join(batches), "readmit.batch_count": str(len(batches)),
            "readmit.training_rows": str(history["rows"]), "readmit.train_max_rows": str(training.max_rows),
            "readmit.holdout_max_rows": str(training.holdout_max_rows),
            DATA_SOURCE_TAG: data_source,
            "readmit.git_commit": git_commit(), "readmit.dagster_run_id": context.run.run_id}
    best = max(candidates, key=lambda c: c.metrics["roc_auc"])
    runs, uris = {}, {}
    for candidate in candidates:
        model = candidate.model
        risk = candidate.holdout_risk
        figures = evaluation_plots(y, risk, model.threshold)
        subgroups = suppress_groups(subgroup_metrics(holdout[list(SUBGROUP_ATTRIBUTES)], y, risk, model.threshold),
                                    registry.min_cell)
        with packaged(model, synthetic_probe(50, identifiers=True)) as package:  # no patient travels with a model
            runs[model.name], uris[model.name] = registry.log_candidate(
                model, {**candidate.metrics, **subgroup_metric_names(subgroups)},
                {**params.__dict__, "candidate": model.name}, tags, figures, package,
                documents={"subgroup_metrics.json": subgroups,
                           "reference_profile.json": profile(train_features, CATEGORICAL, risk=risk,
                                                             min_cell=registry.min_cell)})
    # How much the registered version leans on each feature: monitoring ranks drift warnings by it.
    registry.client().log_dict(runs[best.model.name], importance_shares(best.model, train_sample.head(
        IMPORTANCE_ROWS)[feature_columns()]), IMPORTANCE_SHARES)
    version = registry.register(uris[best.model.name], tags={
        **tags, "candidate": best.model.name, "roc_auc": f"{best.metrics['roc_auc']:.6f}",
        "threshold": f"{best.model.threshold:.6f}"})
    return dg.MaterializeResult(metadata={
        "registered_version": int(version.version), "run_id": runs[best.model.name],
        "best_candidate": best.model.name, "data_source": data_source, "batches": len(batches),
        "holdout_rows": len(holdout), **{f"{c.model.name}_train_rows": int(c.metrics["train_rows"]) for c in candidates},
        **{f"{c.model.name}_fit_seconds": c.fit_seconds for c in candidates},
        **{f"{c.model.name}_roc_auc": c.metrics["roc_auc"] for c in candidates}})


@dg.asset(group_name="model", deps=[readmission_model, training_set], kinds={"mlflow"})
def production_model(context: dg.AssetExecutionContext, registry: dg.ResourceParam[ModelRegistry], lake: Lake,
                     training: TrainingPolicy) -> dg.MaterializeResult:
    """The `production` alias: moved to the newest version only if it beats the champion on today's holdout."""
    from sklearn.metrics import roc_auc_score

    from assets.model.train import split_training_set
    from assets.monitoring.quality import SUBGROUP_ATTRIBUTES, subgroup_gaps, subgroup_metrics

    challenger = _registered_in_this_run(context, registry)
    champion = registry.production()
    held_out, history = training.read(lake, seed=0, train=False)  # the latest held-out rows only
    _, holdout = split_training_set(held_out)
    batches = history["batches"]
    y, encounters = holdout[TARGET].to_numpy(bool), holdout[feature_columns()]
    challenger_model = registry.load(challenger.version)
    challenger_risk = challenger_model.predict(encounters)
    challenger_auc = float(roc_auc_score(y, challenger_risk))
    champion_auc, gaps = None, []
    if champion is not None and champion.version != challenger.version:
        champion_risk = registry.load(champion.version).predict(encounters)
        champion_auc = float(roc_auc_score(y, champion_risk))
        groups = holdout[list(SUBGROUP_ATTRIBUTES)]
        gaps = subgroup_gaps(subgroup_metrics(groups, y, challenger_risk, 0.5),
                             subgroup_metrics(groups, y, champion_risk, 0.5), registry.subgroup_min_rows)
    elif champion is not None:
        champion_auc = challenger_auc
    sources = {"challenger": challenger.tags.get(DATA_SOURCE_TAG),
               "champion": champion.tags.get(DATA_SOURCE_TAG) if champion else None}
    promoted, reason = decide(challenger_auc, champion_auc, registry.promotion_margin,
                              sources["challenger"], sources["champion"],
                              subgroups=gaps, subgroup_margin=registry.subgroup_margin)
    decision = {
        "promoted": promoted, "reason": reason, "margin": registry.promotion_margin,
        "subgroup_margin": registry.subgroup_margin, "subgroup_min_rows": registry.subgroup_min_rows,
        "subgroups": gaps,
        "challenger_version": int(challenger.version), "challenger_roc_auc": challenger_auc,
        "champion_version": int(champion.version) if champion else None, "champion_roc_auc": champion_auc,
        "challenger_data_source": sources["challenger"], "champion_data_source": sources["champion"],
        "holdout_rows": int(len(holdout)), "batches": batches,
        # The rules the gate applied, as settings bound them (no launch can change them), and the sha256 of
        # every file of both versions: what the API checks before it unpickles what the gate judged.
        "policy": {"promotion": registry.promotion, "promotion_margin": registry.promotion_margin, "subgroup_margin": registry.subgroup_margin,
                   "subgroup_min_rows": registry.subgroup_min_rows, "train_max_rows": training.max_rows,
                   "holdout_max_rows": training.holdout_max_rows},
        "challenger_sha256": decode(challenger.tags.get(DIGEST_TAG)),
        "champion_sha256": decode(champion.tags.get(DIGEST_TAG)) if champion else None,
    }
    # The decision is on file before the alias moves: a failure in between leaves a recorded decision
    # and an unmoved alias, and the retrain stays owed, so the next tick runs the gate again.
    registry.record_decision(decision, tags={"readmit.dagster_run_id": context.run.run_id})
    registry.publish_card(challenger.version, challenger.run_id, _card(
        registry, challenger, y, challenger_risk, decision, history["rows"], BatchLedger(lake.path()).read()))
    if promoted:
        # Permutation importance (~48 predictions of 4,000 rows) only for a model that will serve: a
        # rejected challenger never needs it, and most retrains on a steady feed are rejected.
        from assets.model.evaluate import importance_plot, permutation_importance

        importance = permutation_importance(challenger_model, encounters, y, feature_columns())
        registry.log_figure(challenger.run_id, importance_plot(importance), "plots/feature_importance.png")
        # Better is not always enough: the policy says whether the winner serves now, in shadow first, or
        # once a person approves (assets/model/promotion.py); each step is a transition on file.
        placed = route_winner(registry, Policy.named(registry.promotion), int(challenger.version),
                              int(champion.version) if champion is not None else None, reason,
                              {"challenger_roc_auc": challenger_auc, "champion_roc_auc": champion_auc,
                               "holdout_rows": int(len(holdout))})
        if placed != "production":  # the decision tag says what the winner became, not "promoted"
            registry.client().set_model_version_tag(registry.model_name, str(challenger.version),
                                                    "promotion_decision", f"passed the gate: {placed}")
    else:
        placed = None
    live = registry.production()
    ledger = BatchLedger(lake.path())
    ledger.describe_source(last_retrain={
        "batches": batches, "finished_at": now_iso(), "challenger_version": int(challenger.version),
        "promoted": promoted, "placed": placed, "production_version": int(live.version) if live else None})
    if placed == CHALLENGER_ALIAS:  # the review job judges its shadow record every tick from now on
        ledger.describe_source(shadow={"version": int(challenger.version), "since": now_iso(),
                                       "champion_version": int(champion.version),
                                       "released_before": ledger.released()})
    context.log.info(reason + (f" (now {placed})" if placed and placed != "production" else ""))
    return dg.MaterializeResult(metadata={
        "production_version": int(live.version) if live else 0, "promoted": promoted, "reason": reason,
        "placed": placed or "rejected",
        "challenger_roc_auc": challenger_auc, "champion_roc_auc": champion_auc or float("nan")})


@dg.asset(group_name="model", deps=[production_model], kinds={"mlflow"})
def promotion_review(context: dg.AssetExecutionContext, registry: dg.ResourceParam[ModelRegistry],
                     shadow: dg.ResourceParam[ServiceShadow], shadow_bounds: dg.ResourceParam[ShadowBounds],
                     lake: Lake) -> dg.MaterializeResult:
    """The challenger in shadow, judged on what the service measured of it on live requests
    (assets/model/promotion.py `review_shadow`): promoted (or handed to a person) when it agrees with the
    champion, dropped when it does not, left in shadow while too few requests were shadowed.

    Once the labels of batches that arrived during the shadow have landed, the record also holds both
    versions' ROC-AUC on those same encounters, with a paired bootstrap interval of the difference."""
    ledger = BatchLedger(lake.path())
    state = ledger.read().get("shadow") or {}

    def record(version: int) -> dict | None:
        figures = shadow.record(version)
        if figures is None or state.get("version") != version:
            return figures
        return {**figures, **_paired_on_labels(registry, lake, ledger, state)}

    outcome = review_shadow(registry, Policy.named(registry.promotion), shadow_bounds, record)
    if outcome["outcome"] == "waiting":
        ledger.describe_source(shadow={**state, "record": outcome["figures"], "reviewed_at": now_iso(),
                                       "reason": outcome["reason"]})
    else:  # settled (or nothing in shadow any more: a person rejected it): no review is owed
        ledger.describe_source(shadow=None, last_shadow={**state, **outcome, "reviewed_at": now_iso()})
    context.log.info(f"v{outcome['version']}: {outcome['outcome']}: {outcome['reason']}")
    live = registry.production()
    return dg.MaterializeResult(metadata={
        "challenger_version": outcome["version"] or 0, "outcome": outcome["outcome"], "reason": outcome["reason"],
        "production_version": int(live.version) if live else 0,
        **{f"shadow_{k}": v for k, v in outcome["figures"].items() if isinstance(v, (int, float))}})


def _paired_on_labels(registry: ModelRegistry, lake: Lake, ledger: BatchLedger, state: dict) -> dict:
    """Both versions on the labelled encounters of the batches that arrived while the challenger was in
    shadow (`paired_*`; nothing before any such label has landed)."""
    from assets.encounters.training import labelled_rows
    from assets.model.shadow import paired_roc_auc

    before = set(state.get("released_before", []))
    landed = [b["id"] for b in ledger.read()["batches"]
              if b["id"] not in before and b.get("status") == "clean" and b.get("labels") == "landed"]
    if not landed:
        return {}
    try:
        rows = pd.concat([labelled_rows(lake, batch) for batch in landed], ignore_index=True)
        encounters, y = rows[feature_columns()], rows[TARGET].to_numpy(bool)
        paired = paired_roc_auc(y, registry.load(state["champion_version"]).predict(encounters),
                                registry.load(state["version"]).predict(encounters))
    except Exception as err:  # noqa: BLE001 - informative only: it never holds up the review
        logging.getLogger(__name__).warning("the paired comparison on landed labels failed (%s: %s)",
                                            type(err).__name__, str(err)[:300])
        return {}
    return {f"paired_{key}": value for key, value in paired.items() if value is not None} | {
        "paired_batches": len(landed)}


def _registered_in_this_run(context: dg.AssetExecutionContext, registry: ModelRegistry):
    """The version `readmission_model` registered in this run (or the run this one re-executes), read from
    its materialization: never the registry's newest, which another process may have registered since."""
    for run_id in dict.fromkeys(r for r in (context.run.run_id, context.run.parent_run_id, context.run.root_run_id) if r):
        events = [e for e in context.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                  if e.asset_materialization and e.asset_materialization.asset_key == readmission_model.key]
        if events:
            version = events[-1].asset_materialization.metadata["registered_version"].value
            return registry.client().get_model_version(registry.model_name, str(version))
    raise dg.Failure(description="readmission_model registered no version in this run: the gate judges only the "
                                 "version its own retrain registered (run the whole retrain job)")


def _card(registry: ModelRegistry, version, y, risk, decision: dict, training_rows: int, ledger: dict) -> str:
    """The challenger's model card: its run's holdout metrics, bootstrap intervals, subgroups, the decision."""
    from assets.model.card import bootstrap_intervals, model_card

    metrics = registry.client().get_run(version.run_id).data.metrics
    calibration = getattr(registry.load(version.version), "calibration", None)
    source = ledger.get("source", {})
    return model_card(
        int(version.version), registry.model_name, version.tags.get("candidate", "?"), metrics,
        bootstrap_intervals(y, risk), getattr(calibration, "kind", None),
        registry.load_document(version.run_id, "subgroup_metrics.json") or [], decision,
        {"data_source": source.get("data_source"), "sha256": source.get("sha256"), "origin": source.get("origin"),
         "batches": decision["batches"], "rows": training_rows, "date": now_iso()})
