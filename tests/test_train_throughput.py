"""``benchmarks/train_throughput.py`` at tiny sizes, so the benchmark never rots: every row is measured (step
alone per precision, the step fed by the real Ray Data stream with either placement of the degradation), the
ratios are to its named baseline, and the projection is the preset's schedule × the best step time."""

from __future__ import annotations

import json

import pytest

from helpers import script

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_train_throughput_measures_every_row_at_tiny_sizes(ray_session, tmp_path, capsys):
    bench = script("benchmarks/train_throughput.py")
    out = tmp_path / "throughput.json"
    argv = ["--tiny", "--device", "cpu", "--models", "cmdsr,cdsr", "--precisions", "fp32,bf16",
            "--steps", "2", "--stream-steps", "2", "--actors", "1", "--json", str(out)]  # fmt: skip
    results = bench.main(argv)
    printed = capsys.readouterr().out
    assert [r.model for r in results] == ["cmdsr", "cdsr"]
    for r in results:
        alone = [row for row in r.rows if row.fed_by == "memory"]
        stream = [row for row in r.rows if row.fed_by.startswith("stream")]
        assert [(row.precision, row.compiled) for row in alone] == [("fp32", False), ("bf16", False)]
        assert alone[0].ratio == 1.0 and all(row.steps_per_s > 0 for row in r.rows)
        assert alone[1].ratio == pytest.approx(alone[1].steps_per_s / alone[0].steps_per_s)
        assert [row.fed_by for row in stream] == ["stream", "stream, trainer"]  # both scaling.degrade_on placements
        assert all(0.0 <= row.wait_frac <= 1.0 for row in stream)
        assert r.paper_steps == {"cmdsr": 1_000_000, "cdsr": 485_000}[r.model]  # the paper presets' schedules
        best = max(row.steps_per_s for row in alone)
        assert r.projected_hours == pytest.approx(r.paper_steps / best / 3600)
        assert r.cores_per_device == pytest.approx(r.patches_per_step * best / r.patches_per_s_per_core)
        assert r.step_flops > 0 and r.achieved_flops_per_s == pytest.approx(r.step_flops * best)
        assert r.bf16_peak is None  # a CPU has no entry in the peak table
        assert f"{r.model}: {r.batch} (tiny size)" in printed
    assert "TFLOP per step" in printed
    assert "baseline: fp32 eager step" in printed and "at reduced sizes, not the paper's" in printed
    saved = json.loads(out.read_text())
    assert [r["model"] for r in saved["results"]] == ["cmdsr", "cdsr"]
