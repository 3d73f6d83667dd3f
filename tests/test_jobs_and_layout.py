"""Entry scripts run as users run them; package layout invariants hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(("preset", "rows"), [("cmdsr_train", 3), ("cdsr9", 9), ("cmdsr", 3)])
def test_preview_job_writes_a_grid(tmp_path, preset, rows):
    res = run("jobs/preview_degradations.py", "--preset", preset, "--tasks", "3", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    png = next(tmp_path.glob("*.png"))
    grid = np.asarray(Image.open(png))
    assert grid.shape[1] == 3 * 192 + 16 and grid.shape[0] > rows * 192
    assert res.stdout.count("task ") == rows


def test_preview_job_reports_bad_input(tmp_path):
    res = run("jobs/preview_degradations.py", "--source", str(tmp_path / "missing"))
    assert res.returncode == 2 and "dataset folder does not exist" in res.stderr
    res = run("jobs/preview_degradations.py", "--set", "noise_range=[9, 1]")
    assert res.returncode == 2 and "degradation.noise_range in --set" in res.stderr


@pytest.mark.parametrize(
    ("job", "args", "message"),
    [
        ("train_cdsr.py", ["--set", "optim.lrr=1e-4"], "unknown key 'optim.lrr' in --set (did you mean 'optim.lr'?)"),
        ("train_cmdsr.py", ["--set", "train.steps=-3"], "train.steps in --set: must be >= 1"),
        ("train_cdsr.py", ["--set", "model.name=cmdsr"], "train_cdsr.py trains cdsr or dasr"),
        ("train_cdsr.py", ["--config", "missing.yaml"], "missing.yaml"),
    ],
)
def test_training_jobs_reject_bad_configs_before_starting_ray(job, args, message):
    res = run(f"jobs/{job}", "--preset", "smoke", *args)
    assert res.returncode == 2 and message in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr


def test_platform_folder_never_shadows_the_stdlib():
    assert not (ROOT / "platform" / "__init__.py").exists()
    res = run("-c", "import platform, uuid; platform.system(); import blindsr; print(blindsr.__file__)")
    assert res.returncode == 0 and "platform/blindsr" in res.stdout


def test_pure_modules_import_without_ray_or_mlflow():
    code = (
        "import sys, blindsr.degradations, blindsr.metrics, blindsr.config, blindsr.data.patches, "
        "blindsr.data.benchmarks, blindsr.data.schema, blindsr.data.shards, blindsr.data.actor, blindsr.models, "
        "blindsr.losses, blindsr.train.step, blindsr.train.checkpoint, blindsr.train.runner, blindsr.validation, "
        "blindsr.evaluate, blindsr.infer, blindsr.export, blindsr.console; "
        "bad = [m for m in ('ray', 'mlflow') if m in sys.modules]; print(bad)"
    )
    res = run("-c", code)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash\n")[1:]]
    test_cmd = next(b for b in blocks if "pytest" in b)
    main_cmd = next(b for b in blocks if "jobs/" in b and "pip install" in b)
    assert test_cmd in (ROOT / ".ci" / "run").read_text()
    assert "constraints.txt" in main_cmd and "constraints.txt" in test_cmd
