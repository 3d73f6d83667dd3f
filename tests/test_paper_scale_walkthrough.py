"""docs/data.md's DIV2K/DF2K walkthrough, as a user runs it: a DF2K tree → shards → the paper preset on Ray."""

from __future__ import annotations

import re

import pytest

from blindsr.data.synthetic import write_df2k
from helpers import job
from servers import finish, train_job


@pytest.mark.ray
@pytest.mark.slow
def test_df2k_tree_to_shards_to_a_registered_paper_model(tmp_path):
    root = write_df2k(tmp_path / "DF2K", div2k=2, flickr2k=1)  # three 2040 × 1356 photographs
    shards, cache = tmp_path / "shards" / "df2k", tmp_path / "cache"
    assert job("prepare_shards").main([str(root), str(shards), "--shard-mb", "10"]) == 0
    assert len(list(shards.glob("*.parquet"))) >= 2  # 8.3 MB of pixels per image, 10 MB per shard
    log = tmp_path / "paper.log"
    shrink = [  # the paper preset, cut to seconds of steps on two cores; the data path stays the paper's
        "train.steps=2", "train.val_every=2", "train.checkpoint_every=2", "train.val_images=1", "train.val_crop=64",
        "data.tasks_per_step=2", "data.patches_per_task=4", "model.support_size=2", "model.n_feats=16",
        "model.n_blocks=1", "data.patch_size=16", f"data.source={shards}", f"data.cache_dir={cache}",
        "data.pool_memory_gb=0.02",  # holds two of the three images: windows
        f"train.storage_path={tmp_path / 'ray'}",
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]  # fmt: skip
    args = ["--preset", "paper", "--name", "df2k_walk", *(a for k in shrink for a in ("--set", k))]
    text = finish(train_job("train_cmdsr.py", *args, log=log), log)
    plan = next(line for line in text.splitlines() if line.startswith("data plan: "))
    assert re.search(r"\bauto\b", plan), plan  # the paper preset sizes its actors
    assert "models:/cmdsr_x4/1" in text and re.search(r"\| bicubic \|", text), text[-3000:]  # registered, scored
    assert sorted(p.name for p in cache.iterdir())  # the node's pool was built in data.cache_dir
