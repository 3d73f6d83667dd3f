"""Entry scripts (run as users run them where the process matters, their ``main`` in this process otherwise);
package layout invariants hold."""

from __future__ import annotations

import ast
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
def test_preview_job_writes_a_grid(tmp_path, preset, rows, capsys):
    from helpers import job

    assert job("preview_degradations").main(["--preset", preset, "--tasks", "3", "--out", str(tmp_path)]) == 0
    png = next(tmp_path.glob("*.png"))
    grid = np.asarray(Image.open(png))
    assert grid.shape[1] == 3 * 192 + 16 and grid.shape[0] > rows * 192
    assert capsys.readouterr().out.count("task ") == rows


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
        (
            "train_cdsr.py",
            ["--set", "model.name=cmdsr"],
            "a conditional model: train it with train_cmdsr.py, not train_cdsr.py",
        ),
        ("train_cdsr.py", ["--config", "missing.yaml"], "missing.yaml"),
        ("train_cmdsr.py", ["--set", "model.name=vdsr", "--set", "model.n_blocks=4"], "model.n_blocks: not used by"),
        ("train_cdsr.py", ["--set", "train.precision=fp8"], "train.precision in --set: 'fp8' is not a valid choice"),
        ("train_cmdsr.py", ["--set", "train.ema_decay=2"], "train.ema_decay in --set: must be in [0, 1)"),
        (
            "train_cdsr.py",
            ["--set", "train.precision=fp16", "--set", "scaling.use_gpu=false"],
            "train.precision in --set: fp16 needs CUDA",
        ),
        ("train_cmdsr.py", ["--set", "data.patches_per_task=3"], "data.patches_per_task in --set: CMDSR with support"),
        ("train_cdsr.py", ["--set", "data.patches_per_task=1"], "data.patches_per_task in --set: a query/key pair"),
        ("train_cmdsr.py", ["--set", "data.pool_memory_gb=-1"], "data.pool_memory_gb in --set: must be > 0"),
        ("train_cmdsr.py", ["--set", "scaling.degrade_actors=none"], "scaling.degrade_actors in --set: expected int"),
        (
            "train_cmdsr.py",
            ["--set", "scaling.cpus_per_worker=100000", "--set", "scaling.degrade_actors=auto"],
            "scaling.degrade_actors: auto finds no CPU",
        ),
    ],
)
def test_training_jobs_reject_bad_configs_before_starting_ray(job, args, message, capsys):
    """In this process (a subprocess per case spends seconds importing; the next test runs one as users do)."""
    import ray

    from blindsr.train.cli import main

    assert main(job.removeprefix("train_").removesuffix(".py"), "", ["--preset", "smoke", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: "), err
    assert not ray.is_initialized()


def test_a_training_job_run_as_users_run_it_exits_2_with_one_line():
    res = run("jobs/train_cmdsr.py", "--preset", "smoke", "--set", "train.steps=-3")
    want = "error: train.steps in --set: must be >= 1, got -3\n"
    assert res.returncode == 2 and res.stderr == want, res.stderr[-2000:]


def test_platform_folder_never_shadows_the_stdlib():
    assert not (ROOT / "platform" / "__init__.py").exists()
    res = run("-c", "import platform, uuid; platform.system(); import blindsr; print(blindsr.__file__)")
    assert res.returncode == 0 and "platform/blindsr" in res.stdout


PACKAGE = ROOT / "platform" / "blindsr"
# the declared Ray modules (README, docs/architecture.md); MLflow lives in blindsr.tracking alone
RAY_MODULES = {
    "blindsr.data.stream",  # the Ray Data datasets and the resource plan
    "blindsr.evaluation.on_ray",  # evaluation fanned out over Ray tasks
    "blindsr.ray_session",  # connecting to Ray or starting a local one
    "blindsr.train.launch",  # fit(): the driver, TorchTrainer, restarts
    "blindsr.train.progress",  # the rank-0 → driver progress queue
    "blindsr.train.worker",  # the Ray Train worker function
    "blindsr.tune",  # the Tune wiring
    "blindsr.tune_console",  # Tune's console callback
}


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(path: Path) -> set[str]:
    """Top-level package of every import anywhere in the file (function-level and TYPE_CHECKING ones too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ray_and_mlflow_stay_inside_their_declared_modules():
    found = modules()
    assert RAY_MODULES <= set(found), RAY_MODULES - set(found)
    ray_outside = [m for m, p in found.items() if "ray" in imported(p) and m not in RAY_MODULES]
    mlflow_outside = [m for m, p in found.items() if "mlflow" in imported(p) and not m.startswith("blindsr.tracking")]
    assert ray_outside == [] and mlflow_outside == []
    assert all("ray" in imported(found[m]) for m in RAY_MODULES)  # the list holds no stale entry


def test_every_other_module_imports_without_ray_or_mlflow():
    pure = [m for m in modules() if m not in RAY_MODULES and not m.startswith("blindsr.tracking")]
    assert len(pure) > 40
    code = f"import sys, importlib; [importlib.import_module(m) for m in {pure!r}]; "
    code += "print([m for m in ('ray', 'mlflow') if m in sys.modules])"
    res = run("-c", code)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr[-3000:]


def blindsr_imports(path: Path) -> set[str]:
    """Every ``blindsr.*`` module a file imports, anywhere in it."""
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    return {name for name in names if name.startswith("blindsr.")}


@pytest.mark.parametrize(
    "floor, above",
    [
        ("blindsr.artifacts", ("blindsr.train", "blindsr.tracking", "blindsr.infer", "blindsr.evaluation")),
        ("blindsr.tracking", ("blindsr.train", "blindsr.infer", "blindsr.evaluation", "blindsr.tune")),
        ("blindsr.infer", ("blindsr.train", "blindsr.evaluation", "blindsr.tune")),
        ("blindsr.models", ("blindsr.train", "blindsr.tracking", "blindsr.infer", "blindsr.artifacts")),
    ],
)
def test_no_module_imports_a_floor_above_its_own(floor, above):
    """The trained model's home (artifacts/) sits below tracking/ and infer, which sit below training."""
    upward = {
        module: sorted(i for i in blindsr_imports(path) if i.startswith(above))
        for module, path in modules().items()
        if module == floor or module.startswith(floor + ".")
    }
    assert {m: i for m, i in upward.items() if i} == {}


def test_degradations_need_nothing_from_the_run_config():
    """The old import circle (config ⇄ degradations.presets) stays gone: degradations/ never imports
    blindsr.config, and its presets import first in a fresh interpreter."""
    for module, path in modules().items():
        if module.startswith("blindsr.degradations"):
            tree = ast.parse(path.read_text())
            sources = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not any(s == "blindsr.config" or s.startswith("blindsr.config.") for s in sources), module
    code = "import blindsr.degradations.presets as p; import blindsr.config as c; "
    code += "print(c.PRESETS['cdsr_paper']().degradation == p.cdsr_train(4))"
    res = run("-c", code)
    assert res.returncode == 0 and res.stdout.strip() == "True", res.stderr[-2000:]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash\n")[1:]]
    test_cmd = next(b for b in blocks if "pytest" in b)
    main_cmd = next(b for b in blocks if "jobs/" in b and "pip install" in b)
    assert test_cmd in (ROOT / ".ci" / "run").read_text()
    assert "constraints.txt" in main_cmd and "constraints.txt" in test_cmd
