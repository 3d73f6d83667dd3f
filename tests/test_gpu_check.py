"""``benchmarks/gpu_check.sh`` without CUDA: its CPU fallback runs every section at tiny sizes, so the script a GPU
session runs in one call never rots. It must leave the project's MLflow database and Ray storage alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="with CUDA the script runs the GPU sizes (minutes)")
def test_gpu_check_cpu_fallback_passes_every_section(tmp_path):
    before = sorted((ROOT / "outputs" / "ray").glob("*")) if (ROOT / "outputs" / "ray").is_dir() else []
    res = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "mode cpu" in summary
    for section in ("gpu_tests", "degradation", "throughput", "ray_train"):
        assert f"| {section} | PASS |" in summary, summary
        assert (tmp_path / "out" / f"{section}.log").is_file()
    throughput = json.loads((tmp_path / "out" / "throughput.json").read_text())
    assert [r["model"] for r in throughput["results"]] == ["cdsr"]
    assert "registered version: 1" in (tmp_path / "out" / "ray_train.log").read_text()  # its own fresh registry
    after = sorted((ROOT / "outputs" / "ray").glob("*")) if (ROOT / "outputs" / "ray").is_dir() else []
    assert after == before
