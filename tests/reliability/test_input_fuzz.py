"""Bad input, case by case: each gives a clear one-line error (exit code 2, ``error: …`` naming what and where)
or a logged skip, and nothing else is lost. The tables below are the closing note's fuzz table.

Images go through the paths users hit: the training data loader (``load_folder``, what every degradation
actor runs), a real training job on the fuzzed folder, and ``jobs/upscale.py``. Configs go through the
training CLI (``blindsr.train.cli.main``, what ``jobs/train_*.py`` run), checkpoints and scales through
``jobs/evaluate.py`` and ``jobs/upscale.py``, search spaces through ``jobs/sweep.py``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from blindsr.artifacts import checkpoint
from blindsr.config import Config, ModelConfig
from blindsr.data import corpus
from blindsr.data.sources import load_folder
from blindsr.infer import upscale
from blindsr.models import build_model
from blindsr.train.cli import main as train_main
from helpers import job
from servers import finish, smoke_job

ROOT = Path(__file__).resolve().parents[2]
PHOTO = corpus.image("chelsea")  # (300, 451, 3) uint8
MIN_SIZE = 32  # the HR patch of the smoke preset at ×2 (16 px LR)


def job_main(name: str):
    return job(name).main


def png_bytes(pixels: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


# name → (writer(path), expected): "loaded HxW" or "skipped: <reason prefix>"
IMAGES = {
    "zero-byte.png": (lambda p: p.write_bytes(b""), "skipped: unreadable"),
    "truncated.png": (lambda p: p.write_bytes(png_bytes(PHOTO)[:5000]), "skipped: unreadable"),
    "not-an-image.png": (lambda p: p.write_text("this is a text file\n" * 50), "skipped: unreadable"),
    "one-pixel.png": (lambda p: Image.new("RGB", (1, 1), (9, 9, 9)).save(p), "skipped: too small"),
    "sixteen-bit.png": (
        lambda p: Image.fromarray(PHOTO[..., 1].astype(np.uint16) * 257).save(p),
        "loaded 300x451",
    ),
    "gray.png": (lambda p: Image.fromarray(PHOTO[..., 0]).save(p), "loaded 300x451"),
    "rgba.png": (lambda p: Image.fromarray(np.dstack([PHOTO, PHOTO[..., :1]])).save(p), "loaded 300x451"),
    "png-named.jpg": (lambda p: p.write_bytes(png_bytes(PHOTO)), "loaded 300x451"),
    "UPPER-CASE.PNG": (lambda p: Image.fromarray(PHOTO).save(p, format="PNG"), "loaded 300x451"),
    "huge.png": (lambda p: Image.new("RGB", (10_000, 10_000), (120, 80, 40)).save(p), "loaded 10000x10000"),
    "notes.txt": (lambda p: p.write_text("not an image suffix"), "ignored"),
}


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    for name, (write, _) in IMAGES.items():
        write(folder / name)
    return folder


def test_training_loader_table(fuzz_folder, caplog):
    caplog.set_level(logging.WARNING)
    pool = load_folder(fuzz_folder, min_size=MIN_SIZE)
    got = {im.id: f"loaded {im.shape[0]}x{im.shape[1]}" for im in pool.images}
    got |= {name: "skipped: " + why.split(":")[0] for name, why in pool.skipped.items()}
    expected = {name: outcome for name, (_, outcome) in IMAGES.items() if outcome != "ignored"}
    assert {k: got.get(k, "ignored") for k in expected} == expected
    assert "notes.txt" not in got
    for im in pool.images:
        assert im.pixels.dtype == np.uint8 and im.pixels.shape[2] == 3
    sixteen = next(im for im in pool.images if im.id == "sixteen-bit.png").pixels
    assert np.array_equal(sixteen[..., 0], PHOTO[..., 1])  # 16-bit scaled back exactly, gray → RGB
    # every skip is logged once, on one line, with the file and the reason
    skips = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skips) == 4 and all("\n" not in m for m in skips)
    assert "skipped 4 (3 unreadable, 1 too small)" in pool.summary()


@pytest.mark.ray
@pytest.mark.slow
def test_training_job_on_the_fuzzed_folder_skips_and_finishes(fuzz_folder, tmp_path):
    """Also the quiet console of a whole training job (smoke preset): our lines only, at most 40 of them. The
    train worker degrades its own batches here (the one real job with ``degrade_on: trainer``)."""
    placement = ("--set", "scaling.degrade_on=trainer")
    text = finish(*smoke_job(tmp_path, "fuzz", 2, "--set", f"data.source={fuzz_folder}", *placement))
    lines = text.splitlines()
    assert len(lines) <= 40, text
    assert lines[0].startswith("fuzz: cmdsr x2, 2 steps of ") and lines[1].startswith("data plan: ")
    assert "crop actor(s) (LR made on the train workers)" in lines[1], text
    # the degradation actor's summary reaches the console through the progress channel, once
    assert sum("data (train): " in line and "skipped 4 (3 unreadable, 1 too small)" in line for line in lines) == 1
    assert any(line.startswith("step 2/2 · L1 ") and "patches/s · ETA" in line for line in lines), text
    assert any(line.startswith("step 2: validation PSNR-Y ") for line in lines), text
    assert "finished at step 2" in text and any(line.startswith("MLflow UI: ") for line in lines)
    for chatter in ("(RayTrainWorker", "(TrainController", "(SplitCoordinator", "Running Dataset", "Checkpoint"):
        assert chatter not in text, text  # Ray Data's bars and Ray Train's lines stay in Ray's log files
    assert "Warning" not in text and "\r" not in text, text


@pytest.fixture(scope="module")
def ckpt_x2(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = Config(scale=2, model=ModelConfig(name="srresnet", n_feats=8, n_blocks=1))
    folder = tmp_path_factory.mktemp("ckpt") / "x2"
    return checkpoint.save(folder, cfg, build_model(cfg.model, cfg.scale), {}, {"step": 1})


def test_upscale_job_writes_what_reads_and_skips_the_rest(fuzz_folder, ckpt_x2, tmp_path, caplog):
    small = tmp_path / "inputs"
    small.mkdir()
    for name in IMAGES:
        if name != "huge.png":  # CPU inference of 10^8 LR pixels takes minutes; tiling is tested below
            (small / name).write_bytes((fuzz_folder / name).read_bytes())
    caplog.set_level(logging.WARNING)
    assert job_main("upscale")([str(ckpt_x2), str(small), "--out", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(
        f"{Path(n).stem}_x2.png"
        for n in ("one-pixel.png", "sixteen-bit.png", "gray.png", "rgba.png", "png-named.jpg", "UPPER-CASE.PNG")
    )
    assert Image.open(tmp_path / "out" / "one-pixel_x2.png").size == (2, 2)
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 3


def test_large_images_are_tiled_automatically(ckpt_x2):
    model = checkpoint.load_model(ckpt_x2)[1]
    lr = PHOTO[:64, :96]
    auto = upscale(model, lr, auto_tile_pixels=64 * 96 - 1)[0][1]
    tiled = upscale(model, lr, tile=512)[0][1]
    whole = upscale(model, lr)[0][1]
    assert np.array_equal(auto, tiled) and auto.shape == whole.shape == (128, 192, 3)


def one_line_error(capsys, rc: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert rc == 2 and len(lines) == 1, err
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


# name → (file text or None, extra CLI args, words the one-line error must contain)
CONFIGS = {
    "malformed YAML": ("model: [unclosed\n", [], ["is not valid YAML", "line 2, column 1"]),
    "not a mapping": ("- a\n- b\n", [], ["expected a mapping, got list"]),
    "unknown key": ("model: {n_feat: 64}\n", [], ["unknown key 'model.n_feat'", "did you mean 'model.n_feats'"]),
    "unknown section": ("modle: {n_feats: 64}\n", [], ["unknown key 'modle'"]),
    "wrong type": ("train: {steps: many}\n", [], ["train.steps", "expected int, got 'many'"]),
    "negative size": ("data: {patch_size: -4}\n", [], ["data.patch_size", "must be >= 1, got -4"]),
    "zero scale": (None, ["--set", "scale=0"], ["scale", "must be an integer in [1, 8], got 0"]),
    "bad override": (None, ["--set", "optim.lr"], ["optim.lr"]),
    "unknown override": (None, ["--set", "optim.learning_rate=1e-4"], ["optim.learning_rate"]),
    "model for the other job": (None, ["--set", "model.name=cdsr"], ["model.name='cdsr'", "train_cdsr.py"]),
    "unknown model": (None, ["--set", "model.name=rcan"], ["model.name", "'rcan' is not a valid choice", "'cmdsr'"]),
    "missing config file": (
        None,
        ["--config", "/nonexistent/run.yaml"],
        ["config file not found: /nonexistent/run.yaml"],
    ),
    "missing dataset folder": (
        None,
        ["--set", "data.source=/nonexistent/DIV2K"],
        ["/nonexistent/DIV2K", "does not exist"],
    ),
    "bad placement": (None, ["--set", "scaling.placement_strategy=RANDOM"], ["scaling.placement_strategy", "SPREAD"]),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_training_cli_config_table(case, tmp_path, capsys):
    text, extra, needles = CONFIGS[case]
    args = ["--preset", "smoke", *extra]
    if text is not None:
        (tmp_path / "run.yaml").write_text(text)
        args += ["--config", str(tmp_path / "run.yaml")]
        needles = [*needles, str(tmp_path / "run.yaml")] if case != "unknown override" else needles
    one_line_error(capsys, train_main("cmdsr", "", args), *needles)  # fails before any Ray starts


def test_model_sources_table(ckpt_x2, tmp_path, capsys):
    evaluate, upscale_job = job_main("evaluate"), job_main("upscale")
    image = tmp_path / "photo.png"
    Image.fromarray(PHOTO).save(image)

    one_line_error(capsys, evaluate([str(ckpt_x2), "--scale", "4"]), "upscales x2 but the protocol is evaluated at x4")
    one_line_error(capsys, upscale_job([str(tmp_path / "nowhere"), str(image)]), "neither a models:/ or runs:/ URI")

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ckpt_x2.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes((ckpt_x2 / "model.safetensors").read_bytes()[:100])
    one_line_error(capsys, upscale_job([str(broken), str(image)]), f"checkpoint folder {broken} does not load")
    (broken / "model.safetensors").write_bytes((ckpt_x2 / "model.safetensors").read_bytes())
    (broken / "config.yaml").write_text("model: {name: srresnet, n_feats: 16}\n")  # weights of n_feats=8
    one_line_error(capsys, upscale_job([str(broken), str(image)]), f"checkpoint folder {broken} does not load")

    (tmp_path / "zero.png").write_bytes(b"")
    one_line_error(capsys, upscale_job([str(ckpt_x2), str(tmp_path / "zero.png")]), "zero.png")
    one_line_error(capsys, upscale_job([str(ckpt_x2), str(tmp_path / "empty-folder")]), "empty-folder")
    rc = evaluate(["models:/cmdsr_x2@champion", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    one_line_error(capsys, rc, "no MLflow store at")


SPACES = {
    "unknown top key": ("title: t\nfamily: cmdsr\nrows: []\nschedulr: asha\n", ["schedulr"]),
    "unknown config key in a row": (
        "title: t\nfamily: cmdsr\nrows:\n  - {label: a, set: {model.n_feat: 8}}\n",
        ["model.n_feat"],
    ),
    "malformed YAML": ("title: [t\n", ["is not valid YAML", "line"]),
}


@pytest.mark.parametrize("case", list(SPACES))
def test_sweep_space_table(case, tmp_path, capsys):
    text, needles = SPACES[case]
    space = tmp_path / "space.yaml"
    space.write_text(text)
    one_line_error(capsys, job_main("sweep")([str(space), "--dry-run"]), str(space), *needles)
