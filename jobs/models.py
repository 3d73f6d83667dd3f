"""Query the MLflow model registry: registered models, versions, aliases, validation and evaluation PSNR.

    python jobs/models.py list
    python jobs/models.py show cdsr_x4
    python jobs/models.py promote cdsr_x4 3 champion      # then use models:/cdsr_x4@champion
    python jobs/models.py compare cdsr_x4 --metric /mean/psnr_y

``latest`` is not an alias you set: MLflow resolves models:/<name>@latest to the newest version itself.
On an authenticated server set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN):
a read user may list, show and compare; ``promote`` needs a training user (jobs/mlflow_users.py).
"""

from __future__ import annotations

import argparse
import sys

from blindsr import console
from blindsr.tables import markdown_table
from blindsr.tracking import VersionInfo, list_versions, resolve_uri, set_alias, version_metrics


def psnr(v: VersionInfo) -> str:
    return f"{v.val_psnr:.3f}" if v.val_psnr is not None else "-"


def cmd_list(uri: str, args: argparse.Namespace) -> str:
    versions = list_versions(uri)
    if not versions:
        return f"no registered models in {uri}"
    rows = [[v.name, v.version, ", ".join(v.aliases) or "-", psnr(v), v.created, v.run_id or "-"] for v in versions]
    return markdown_table(["model", "version", "aliases", "val psnr_y", "created (UTC)", "run"], rows)


def cmd_show(uri: str, args: argparse.Namespace) -> str:
    versions = list_versions(uri, args.name)
    lines = [f"{args.name} ({uri}); models:/{args.name}@latest is version {versions[0].version}"]
    evals = version_metrics(uri, args.name)
    for v in versions:
        lines.append(f"\nversion {v.version}  aliases: {', '.join(v.aliases) or '-'}  created {v.created} UTC")
        lines.append(f"  val psnr_y {psnr(v)}  run {v.run_id or '-'}  {len(evals[v.version])} eval metrics")
        lines += [f"  tag {k} = {val}" for k, val in sorted(v.tags.items())]
    return "\n".join(lines)


def cmd_promote(uri: str, args: argparse.Namespace) -> str:
    set_alias(uri, args.name, args.version, args.alias)
    return f"models:/{args.name}@{args.alias} -> version {args.version}"


def cmd_compare(uri: str, args: argparse.Namespace) -> str:
    versions = list_versions(uri, args.name)
    evals = version_metrics(uri, args.name)
    keys = sorted({k for m in evals.values() for k in m if args.metric in k})
    if not keys:
        return (
            f"no evaluation metric matching {args.metric!r} on any version of {args.name} (run jobs/evaluate.py --log)"
        )
    rows = [
        [v.version, ", ".join(v.aliases) or "-", psnr(v)]
        + [f"{evals[v.version][k]:.3f}" if k in evals[v.version] else "-" for k in keys]
        for v in versions
    ]
    return markdown_table(["version", "aliases", "val psnr_y", *(k.removeprefix("eval/") for k in keys)], rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered models, versions, aliases, validation PSNR").set_defaults(fn=cmd_list)
    show = sub.add_parser("show", help="one registered model's versions, aliases and tags")
    show.add_argument("name")
    show.set_defaults(fn=cmd_show)
    promote = sub.add_parser("promote", help="point an alias (e.g. champion) at a version")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("alias")
    promote.set_defaults(fn=cmd_promote)
    compare = sub.add_parser("compare", help="table of the versions' evaluation metrics")
    compare.add_argument("name")
    compare.add_argument("--metric", default="/mean/psnr_y", help="substring the metric names must contain")
    compare.set_defaults(fn=cmd_compare)
    return p


def run(args: argparse.Namespace) -> int:
    print(args.fn(resolve_uri(args.tracking_uri), args))
    return 0


def main(argv: list[str] | None = None) -> int:
    return console.job(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
