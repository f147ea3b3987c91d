"""Only the gate can promote: MLflow's basic-auth app with one user per role.

The tracking server runs `--app-name basic-auth` with every user's default permission READ. The
pipeline user creates the experiment and the registered model, so it owns them (MANAGE): it logs runs,
registers versions and moves `@production` through the gate. The API user keeps READ: it resolves the
alias and downloads versions, and MLflow answers 403 when it tries to register or move anything.
Used by `make up` (scripts/up.sh) and compose's `mlflow-users` service; tested in tests/stack.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

AUTH_APP = "basic-auth"


@dataclass(frozen=True)
class Account:
    username: str
    password: str


def auth_config(path: Path, database_uri: str, admin: Account) -> Path:
    """Write the server's auth config (read through MLFLOW_AUTH_CONFIG_PATH); READ is the default."""
    path.write_text("[mlflow]\ndefault_permission = READ\n"
                    f"database_uri = {database_uri}\nadmin_username = {admin.username}\n"
                    f"admin_password = {admin.password}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return path


def provision(tracking_uri: str, admin: Account, pipeline: Account, api: Account) -> None:
    """Create the pipeline and API users (idempotent); the admin account must already work."""
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    previous = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = admin.username, admin.password
    try:
        client = get_app_client(AUTH_APP, tracking_uri=tracking_uri)
        for account in (pipeline, api):
            try:
                client.create_user(account.username, account.password)
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                client.update_user_password(account.username, account.password)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
        auth_config(args.path, args.database_uri, account("ADMIN")).chmod(0o600)
        return
    provision(args.tracking_uri, account("ADMIN"), account("PIPELINE"), account("API"))
    print(f"MLflow users ready: {account('PIPELINE').username} (pipeline), {account('API').username} (API, read only)")


if __name__ == "__main__":
    main()
