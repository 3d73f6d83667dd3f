"""The leaderboard: tiny real models registered in a temporary MLflow store, scored on the corpus and a folder of
real photographs; cached per version × protocol × set (a re-run evaluates nothing), tied to logged models and
MLflow datasets; seeds pooled; published numbers placed from a cited YAML; FLOPs against a count by hand."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

import mlflow
import pytest
import ray
import torch
import yaml
from torch import nn

from blindsr.config import flatten
from blindsr.data.corpus import image
from blindsr.data.images import HRImage, write_png
from blindsr.data.sources import load_folder
from blindsr.evaluation import evaluate, generated_cases
from blindsr.leaderboard import Score, Version, build_rows, set_digest, to_csv
from blindsr.leaderboard.render import tables
from blindsr.models import build_model
from blindsr.models.cost import flops_per_image
from blindsr.published import load_published
from blindsr.tracking import Tracker, load_model
from blindsr.tracking.leaderboard import EXPERIMENT, KEY_TAG
from helpers import job, tiny, tiny_config

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL, CROP = "cmdsr", 48


def test_flops_equal_a_count_by_hand():
    """SRResNet is convolutions only (weights (C_out, C_in, k, k)): 2 · C_out · C_in · k² · H_out · W_out each."""
    model, counted = tiny("srresnet"), []

    def hook(m: nn.Module, _: object, out: torch.Tensor) -> None:
        counted.append(2 * m.weight.numel() * out.shape[-2] * out.shape[-1])

    convs = [m for m in model.modules() if getattr(m, "weight", None) is not None and m.weight.ndim == 4]
    assert len(convs) >= 4
    for m in convs:
        m.register_forward_hook(hook)
    assert flops_per_image(model, 40) == sum(counted) > 0
    small = sum(counted)
    counted.clear()
    assert flops_per_image(model, 80) == sum(counted) == 4 * small  # fully convolutional: linear in pixels


def test_published_yaml_holds_the_spec_numbers(tmp_path):
    """benchmarks/published.yaml against ../shared/spec/baselines.md (KDSR Table 1, CdCL Table 1, CDSR Table 7)."""
    cat = load_published(ROOT / "benchmarks" / "published.yaml")
    (dasr,) = [e for e in cat.find("gaussian8", 4) if e.method == "DASR"]
    assert dasr.psnr_y["Set5"] == (31.46,) and dasr.source == "KDSR (ICLR 2023) Table 1" and dasr.family == "dasr"
    (cdcl,) = [e for e in cat.find("dasr_iso", 4) if e.method == "CdCL-L"]
    assert (
        cat.columns("dasr_iso", 4) == ("sig1.2", "sig2.4", "sig3.6")
        and cat.columns("dasr_iso", 2) == ("mean",)
        and cdcl.psnr_y["Urban100"]
        == (
            26.58,
            26.28,
            25.37,
        )
    )
    assert [e.psnr_y["DIV2KRK"] for e in cat.find("div2krk", 2) if e.method == "CDSR"] == [(32.68,)]
    assert all(e.source for e in cat.entries) and len(cat.entries) == 30
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"reported": {"dasr_iso": {2: ["sig1.2", "sig2.4"]}}, "entries": [_entry("X", 1.0)]}))
    with pytest.raises(ValueError, match="entry 0 \\(X\\) holiday: 1 values, 2 reported"):
        load_published(bad)


def test_rows_place_the_published_number_of_the_same_family_and_nearest_size():
    """Two seeds of a DASR-sized dasr_x4 on Set5 (gaussian8 x4) sit beside DASR's 31.46 (KDSR Table 1); the other
    published methods get rows of their own, each once however many tables hold it; the CSV has one line each."""
    cat = load_published(ROOT / "benchmarks" / "published.yaml")
    versions = [Version("dasr_x4", v, "dasr", "cfg", seed, 5_820_000, 10**11) for v, seed in (("1", "0"), ("2", "1"))]
    scores = []
    for v, psnr in (("1", 30.0), ("2", 31.0)):
        for protocol in ("gaussian8", "cdsr9"):
            metrics = {f"eval/{protocol}/Set5/mean/psnr_y": psnr, f"eval/{protocol}/Set5/mean/psnr_y_bicubic": 28.0}
            scores.append(Score("dasr_x4", v, protocol, 4, "Set5", metrics))
    rows = build_rows(versions, scores, cat)
    assert [r.method for r in rows[:2]] == ["dasr_x4", "bicubic"] and rows[0].seeds == 2
    assert rows[0].ours[("gaussian8", 4, "Set5")][0] == pytest.approx((30.5, statistics.stdev([30.0, 31.0])))
    assert rows[0].paper[("gaussian8", 4)].psnr_y["Set5"] == (31.46,) and rows[0].paper[("cdsr9", 4)].method == "DASR"
    others = [r.method for r in rows[2:]]
    assert sorted(others) == sorted(set(others)) and {"KDSR_S-M", "DCLS", "MANet", "CDSR"} <= set(others)
    assert not any(r.method == "CdCL-S" for r in rows)  # dasr_iso was not scored: no table, no row
    text = tables(rows, cat, {})
    assert "| dasr_x4 ↔ DASR [1] | 1,2 | 2 | 5.82 | 100.0 | 30.50 ± 0.71 | 31.46 | 28.11 | 27.44 | 25.36 |" in text
    lines = list(csv.DictReader(io.StringIO(to_csv(rows, cat))))
    assert len(lines) == len(rows) and lines[0]["gaussian8_x4/Set5/mean/published_psnr_y"] == "31.46"


def _entry(method: str, value: float, family: str | None = None, params_m: float | None = 0.02) -> dict:
    source = f"{method} paper, Table 9"
    return dict(method=method, family=family, params_m=params_m, protocol="dasr_iso", scale=2, source=source,
                psnr_y={"holiday": value})  # fmt: skip


def _register(uri: str, name: str, arch: str, seed: int) -> None:
    """A tiny ``arch`` model with seed-dependent weights, registered as ``name`` from a run whose params are the
    flattened config (with ``seed``), as training registers it."""
    cfg = tiny_config(arch)
    cfg.seed = seed
    torch.manual_seed(seed)
    model = build_model(cfg.model, cfg.scale).eval()
    tracker = Tracker(uri)
    tracker.start("blindsr-test", f"{name}-{seed}", flatten(cfg))
    assert tracker.log_model(model, cfg, name, None) is not None, tracker.summary()
    tracker.end()


def _rows(path: Path) -> dict[str, dict[str, str]]:
    return {r["method"]: r for r in csv.DictReader(io.StringIO(path.read_text()))}


def test_leaderboard_caches_ties_pools_seeds_and_places_published(tmp_path, capsys, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for seed in (0, 1):
        _register(uri, "srresnet_x2", "srresnet", seed)
    _register(uri, "cmdsr_x2", "cmdsr", 0)
    photo = image("astronaut")
    for i in range(2):
        write_png(tmp_path / "holiday" / f"p{i}.png", photo[i * 100 : i * 100 + 90, 50:170])
    published = tmp_path / "published.yaml"
    entries = [_entry("PaperNet", 33.5, "srresnet", 0.02), _entry("BigNet", 31.25, None, 9.0)]
    published.write_text(yaml.safe_dump({"reported": {"dasr_iso": {2: ["sig1.2"]}}, "entries": entries}))
    out = tmp_path / "docs" / "leaderboard.md"
    args = ["--protocol", "dasr_iso", "--set-dir", f"holiday={tmp_path / 'holiday'}", "--crop", str(CROP)]
    args += ["--tracking-uri", uri, "--published", str(published), "--out", str(out), "--cache", ""]

    assert job("leaderboard").main(args) == 0, capsys.readouterr().err
    assert "evaluated 6 of 6 version × protocol × set (0 cached)" in capsys.readouterr().out
    rows = _rows(out.with_suffix(".csv"))
    assert list(rows) == [*sorted(["srresnet_x2", "cmdsr_x2"], key=lambda m: -float(
        rows[m]["dasr_iso_x2/corpus/sig1.2/psnr_y"])), "bicubic", "BigNet"]  # fmt: skip
    sr = rows["srresnet_x2"]
    assert (sr["versions"], sr["seeds"], sr["family"]) == ("1 2", "2", "srresnet")
    assert sr["dasr_iso_x2/holiday/sig1.2/published_psnr_y"] == "33.50" and "PaperNet: PaperNet paper" in sr[
        "dasr_iso_x2/published_source"]  # fmt: skip
    assert rows["cmdsr_x2"]["dasr_iso_x2/holiday/sig1.2/published_psnr_y"] == ""
    assert rows["BigNet"]["dasr_iso_x2/holiday/sig1.2/psnr_y"] == "" and rows["BigNet"]["parameters"] == "9000000"

    # ours = an independent evaluation of each seed's model on the same cropped photographs, pooled
    client = mlflow.MlflowClient(uri)
    hrs = [HRImage(i.id, i.pixels) for i in load_folder(tmp_path / "holiday")]
    cases = [c for c in generated_cases("dasr_iso", 2, {"holiday": hrs}, crop=CROP) if c.degradation == "sig1.2"]
    per_seed = []
    for v in ("1", "2"):
        table = evaluate({"m": load_model(f"models:/srresnet_x2/{v}", uri)}, cases, 2, "t", progress=False)
        per_seed.append(table.cells["m"][("holiday", "sig1.2")][0])
    assert float(sr["dasr_iso_x2/holiday/sig1.2/psnr_y"]) == pytest.approx(statistics.mean(per_seed), abs=1e-4)
    assert float(sr["dasr_iso_x2/holiday/sig1.2/psnr_y_std"]) == pytest.approx(statistics.stdev(per_seed), abs=1e-4)
    assert statistics.stdev(per_seed) > 0
    flops = float(sr["flops_256"])
    assert flops == flops_per_image(load_model("models:/srresnet_x2/1", uri)) and int(sr["parameters"]) > 0

    page = out.read_text()
    assert "## dasr_iso ×2" in page and "| srresnet_x2 ↔ PaperNet [1] | 1,2 | 2 |" in page
    assert " ± " in page and "[1] PaperNet paper, Table 9" in page and "[2] BigNet paper, Table 9" in page
    assert "python jobs/leaderboard.py --protocol dasr_iso" in page and out.with_suffix(".png").stat().st_size > 5000

    # every score: a metric of the version's logged model, on its dataset; the run has both as inputs
    digest = set_digest(str(tmp_path / "holiday"), CROP)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    mv = client.get_model_version("srresnet_x2", "2")
    model_id = mv.source.removeprefix("models:/")
    (run,) = [r for r in runs if r.data.tags[KEY_TAG].startswith("srresnet_x2/2/dasr_iso/x2/holiday/")]
    inputs = client.get_run(run.info.run_id).inputs
    (ds,), (model_input,) = inputs.dataset_inputs, inputs.model_inputs
    assert (ds.dataset.name, ds.dataset.digest) == ("holiday", digest) and model_input.model_id == model_id
    key = "eval/dasr_iso/holiday/sig1.2/psnr_y"
    logged = {m.key: m for m in client.get_logged_model(model_id).metrics}
    assert (logged[key].dataset_name, logged[key].dataset_digest) == ("holiday", digest)
    assert logged[key].value == pytest.approx(per_seed[1])
    mlflow.set_tracking_uri(uri)
    found = mlflow.search_logged_models(
        experiment_ids=[mv_exp(client, mv)], filter_string=f"metrics.`{key}` > 0",
        datasets=[{"dataset_name": "holiday", "dataset_digest": digest}], output_format="list",
    )  # fmt: skip
    assert len(found) == 3  # the registry searched as a leaderboard
    assert float(mv.tags["leaderboard/dasr_iso_x2/holiday/psnr_y"]) == pytest.approx(
        run.data.metrics["eval/dasr_iso/holiday/mean/psnr_y"], abs=1e-4)  # fmt: skip

    # a re-run evaluates nothing; a new version is the only thing evaluated next
    before = out.with_suffix(".csv").read_text()
    assert job("leaderboard").main(args) == 0
    assert "evaluated 0 of 6 version × protocol × set (6 cached)" in capsys.readouterr().out
    assert out.with_suffix(".csv").read_text() == before and len(client.search_runs([exp.experiment_id])) == 6
    monkeypatch.chdir(tmp_path)  # from the project folder, the page names its paths relative to it
    assert job("leaderboard").main(args) == 0 and str(tmp_path) not in out.read_text()
    assert "--tracking-uri sqlite:///mlflow.db" in out.read_text() and "holiday (holiday, digest" in out.read_text()
    capsys.readouterr()
    _register(uri, "cmdsr_x2", "cmdsr", 1)
    assert job("leaderboard").main(["cmdsr_x2", *args]) == 0
    assert "evaluated 2 of 4 version × protocol × set (2 cached)" in capsys.readouterr().out
    assert _rows(out.with_suffix(".csv"))["cmdsr_x2"]["seeds"] == "2"
    client.delete_registered_model("srresnet_x2")  # registered again, its versions are numbered from 1 again
    _register(uri, "srresnet_x2", "srresnet", 5)
    assert job("leaderboard").main(["srresnet_x2", *args]) == 0
    assert "evaluated 2 of 2 version × protocol × set (0 cached)" in capsys.readouterr().out

    for bad, message in (
        (["--protocol", "gaussian9"], "error: unknown protocol gaussian9; protocols: cmdsr,"),
        (["--set-dir", f"x={tmp_path / 'nope'}"], "nope does not exist or is not a folder"),
        (["models:/nope/1"], "error: no registered model version 'models:/nope/1'"),
        (["cmdsr_x2@champion"], "no registered model version 'cmdsr_x2@champion'"),
    ):
        assert job("leaderboard").main([*args, *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not ray.is_initialized()


def mv_exp(client: mlflow.MlflowClient, mv: object) -> str:
    return client.get_logged_model(mv.source.removeprefix("models:/")).experiment_id


@pytest.mark.ray
def test_ray_leaderboard_equals_the_local_one(tmp_path, capsys):
    """--ray scores the same cases in Ray tasks that load each version from the store: the same table."""
    uri = f"sqlite:///{tmp_path / 'local.db'}"
    _register(uri, "cmdsr_x2", "cmdsr", 0)
    (tmp_path / "remote.db").write_bytes((tmp_path / "local.db").read_bytes())  # the same store, twice
    args = [
        "--protocol",
        "cmdsr",
        "--crop",
        str(CROP),
        "--cache",
        "",
        "--published",
        str(ROOT / "benchmarks" / "published.yaml"),
    ]
    assert job("leaderboard").main([*args, "--tracking-uri", uri, "--out", str(tmp_path / "local.md")]) == 0
    remote = f"sqlite:///{tmp_path / 'remote.db'}"
    try:
        assert (
            job("leaderboard").main([*args, "--ray", "--tracking-uri", remote, "--out", str(tmp_path / "ray.md")]) == 0
        )
    finally:
        ray.shutdown()
    assert "evaluated 1 of 1" in capsys.readouterr().out
    assert _rows(tmp_path / "ray.csv") == _rows(tmp_path / "local.csv")
