"""Users of an authenticated MLflow server (``mlflow server --app-name basic-auth``; cluster/mlflow/): run as
its admin, i.e. with the admin's MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in the environment.

    python jobs/mlflow_users.py --tracking-uri http://mlflow:5000 add trainer --role train
    python jobs/mlflow_users.py --tracking-uri http://mlflow:5000 add evaluator --role read
    python jobs/mlflow_users.py --tracking-uri http://mlflow:5000 grant trainer   # after new experiments appear

The new user's password is read from the variable named by --password-env (default BLINDSR_USER_PASSWORD),
else prompted for; it is never an argument (it would show in ``ps`` and the shell history). ``train`` users
may write every ``blindsr*`` experiment and registered model (and own what they create: runs, versions, the
``champion`` alias); ``read`` users keep the server's default READ: list, show, evaluate and load models,
but not log, register or move an alias. Re-adding a user sets a new password.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from blindsr import console
from blindsr.errors import InputError, UserError
from blindsr.tracking import RegistryError, add_user, grant_training, refusal, resolve_uri


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", help="MLflow server (default $MLFLOW_TRACKING_URI)")
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create a user (or set its password) with a role")
    add.add_argument("name")
    add.add_argument("--role", choices=["train", "read"], required=True)
    add.add_argument("--password-env", default="BLINDSR_USER_PASSWORD", help="variable holding the new password")
    grant = sub.add_parser("grant", help="give a training user EDIT on every blindsr experiment and model")
    grant.add_argument("name")
    return p


def password(var: str) -> str:
    if value := os.environ.get(var):
        return value
    if sys.stdin.isatty():
        return getpass.getpass("new user's password: ")
    raise ValueError(f"no password: set {var} (or run in a terminal to be asked)")


def run(args: argparse.Namespace) -> int:
    uri = resolve_uri(args.tracking_uri)
    if not uri.startswith(("http://", "https://")):
        raise InputError(f"{uri} is not an MLflow server: users exist only on a server with --app-name basic-auth")
    try:
        if args.command == "add":
            granted = add_user(uri, args.name, password(args.password_env), args.role)
        else:
            granted = grant_training(uri, args.name)
    except UserError:
        raise
    except Exception as e:  # MLflow's errors (401/403 from a non-admin, a bad password policy)
        raise RegistryError(refusal(e, uri) or str(e).strip().splitlines()[0]) from e
    print(f"{args.name}: " + (", ".join(granted) if granted else "default permission (READ)"))
    return 0


def main(argv: list[str] | None = None) -> int:
    return console.job(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
