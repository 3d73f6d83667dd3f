"""The demo presets, derived from the paper presets by ``presets._demo``, equal their hand-written form.

The reference is ``config/presets.py`` as it was before the rewrite (commit BASE), executed from git; a demo whose
values change on purpose moves BASE to the commit that changes them."""

import subprocess
import types
from pathlib import Path

import pytest

from blindsr.config.loading import flatten
from blindsr.config.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
BASE = "76d5b20"  # the last commit with cmdsr_demo, cdsr_demo and cdcl_demo written out in full
DERIVED = ["cmdsr_demo", "cmdsr_smoke", "cdsr_demo", "cdsr_smoke", "cdcl_demo", "cdcl_smoke"]
# values changed on purpose since BASE: the CMDSR demo trains four times as long, to beat bicubic on whole photographs;
# the CDSR demo's schedule is a cosine, to beat bicubic on DASR's isotropic σ
COSINE = {"optim.lr": 5e-4, "optim.milestones": [], "optim.schedule": "cosine", "optim.warmup_steps": 10,
          "optim.cosine_steps": 390, "optim.lr_min": 1e-5}  # fmt: skip
CHANGED = {
    "cmdsr_demo": {"train.steps": 2000, "optim.milestones": [1600]},
    "cmdsr_smoke": {"optim.milestones": [1600]},
    "cdsr_demo": COSINE,
    "cdsr_smoke": COSINE,
}


@pytest.fixture(scope="module")
def before() -> types.ModuleType:
    res = subprocess.run(
        ["git", "show", f"{BASE}:platform/blindsr/config/presets.py"], cwd=ROOT, capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"no git history with commit {BASE}: {res.stderr.strip()}")
    module = types.ModuleType("presets_before")
    exec(compile(res.stdout, f"presets.py@{BASE}", "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("name", DERIVED)
def test_derived_demo_equals_its_hand_written_form(before: types.ModuleType, name: str) -> None:
    assert flatten(PRESETS[name]()) == flatten(before.PRESETS[name]()) | CHANGED.get(name, {})
