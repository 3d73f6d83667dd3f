"""Evaluation tables: numbers against a direct computation, LR cache, oracle support, DIV2KRK, and the job end
to end from a tiny model registered in a real temporary MLflow store to a logged table on the corpus."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from blindsr.config import Config, ModelConfig
from blindsr.data.benchmarks import load_div2krk
from blindsr.data.images import HRImage, write_png
from blindsr.degradations.pipeline import apply, mod_crop
from blindsr.degradations.presets import TEST_PRESETS
from blindsr.evaluation import (
    BICUBIC,
    ORACLE,
    Case,
    bicubic_image,
    centre_crop,
    div2krk_cases,
    evaluate,
    generated_cases,
    named_set,
    oracle_support,
)
from blindsr.evaluation.validation import MODEL, val_cases, validate
from blindsr.metrics import psnr, ssim, to_uint8
from blindsr.tracking import Tracker
from helpers import TINY, job, tiny, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def test_table_numbers_equal_a_direct_computation(photo):
    """One image, protocol cmdsr ×2: each cell is PSNR/SSIM of model(apply(hr, spec)) against hr."""
    model = tiny("cmdsr")
    table = evaluate({"m": model}, generated_cases("cmdsr", 2, {"one": [HRImage("cat", photo)]}, crop=48), 2, "t")
    assert list(table.cells) == ["m", "m" + ORACLE, BICUBIC]
    hr = mod_crop(centre_crop(photo, 48), 2)
    for deg, spec in TEST_PRESETS["cmdsr"](2).items():
        lr = apply(hr, spec)
        with torch.no_grad():
            sr = to_uint8(model(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255)[0])
        assert table.cells["m"][("one", deg)] == (psnr(sr, hr, shave=2), ssim(sr, hr, shave=2))
        bic = bicubic_image(lr, 2)
        assert table.cells[BICUBIC][("one", deg)] == (psnr(bic, hr, shave=2), ssim(bic, hr, shave=2))
    metrics = table.metrics("cmdsr", "m")
    assert metrics["eval/cmdsr/one/severe/psnr_y"] == table.cells["m"][("one", "severe")][0]
    assert metrics["eval/cmdsr/one/mean/psnr_y"] == pytest.approx(np.mean([v[0] for v in table.cells["m"].values()]))
    assert table.csv().count("\n") == 1 + 3 * 4 and "| m (oracle support) |" in table.markdown()


def test_validation_is_the_evaluation_of_the_runs_protocol_subset(tmp_path, photo):
    """In-training validation scores the same numbers as the evaluation entry point on the same cases, names
    its set after the folder, keeps the SR of the sampled cases and rejects degradations the protocol lacks."""
    for i in range(2):
        write_png(tmp_path / "val" / f"img{i}.png", photo[i * 8 : i * 8 + 80, :96])
    cfg = Config(scale=2, model=ModelConfig(name="srresnet", **{k: TINY[k] for k in ("n_feats", "n_blocks")}))
    cfg.data.val_source, cfg.train.val_images, cfg.train.val_crop = str(tmp_path / "val"), 2, 64
    cases = val_cases(cfg)
    assert {(c.set, c.degradation) for c in cases} == {("val", "middle"), ("val", "severe")} and len(cases) == 4
    model = tiny("srresnet").train()
    metrics, picture = validate(model, cases, 2, samples=1)
    table = evaluate({MODEL: model}, cases, 2, "t")
    for deg in ("middle", "severe"):
        assert metrics[f"val/{deg}/psnr_y"] == table.cells[MODEL][("val", deg)][0]
    direct = [psnr(bicubic_image(c.lr, 2), c.hr, shave=2) for c in cases]
    assert metrics["val/bicubic_psnr_y"] == pytest.approx(np.mean(direct))
    assert picture is not None and picture.shape[1] >= 4 * cases[0].hr.shape[1]  # LR | SR | HR | kernel
    assert model.training
    assert list(named_set("corpus", 2)) == ["corpus"]
    with pytest.raises(ValueError, match="has no degradation"):
        generated_cases("cmdsr", 2, {"s": []}, degradations=["medium"])


def test_generated_lr_is_cached_with_its_spec(tmp_path, photo):
    sets = {"s": [HRImage("a", photo[:40, :60]), HRImage("b", photo[40:80, :60])]}
    first = generated_cases("bicubic", 2, sets, cache_dir=tmp_path)
    (folder,) = tmp_path.iterdir()
    assert (folder / "bicubic_x2" / "bicubic" / "spec.json").is_file()
    assert len(list((folder / "bicubic_x2" / "bicubic").glob("*.png"))) == 2
    again = generated_cases("bicubic", 2, sets, cache_dir=tmp_path)
    assert all(np.array_equal(x.lr, y.lr) for x, y in zip(first, again, strict=True))
    generated_cases("bicubic", 2, {"s": [HRImage("a", photo[:40, :62])]}, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # other HR pixels, other cache folder


def test_oracle_support_comes_from_other_images_of_the_same_degradation():
    def case(image: str, deg: str, value: int) -> Case:
        return Case("s", deg, image, np.full((20, 24, 3), value, np.uint8), np.zeros((40, 48, 3), np.uint8))

    cases = [case("a", "d1", 10), case("b", "d1", 20), case("c", "d1", 30), case("a", "d2", 99)]
    support = oracle_support(cases, 0, 8, torch.Generator().manual_seed(0))
    assert support.shape == (1, 8, 3, 20, 20)
    assert set(np.unique(np.rint(support.numpy() * 255))) <= {20.0, 30.0}
    alone = oracle_support(cases, 3, 2, torch.Generator().manual_seed(0))
    assert set(np.unique(np.rint(alone.numpy() * 255))) == {99.0}


def test_div2krk_cases_and_scale_mismatch(tmp_path, photo):
    hr = mod_crop(photo[:64, :80], 2)
    write_png(tmp_path / "gt" / "img_1_gt.png", hr)
    write_png(tmp_path / "lr_x2" / "im_1.png", apply(hr, TEST_PRESETS["bicubic"](2)["bicubic"]))
    cases = div2krk_cases(load_div2krk(tmp_path, 2), 2, crop=32)
    assert cases[0].lr.shape == (16, 16, 3) and cases[0].hr.shape == (32, 32, 3)
    table = evaluate({"m": tiny("srresnet")}, cases, 2, "div2krk")
    assert list(table.cells) == ["m", BICUBIC] and table.columns == [("DIV2KRK", "given")]
    with pytest.raises(ValueError, match="upscales x2 but the protocol is evaluated at x4"):
        evaluate({"m": tiny("srresnet")}, cases, 4, "t")


def test_job_end_to_end_from_the_registry(tmp_path, capsys, photo):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri)
    tracker.start("blindsr-test", "tiny", {"scale": 2})
    cfg = tiny_config("cmdsr")
    version = tracker.log_model(tiny("cmdsr"), cfg, "tiny_x2", 20.0)
    tracker.end()
    assert version == "1", tracker.summary()

    out = tmp_path / "out"
    args = ["models:/tiny_x2@champion", "--protocol", "bicubic", "--crop", "64", "--tracking-uri", uri]
    args += ["--out", str(out), "--cache", str(tmp_path / "cache"), "--per-image", "--save-images", "--log"]
    assert job("evaluate").main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "| models:/tiny_x2@champion (oracle support) |" in printed and "corpus:" in printed
    assert (out / "table.md").read_text().strip() in printed
    assert len((out / "per_image.csv").read_text().splitlines()) == 1 + 3 * 3  # 3 rows × 3 corpus val images
    assert len(list((out / "sr").rglob("*.png"))) == 9
    run = mlflow.MlflowClient(uri).get_run(mlflow.MlflowClient(uri).get_model_version("tiny_x2", "1").run_id)
    assert {"eval/bicubic/corpus/bicubic/psnr_y", "eval/bicubic/corpus/mean/psnr_y_oracle"} <= set(run.data.metrics)
    assert '"bicubic",corpus,mean,' in (out / "table.csv").read_text()

    for name, rows in (("holiday", slice(0, 70)), ("street", slice(60, 140))):
        for i in range(2):
            write_png(tmp_path / name / f"sub{i}" / f"p{i}.png", photo[rows, i * 50 : i * 50 + 90])
    folders = [str(tmp_path / "holiday"), str(tmp_path / "street")]
    args = ["models:/tiny_x2/1", "--protocol", "cdsr9", "--tracking-uri", uri, "--images", *folders]
    assert job("evaluate").main([*args, "--out", str(tmp_path / "own"), "--cache", ""]) == 0
    printed = capsys.readouterr().out
    assert "holiday:" in printed and "street:" in printed and "corpus:" not in printed and "λ1_λ2_θ" in printed
    csv = (tmp_path / "own" / "table.csv").read_text()
    assert csv.count('"models:/tiny_x2/1",holiday,') == 10 and csv.count('"bicubic",street,') == 10  # 9 + mean
    write_png(tmp_path / "again" / "holiday" / "x.png", photo[:70, :90])
    for bad, message in (
        ([*args, str(tmp_path / "again" / "holiday")], "a test set named 'holiday' is already evaluated"),
        ([*args, str(tmp_path / "nope")], "nope does not exist or is not a folder"),
        ([args[0], "--protocol", "div2krk", "--root", str(tmp_path), *args[3:]], "--images needs a generated protocol"),
    ):
        assert job("evaluate").main(bad) == 2 and message in capsys.readouterr().err

    assert job("evaluate").main(["models:/tiny_x2@champion", "--scale", "4", "--tracking-uri", uri]) == 2
    assert "upscales x2 but the protocol is evaluated at x4" in capsys.readouterr().err
    assert job("evaluate").main(["models:/nope@champion", "--tracking-uri", uri]) == 2
    assert "cannot load model models:/nope@champion" in capsys.readouterr().err
    assert job("evaluate").main(["models:/tiny_x2/1", "--root", str(tmp_path / "missing"), "--tracking-uri", uri]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.slow
def test_ray_evaluation_equals_the_local_run(tmp_path):
    """Cases spread over Ray tasks that load the model from a checkpoint folder give the local numbers."""
    import ray

    from blindsr.artifacts import checkpoint
    from blindsr.data.sources import load_corpus

    model = tiny("cmdsr")
    folder = checkpoint.save(tmp_path / "ckpt", tiny_config("cmdsr"), model, {}, {})
    cases = generated_cases("cmdsr", 2, {"corpus": list(load_corpus("val"))}, crop=48)
    local = evaluate({str(folder): model}, cases, 2, "t")
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        remote = evaluate({str(folder): model}, cases, 2, "t", sources={str(folder): str(folder)})
    finally:
        ray.shutdown()
    assert remote.cells == local.cells and remote.images == local.images
