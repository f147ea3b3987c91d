"""Only the gate can promote: MLflow's basic-auth app with one user per role.

The tracking server runs `--app-name basic-auth` with every user's default permission READ, and
`authenticate_creators_only` in front of MLflow's own check: only the admin and the pipeline user may create
experiments and registered models (MLflow lets any account create them, so the API's read-only account could
otherwise claim `readmission` on a fresh install). At start-up the admin provisions the `readmit` experiment
and the registered model and grants the pipeline MANAGE on both: it logs runs, registers versions and moves
`@production` through the gate. The API user keeps READ: it resolves the alias and downloads versions, and
MLflow answers 403 when it tries to create, register or move anything.
Used by `make up` (scripts/up.sh) and compose's `mlflow-users` service; tested in tests/stack.
"""
from __future__ import annotations

import argparse
import configparser
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from assets.settings import temporary_environment

AUTH_APP = "basic-auth"
AUTHORIZATION_FUNCTION = "assets.resources.mlflow_auth:authenticate_creators_only"
CREATE_PATHS = ("/mlflow/experiments/create", "/mlflow/registered-models/create")


@dataclass(frozen=True)
class Account:
    username: str
    password: str


def auth_config(path: Path, database_uri: str, admin: Account, creators: tuple[str, ...] = ("pipeline",)) -> Path:
    """Write the server's auth config (read through MLFLOW_AUTH_CONFIG_PATH); READ is the default, and only
    the admin and `creators` may create experiments and registered models."""
    path.write_text("[mlflow]\ndefault_permission = READ\n"
                    f"database_uri = {database_uri}\nadmin_username = {admin.username}\n"
                    f"admin_password = {admin.password}\n"
                    f"authorization_function = {AUTHORIZATION_FUNCTION}\n"
                    f"[readmit]\ncreators = {','.join((admin.username, *creators))}\n")
    return path


def authenticate_creators_only():
    """MLflow's basic auth, then 403 for a create of an experiment or registered model by anyone else than
    the creators named in the auth config (runs in the tracking server, inside a Flask request)."""
    from flask import request
    from mlflow.server.auth import authenticate_request_basic_auth, make_forbidden_response

    authorization = authenticate_request_basic_auth()
    if getattr(authorization, "username", None) is None:
        return authorization  # MLflow's own 401
    if request.path.rstrip("/").endswith(CREATE_PATHS) and authorization.username not in _creators():
        return make_forbidden_response()
    return authorization


@lru_cache(maxsize=1)
def _creators() -> frozenset[str]:
    config = configparser.ConfigParser()
    config.read(os.environ["MLFLOW_AUTH_CONFIG_PATH"])
    return frozenset(name.strip() for name in config.get("readmit", "creators", fallback="").split(",") if name.strip())


def provision(tracking_uri: str, admin: Account, pipeline: Account, api: Account,
              model_name: str = "readmission") -> None:
    """Create the pipeline and API users, the experiment and the registered model, and grant the pipeline
    MANAGE on both (idempotent); the admin account must already work."""
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client
    from mlflow.tracking import MlflowClient

    from assets.resources.registry import EXPERIMENT

    admin_login = {"MLFLOW_TRACKING_USERNAME": admin.username, "MLFLOW_TRACKING_PASSWORD": admin.password}
    with temporary_environment(admin_login):
        client = get_app_client(AUTH_APP, tracking_uri=tracking_uri)
        for account in (pipeline, api):
            try:
                client.create_user(account.username, account.password)
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                client.update_user_password(account.username, account.password)
        # The registry is this server too: never an MLFLOW_REGISTRY_URI the caller's environment may hold.
        tracking = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        experiment = tracking.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else tracking.create_experiment(EXPERIMENT)
        if tracking.search_registered_models(filter_string=f"name = '{model_name}'") == []:
            tracking.create_registered_model(model_name)
        for kind, resource in (("experiment", experiment_id), ("registered_model", model_name)):
            try:
                client.grant_user_permission(pipeline.username, kind, resource, "MANAGE")
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise


def main() -> None:
    """`config PATH DB_URI` writes the server's auth config; `provision URI` creates the users. Accounts come
    from READMIT_MLFLOW_{ADMIN,PIPELINE,API}_{USERNAME,PASSWORD} (never from arguments: `ps` shows those)."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    config = sub.add_parser("config")
    config.add_argument("path", type=Path)
    config.add_argument("database_uri")
    sub.add_parser("provision").add_argument("tracking_uri")
    args = parser.parse_args()

    def account(role: str) -> Account:
        return Account(os.environ[f"READMIT_MLFLOW_{role}_USERNAME"], os.environ[f"READMIT_MLFLOW_{role}_PASSWORD"])

    if args.command == "config":
        creators = (os.environ.get("READMIT_MLFLOW_PIPELINE_USERNAME") or "pipeline",)
        auth_config(args.path, args.database_uri, account("ADMIN"), creators).chmod(0o600)
        return
    from assets.settings import Settings

    model_name = Settings.from_env().model_name
    provision(args.tracking_uri, account("ADMIN"), account("PIPELINE"), account("API"), model_name)
    print(f"MLflow users ready: {account('PIPELINE').username} (pipeline: MANAGE on the experiment and "
          f"{model_name}), {account('API').username} (API, read only)")


if __name__ == "__main__":
    main()
