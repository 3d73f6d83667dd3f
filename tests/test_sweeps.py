"""Search spaces and sweeps, without Ray: every search_spaces/*.yaml validates against the config schema and
expands to the paper table's number of trials; bad files fail naming the file and the key; resources per trial;
ASHA's rungs. Seeds (``--seeds N``): N trials per point with the trial's own seed + 0..N-1, bad values refused
before Ray starts, and the report of N seeds: mean ± sample std per setting (checked against numpy), orderings
reproduced only beyond the spread, while a one-seed report stays what it was (the real sweeps are in
test_sweeps_on_ray.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from ray.tune.search.variant_generator import generate_variants

from blindsr.config import to_dict
from blindsr.data.plan import DataPlanError, trial_share
from blindsr.report import ReportRow, beyond_spread, markdown, rows, trials_markdown, write_report
from blindsr.space import SpaceError, load_space
from blindsr.tune import SEED, param_space, scheduler, trial_config
from helpers import job

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
    "kdsr_ablation": 5,
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
    asha = scheduler(space, space.config("demo"))  # 2000 steps, validation every 100, grace 20 %, keep 1/3
    assert (asha._time_attr, asha._max_t, asha._reduction_factor) == ("step", 2001, 3)  # 2001: see scheduler()
    assert asha._brackets[0]._rungs[-1][0] == 400  # the first rung: the validation at the grace period
    assert scheduler(load_space(SPACES / "cmdsr_t8_t0.yaml"), space.config("demo")) is None


# ---- seeds ------------------------------------------------------------------------------------------------

SEEDED = """
title: "seeds"
family: cmdsr
rows:
  - {label: "a", set: {optim.t0: 1}}
  - {label: "b", set: {seed: 7}}
space: {optim.lr: {grid: [1.0e-3, 2.0e-3]}}
"""


def test_seeds_run_every_point_with_the_trials_own_seed_plus_0_to_n_minus_1(tmp_path):
    space = load_space(write(tmp_path, SEEDED))
    static = {"config": to_dict(space.config("smoke")), "rows": {r.label: r.overrides("smoke") for r in space.rows}}
    assert SEED not in param_space(space, static) and SEED not in param_space(space, static, seeds=1)
    variants = [spec for _, spec in generate_variants(param_space(space, static, seeds=3))]
    assert len(variants) == space.n_trials(3) == 3 * space.n_trials() == 12
    seeds: dict[tuple[str, float], list[int]] = {}
    for spec in variants:
        cfg, label = trial_config(spec)
        seeds.setdefault((label, cfg.optim.lr), []).append(cfg.seed)
        assert cfg.optim.t0 == (1 if label == "a" else space.config("smoke").optim.t0)  # the row still applies
    base = space.config("smoke").seed
    assert {k: sorted(v) for k, v in seeds.items()} == {
        ("a", 1e-3): [base, base + 1, base + 2],
        ("a", 2e-3): [base, base + 1, base + 2],
        ("b", 1e-3): [7, 8, 9],  # the row's own seed + 0..2
        ("b", 2e-3): [7, 8, 9],
    }


def test_seeds_of_a_random_search_share_each_samples_drawn_values():
    """run_sweep draws random dimensions once per sample with seeds > 1 (Tune's constant_grid_search), so a
    sample's seeds train the same values; by default Tune would draw them again for every seed."""
    space = load_space(SPACES / "cmdsr_hp_asha.yaml")
    sampled = ("optim.lr", "optim.lr_condition", "loss.lambda_res", "data.tasks_per_step")
    for constant in (True, False):
        specs = [s for _, s in generate_variants(param_space(space, {}, seeds=2), constant_grid_search=constant)]
        assert sorted(s[SEED] for s in specs) == [0, 1]
        same = {tuple(s[k] for k in sampled) for s in specs}
        assert len(same) == (1 if constant else 2)
    assert space.n_trials(3) == 36


@pytest.mark.parametrize("seeds", [0, -2])
def test_the_sweep_job_refuses_bad_seeds_with_one_line_before_ray_starts(seeds, capsys):
    import ray

    assert job("sweep").main([str(SPACES / "cmdsr_t8_t0.yaml"), "--seeds", str(seeds), "--dry-run"]) == 2
    assert capsys.readouterr().err == f"error: --seeds must be an integer >= 1, got {seeds}\n"
    assert not ray.is_initialized()


def test_the_sweep_job_counts_seeds_and_refuses_repeats_that_would_share_a_seed(tmp_path, capsys):
    sweep, t8 = job("sweep"), str(SPACES / "cmdsr_t8_t0.yaml")
    assert sweep.main([t8, "--dry-run"]) == 0 and sweep.main([t8, "--seeds", "3", "--dry-run"]) == 0
    title = load_space(t8).title
    assert capsys.readouterr().out.splitlines() == [
        f"{title}: 4 trial(s) at the demo budget",  # as before --seeds existed
        f"{title}: 12 trial(s) (4 × 3 seeds) at the demo budget",
    ]
    path = write(tmp_path, SEEDED + "num_samples: 2\n")
    assert sweep.main([str(path), "--seeds", "2", "--dry-run"]) == 2
    assert "num_samples 2 repeats every grid point with the same seed" in capsys.readouterr().err
    assert sweep.main([str(path), "--dry-run"]) == 0


def trial(row: str, psnr: float, seed: int | None = None, status: str = "finished") -> dict:
    """A trial record as ``run_sweep`` writes it (sweep.json)."""
    done = status == "finished"
    return {
        "trial": f"driver_{row}_{seed}",
        "row": row,
        **({} if seed is None else {"seed": seed}),
        "params": {},
        "status": status,
        "error": None if done else "boom",
        "step": 500 if done else 2,
        "val": psnr - 1.0 if done else math.nan,
        "history": [[250, psnr - 1.5], [500, psnr - 1.0]] if done else [],
        "eval": {
            "ours": {"corpus": [psnr, 0.7 + (psnr - 28) / 100]} if done else {},
            "bicubic": {"corpus": [27.55, 0.6152]},
        },
        "run_id": None,
    }


def t8_meta(trials: list[dict], seeds: int = 1) -> dict:
    return {
        "name": "cmdsr_t8_t0-demo",
        "title": "CMDSR Table VIII: alternating training step t0 (x4 PSNR-Y, Set5 Middle)",
        "space_file": "search_spaces/cmdsr_t8_t0.yaml",
        "budget": "demo",
        "overrides": [],
        "scale": 2,
        "evaluate": {"protocol": "cmdsr", "degradations": ["middle"], "sets": ["Set5"], "crop": 192},
        **({"seeds": seeds} if seeds > 1 else {}),
        "trials": trials,
    }


# docs/results.md's Table VIII section as the report wrote it before --seeds existed
T8_REPORT = """### CMDSR Table VIII: alternating training step t0 (x4 PSNR-Y, Set5 Middle)

Budget `demo` at x2; PSNR-Y dB (/ SSIM-Y) of the final model, protocol `cmdsr` (middle), HR crop 192. Sweep `cmdsr_t8_t0-demo`.

| setting | corpus (ours) | Set5 (paper) | val PSNR-Y | step | status |
|---|---|---|---|---|---|
| t0 = 0 (joint) | 28.95 / 0.7545 | 26.86 | 27.51 | 500 | finished |
| t0 = 1 | 27.80 / 0.7461 | 27.05 | 26.69 | 500 | finished |
| t0 = 10 | 28.85 / 0.7613 | 27.10 | 27.68 | 500 | finished |
| t0 = 20 | 28.23 / 0.7465 | 27.01 | 26.95 | 500 | finished |
| bicubic (reference) | 27.55 / 0.6152 | - | - | - | reference |

Ours on corpus, the paper on Set5: compare orderings only.

- paper, best first: t0 = 10 > t0 = 1 > t0 = 20 > t0 = 0 (joint)
- ours, best first: t0 = 0 (joint) > t0 = 10 > t0 = 20 > t0 = 1
- same ordering: no: the reduced budget does not reproduce the paper's ordering
- same best setting: no (paper: t0 = 10; ours: t0 = 0 (joint))

Regenerate: `python jobs/sweep.py search_spaces/cmdsr_t8_t0.yaml --budget demo` then `python jobs/report.py outputs/sweeps/cmdsr_t8_t0-demo`.
"""  # noqa: E501


def test_a_one_seed_report_is_what_it_was():
    space = load_space(SPACES / "cmdsr_t8_t0.yaml")
    cells = {"t0 = 0 (joint)": (28.95, 0.7545, 27.51), "t0 = 1": (27.80, 0.7461, 26.69)}
    cells |= {"t0 = 10": (28.85, 0.7613, 27.68), "t0 = 20": (28.23, 0.7465, 26.95)}
    trials = [trial(row, 0) for row in cells]
    for t in trials:
        psnr, ssim, val = cells[t["row"]]
        t["eval"]["ours"]["corpus"], t["val"] = [psnr, ssim], val
    meta = t8_meta(trials)
    assert markdown(meta, rows(meta, space)) == T8_REPORT
    assert "seed" not in trials_markdown("t", trials)
    repeats = t8_meta([trial("t0 = 1", 28.0), trial("t0 = 1", 28.2)])  # num_samples: 2 without --seeds
    assert [r.ours["corpus"][0] for r in rows(repeats, space)] == [28.0, 28.2]  # one row per trial, as before


# three seeds per row; t0 = 0's third seed fails
T8_SEEDS = {"t0 = 10": [29.0, 29.1, 29.2], "t0 = 1": [28.7, 28.8, 28.9], "t0 = 20": [28.6, 28.8, 29.0]}
T8_SEEDS["t0 = 0 (joint)"] = [29.5, 29.6, math.nan]


def seeded_trials() -> list[dict]:
    return [
        trial(row, v, seed, "finished" if v == v else "error")
        for row in ("t0 = 0 (joint)", "t0 = 1", "t0 = 10", "t0 = 20")
        for seed, v in enumerate(T8_SEEDS[row])
    ]


def test_a_seeded_report_has_one_row_per_setting_with_mean_and_sample_std():
    space = load_space(SPACES / "cmdsr_t8_t0.yaml")
    meta = t8_meta(seeded_trials(), seeds=3)
    report = {r.setting: r for r in rows(meta, space)}
    assert list(report) == ["t0 = 0 (joint)", "t0 = 1", "t0 = 10", "t0 = 20"]
    for setting, values in T8_SEEDS.items():
        r, psnr = report[setting], np.array([v for v in values if v == v])
        ssim = 0.7 + (psnr - 28) / 100
        assert r.seeds == 3 and r.scores == pytest.approx(psnr, abs=0)
        assert r.ours["corpus"] == pytest.approx([psnr.mean(), ssim.mean()], abs=1e-12)
        assert r.spread["corpus"] == pytest.approx([psnr.std(ddof=1), ssim.std(ddof=1)], abs=1e-12)
        assert r.val == pytest.approx(psnr.mean() - 1) and r.val_std == pytest.approx(psnr.std(ddof=1))
    assert report["t0 = 0 (joint)"].status == "2 finished; 1 error"

    text = markdown(meta, list(report.values()))
    assert "| t0 = 10 | 29.10 ± 0.10 / 0.7110 ± 0.0010 | 27.10 | 28.10 ± 0.10 | 500 | finished | 3 of 3 |" in text
    assert (
        "| t0 = 0 (joint) | 29.55 ± 0.07 / 0.7155 ± 0.0007 | 26.86 | 28.55 ± 0.07 | 500 | 2 finished; 1 error |" in text
    )
    assert "Mean ± std over 3 seeds" in text and "differ by more than std_a + std_b" in text
    assert "| bicubic (reference) | 27.55 / 0.6152 | - | - | - | reference | - |" in text
    assert "--budget demo --seeds 3` then" in text
    # the paper: 10 > 1 > 20 > 0; ours 10 - 1 = 0.30 beyond 0.10 + 0.10, 1 - 20 = 0 within, 20 - 0 reversed
    assert text.split("- paper, best first:")[1].split("\n\nRegenerate")[0].splitlines()[1:] == [
        "- ours, best first (mean over seeds): t0 = 0 (joint) > t0 = 10 > t0 = 1 > t0 = 20",
        "- same ordering of the means: no",
        "- same best setting: no (paper: t0 = 10; ours: t0 = 0 (joint))",
        "- the paper's neighbouring pairs, ours (Δmean vs std_a + std_b): 1 of 3 reproduced",
        "  - t0 = 10 > t0 = 1: Δ +0.30 dB, spread 0.20 dB: reproduced",
        "  - t0 = 1 > t0 = 20: Δ +0.00 dB, spread 0.30 dB: within the spread",
        "  - t0 = 20 > t0 = 0 (joint): Δ -0.75 dB, spread 0.27 dB: reversed beyond the spread",
        "- paper's ordering reproduced (every pair beyond the spread): no",
    ]
    lines = trials_markdown("t", meta["trials"]).splitlines()
    assert lines[2].startswith("| trial | row | seed | sampled |") and "| t0 = 1 | 2 | - | finished |" in lines[9]


def test_an_ordering_is_reproduced_only_beyond_the_sum_of_the_spreads():
    def row(values: list[float]) -> ReportRow:
        return ReportRow("", "finished", 1, 0.0, {}, {}, [], seeds=len(values), scores=values)

    a = row([1.0, 2.0, 3.0])  # mean 2, std 1
    assert beyond_spread(a, row([-1.01, -0.01, 0.99])) == 1  # Δ 2.01 > 1 + 1
    assert beyond_spread(a, row([-0.99, 0.01, 1.01])) == 0  # Δ 1.99
    assert beyond_spread(row([-1.01, -0.01, 0.99]), a) == -1
    assert beyond_spread(a, row([-9.0])) is None  # one seed: no spread to exceed


def test_a_seeded_sweep_folder_gets_its_report_files(tmp_path):
    meta = t8_meta(seeded_trials(), seeds=3)
    (tmp_path / "sweep.json").write_text(json.dumps(meta))
    (tmp_path / "space.yaml").write_text((SPACES / "cmdsr_t8_t0.yaml").read_text())
    md, csv, png = write_report(tmp_path, to_mlflow=False)
    assert "3 of 3" in md.read_text() and png.stat().st_size > 10_000
    head, *lines = csv.read_text().splitlines()
    assert head.endswith(",seeds,val_psnr_y_std,ours_psnr_y_std,ours_ssim_y_std") and len(lines) == 8
    assert lines[0].startswith('"t0 = 0 (joint)",2 finished; 1 error,500,28.550000,corpus,29.550000,')
