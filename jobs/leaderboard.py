"""Rank registered models: every version (or those named) on every protocol and test set asked for, beside the
published numbers, with parameters and FLOPs; seeds of one config pooled into mean ± std.

    python jobs/leaderboard.py --protocol gaussian8 dasr_iso                      # every version, corpus val
    python jobs/leaderboard.py models:/cdsr_x4@champion kdsr_x4 --protocol gaussian8 --set-dir Set5=~/data/Set5/HR

Scores are cached in MLflow (experiment blindsr-leaderboard, one run per version × protocol × set, its metrics
tied to the version's logged model and to the set as an MLflow dataset): a re-run evaluates only what is new.
Writes docs/leaderboard.md (or --out), and next to it the same name .csv and .png (PSNR against parameters).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from blindsr import console
from blindsr.errors import InputError
from blindsr.evaluation import LEGENDS, PROTOCOLS, evaluate
from blindsr.evaluation.record import choose_device, log_table
from blindsr.infer import load
from blindsr.leaderboard import Score, Version, build_rows, config_key, eval_sets, page, plot, set_cases, to_csv
from blindsr.models.cost import model_cost
from blindsr.models.inference import model_scale
from blindsr.published import load_published
from blindsr.tracking import leaderboard as board
from blindsr.tracking import resolve_uri
from blindsr.tracking.leaderboard import ModelRef

ROOT = Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "models", nargs="*", help="models:/name/VERSION, name@alias or name (all its versions); default: all"
    )
    p.add_argument("--protocol", nargs="+", default=["gaussian8"], help=f"one or more of {', '.join(PROTOCOLS)}")
    p.add_argument("--set-dir", action="append", default=[], metavar="NAME=PATH", help="a folder of HR test images")
    p.add_argument("--no-corpus", action="store_true", help="leave out the built-in corpus' val images")
    p.add_argument("--crop", type=int, default=0, help="centre-crop HR images to this side (0: whole images)")
    p.add_argument("--published", default=str(ROOT / "benchmarks" / "published.yaml"), help="published results YAML")
    p.add_argument("--out", default="docs/leaderboard.md", help="the Markdown page; .csv and .png go beside it")
    p.add_argument("--cache", default="outputs/eval/lr_cache", help="generated-LR cache ('' to disable)")
    p.add_argument("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--seed", type=int, default=0, help="seed of the self-support crops")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    p.add_argument("--ray", action="store_true", help="score the images in parallel Ray tasks ($RAY_ADDRESS or local)")
    return p


class Models:
    """Each version's model, loaded once and only when something about it is not cached; its scale and cost."""

    def __init__(self, uri: str, device: str | None) -> None:
        self.uri, self.device, self.loaded = uri, choose_device(device), {}

    def __getitem__(self, ref: ModelRef) -> object:
        if ref.uri not in self.loaded:
            self.loaded[ref.uri] = load(ref.uri, self.uri, self.device)
        return self.loaded[ref.uri]

    def describe(self, ref: ModelRef) -> tuple[Version, int]:
        """The version as a leaderboard entry (its cost measured once, then read from its tags) and its scale."""
        scale = ref.params.get("scale") or (re.findall(r"_x(\d+)$", ref.name) or [None])[0]
        cost = [ref.tags.get(board.PARAMS_TAG), ref.tags.get(board.FLOPS_TAG)]
        if None in cost:
            cost = [str(n) for n in model_cost(self[ref])]
            board.tag_version(self.uri, ref, {board.PARAMS_TAG: cost[0], board.FLOPS_TAG: cost[1]})
        family = ref.params.get("model.name") or ref.name.rsplit("_x", 1)[0]
        config = config_key(ref.params) if ref.params else ref.version
        version = Version(ref.name, ref.version, family, config, ref.seed, int(cost[0]), int(cost[1]))
        return version, int(scale) if scale else model_scale(self[ref])


def run(args: argparse.Namespace) -> int:
    uri = resolve_uri(args.tracking_uri)
    if unknown := [p for p in args.protocol if p not in PROTOCOLS]:
        raise InputError(f"unknown protocol {', '.join(unknown)}; protocols: {', '.join(PROTOCOLS)}")
    catalogue, sets = load_published(args.published), eval_sets(args.set_dir, not args.no_corpus, args.crop)
    refs = board.model_refs(uri, args.models)
    if not refs:
        raise InputError(f"no registered model in {uri}")
    models = Models(uri, args.device)
    versions, scales = zip(*(models.describe(ref) for ref in refs), strict=True)
    scale = {ref.uri: s for ref, s in zip(refs, scales, strict=True)}
    jobs = [(ref, p, s) for p in args.protocol for s in sets for ref in refs]
    key = {
        j: f"{j[0].name}/{j[0].version}/{j[1]}/x{scale[j[0].uri]}/{j[2].name}/{j[2].digest}/seed{args.seed}"
        f"/{j[0].model_id or j[0].run_id}"  # a name deleted and registered again numbers its versions from 1 again
        for j in jobs
    }
    cached = board.cached_scores(uri, key.values())
    scores = [
        Score(r.name, r.version, p, scale[r.uri], s.name, cached[key[r, p, s]])
        for r, p, s in jobs
        if key[r, p, s] in cached
    ]
    todo: dict[tuple, list[ModelRef]] = {}
    done = 0
    for ref, p, s in (j for j in jobs if key[j] not in cached):
        todo.setdefault((p, scale[ref.uri], s), []).append(ref)
    for (protocol, x, s), group in todo.items():
        cases = set_cases(protocol, x, s, args.crop, args.cache or None)
        if not cases:
            continue
        title = f"{protocol} x{x} {s.name}, {len({c.image for c in cases})} image(s)"
        rows = {ref.uri: models[ref] for ref in group}
        table = evaluate(
            rows, cases, x, title, seed=args.seed, sources={r: r for r in rows} if args.ray else None, tracking_uri=uri
        )
        for ref in group:
            tags = {"blindsr.protocol": protocol, "blindsr.scale": f"x{x}", "blindsr.set": s.name}
            run_id = board.open_run(uri, key[ref, protocol, s], ref, tags)
            log_table(uri, table, protocol, {ref.uri: run_id}, eval_set=s, model_ids={ref.uri: ref.model_id})
            metrics = table.model_metrics(protocol, ref.uri)
            mean = metrics[f"eval/{protocol}/{s.name}/mean/psnr_y"]
            board.close_run(uri, run_id, ref, {f"leaderboard/{protocol}_x{x}/{s.name}/psnr_y": f"{mean:.4f}"})
            scores.append(Score(ref.name, ref.version, protocol, x, s.name, metrics))
            done += 1
    rows, out = build_rows(versions, scores, catalogue), Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    here = str(Path.cwd()) + "/"  # the page names paths under the project as a reader's checkout would
    argv = sys.argv[1:] if args.argv is None else args.argv
    command = ("python jobs/leaderboard.py " + shlex.join(argv)).replace(here, "")
    sources = ", ".join(f"{s.name} ({str(s.source).replace(here, '')}, digest {s.digest})" for s in sets)
    cut = f"HR centre-cropped to {args.crop}² px" if args.crop else "whole images"
    notes = [f"Test sets: {sources}; {cut}.", "", f"![PSNR-Y against parameters]({out.with_suffix('.png').name})"]
    out.write_text(page(rows, catalogue, LEGENDS, command, notes))
    out.with_suffix(".csv").write_text(to_csv(rows, catalogue))
    plot(rows, out.with_suffix(".png"))
    print(f"evaluated {done} of {len(jobs)} version × protocol × set ({len(jobs) - done} cached)")
    print(f"wrote {out}, {out.with_suffix('.csv')}, {out.with_suffix('.png')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser()
    p.set_defaults(argv=argv)
    return console.job(p, run, argv)


if __name__ == "__main__":
    sys.exit(main())
