"""Degradation on the train worker (``scaling.degrade_on: trainer``): the rows of HR windows, degraded by the
consumer in one batch, give exactly the batch the actor placement delivers, for every preset's distribution
and every CDSR positive mode; the batched pipeline equals ``degrade`` unit by unit; bad values are refused
before anything starts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from blindsr.config import ConfigError, build_config
from blindsr.config.presets import PRESETS
from blindsr.data.actor import DegradeWorker
from blindsr.data.feed import TRAIN_COLUMNS, WINDOW_COLUMNS, Feed, call_rows, stream_columns
from blindsr.data.on_trainer import degrade_batch
from blindsr.data.schema import encode, pack
from blindsr.degradations.batched import Unit, degrade_many
from blindsr.degradations.pipeline import degrade
from blindsr.degradations.presets import TRAIN_PRESETS
from blindsr.degradations.sampling import max_context, sample_spec

TRAINING_PRESETS = [name for name in PRESETS if name != "preview"]


def rows(cfg, degrade_on: str, ids: list[int], columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The ``columns`` of the tasks ``ids`` as a consumer receives them: one call row, as numpy columns."""
    worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed, degrade_on=degrade_on)
    return next(call_rows(pack(encode([worker.make(i) for i in ids])).select(list(columns))))


def _tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return next(iter(Feed([batch], len(batch["task_id"]), "cpu")))


def small(cfg, **data):
    """A preset at a size the CPU tests afford: 3 tasks of a few patches, the preset's distribution and scale."""
    n = 4 if cfg.data.sampler == "pair" else 3
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, patches_per_task=n, patch_size=16, **data))


@pytest.mark.parametrize("preset", TRAINING_PRESETS)
def test_windows_degraded_on_the_trainer_equal_the_actors_rows(preset):
    cfg = small(build_config(preset, overrides=["degradation.noise_range=[0,30]"]))
    ids = [0, 1, 2, 5]
    want = _tensors(rows(cfg, "actor", ids, TRAIN_COLUMNS))
    windows = rows(cfg, "trainer", ids, WINDOW_COLUMNS)
    margin = max_context(cfg.degradation, cfg.scale)
    assert windows["hr"].shape[-1] == cfg.data.patch_size * cfg.scale + 2 * margin and "lr" not in windows
    got = degrade_batch(_tensors(windows))
    assert set(got) == set(TRAIN_COLUMNS)
    for name in ("task_id", "lr", "hr"):  # work_s is the actors' timing
        assert torch.equal(got[name], want[name]), name


@pytest.mark.parametrize("positive", ["other_image", "other_degradation"])
def test_query_and_keys_with_their_own_degradations_equal_the_actors_rows(positive):
    cfg = small(build_config("cdsr_demo"), moco_positive=positive)
    want = rows(cfg, "actor", [3, 4], TRAIN_COLUMNS)
    got = degrade_batch(_tensors(rows(cfg, "trainer", [3, 4], WINDOW_COLUMNS)))
    assert np.array_equal(got["lr"].numpy(), want["lr"]) and np.array_equal(got["hr"].numpy(), want["hr"])


def test_a_window_on_an_image_no_larger_than_the_patch_is_mirrored_like_the_actors_crop(tmp_path):
    from PIL import Image

    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # exactly the 64 px HR patch
    Image.fromarray(img).save(tmp_path / "tiny.png")
    cfg = small(build_config("cmdsr_smoke", overrides=[f"data.source={tmp_path}"]))
    cfg = dataclasses.replace(cfg, scale=4)
    want = rows(cfg, "actor", [0, 1], TRAIN_COLUMNS)
    got = degrade_batch(_tensors(rows(cfg, "trainer", [0, 1], WINDOW_COLUMNS)))
    assert np.array_equal(got["lr"].numpy(), want["lr"]) and np.array_equal(got["hr"].numpy(), want["hr"])


@pytest.mark.parametrize("distribution", sorted(TRAIN_PRESETS))
def test_the_batched_pipeline_equals_degrade_unit_by_unit(distribution):
    rng = np.random.default_rng(7)
    units = []
    for scale in (2, 4):
        cfg = TRAIN_PRESETS[distribution](scale)
        for i in range(5):
            spec = sample_spec(rng, cfg, scale)
            if i == 1:
                spec = dataclasses.replace(spec, noise=9.5)
            if i == 2 and spec.downsampler != "cv2_cubic":
                spec = dataclasses.replace(spec, jpeg_quality=60)
            m = spec.context()
            hr = torch.from_numpy(rng.integers(0, 256, (3, 3, 8 * scale + 2 * m, 8 * scale + 2 * m), dtype=np.uint8))
            units.append(Unit(hr, spec, m))
    for unit, got in zip(units, degrade_many(units), strict=True):
        assert torch.equal(got, degrade(unit.hr, unit.spec, unit.margin))


def test_the_loop_reads_degraded_batches_and_the_meter_counts_patches():
    cfg = small(build_config("cdsr_smoke"))
    batches = [rows(cfg, "trainer", [i, i + 1], WINDOW_COLUMNS) for i in (0, 2)]
    meter = Feed(batches, 2, "cpu", degrade_on="trainer")
    seen = [b["lr"].shape for b in meter]
    n, p = cfg.data.patches_per_task, cfg.data.patch_size
    assert seen == [(2, n, 3, p, p)] * 2 and meter.total_patches == 4 * n
    metrics = meter.metrics().logged()  # the meter's data/* figures and the degradation's, in one call
    assert metrics["data/degrade_ms"] > 0 and metrics["data/patches_per_s"] > 0
    assert stream_columns("trainer") == WINDOW_COLUMNS and stream_columns("actor") == TRAIN_COLUMNS


def test_bad_placements_are_refused_by_key_with_the_choices():
    with pytest.raises(ConfigError, match=r"scaling\.degrade_on.*actor.*trainer"):
        build_config(overrides=["scaling.degrade_on=gpu"])
    with pytest.raises(ConfigError, match=r"scaling\.degrade_gpu_fraction.*trainer"):
        build_config(overrides=["scaling.degrade_on=trainer", "scaling.degrade_gpu_fraction=0.5"])


@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["cmdsr_paper", "cdsr_paper", "dasr_paper"])
def test_on_cuda_the_trainers_batch_is_within_one_level_of_the_actors(preset):
    cfg = small(build_config(preset, overrides=["degradation.noise_range=[0,30]"]))
    want = _tensors(rows(cfg, "actor", [0, 1, 2], TRAIN_COLUMNS))
    got = next(iter(Feed([rows(cfg, "trainer", [0, 1, 2], WINDOW_COLUMNS)], 3, "cuda", degrade_on="trainer")))
    assert got["lr"].is_cuda and torch.equal(got["hr"].cpu(), want["hr"])
    assert (got["lr"].cpu().int() - want["lr"].int()).abs().max() <= 1
