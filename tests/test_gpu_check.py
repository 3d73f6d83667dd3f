"""``benchmarks/gpu_kit.sh`` and ``benchmarks/gpu_check.sh`` without CUDA. The kit for the GPU image's Python
(cp312) is checked as a device call carries it: its size, its wheels against the image's package list and their own
requirements, every wheel's RECORD. The CPU fallback runs every section from a kit the same script builds for this
Python, with every installed package that is neither the image's nor the kit's hidden from import in every process
(Ray's included): what the image and the kit hold suffices, and the script never rots."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from helpers import ROOT

pytestmark = [pytest.mark.slow]

IMAGE = {
    canonicalize_name(line.strip())
    for line in (ROOT / "benchmarks" / "gpu_image_packages.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}
# The device image: CPython 3.12.3 on glibc 2.39, x86-64.
CP312 = {
    **default_environment(),
    **dict(python_version="3.12", python_full_version="3.12.3", implementation_version="3.12.3"),
    **dict(sys_platform="linux", platform_machine="x86_64", platform_system="Linux", implementation_name="cpython"),
}
MANYLINUX = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"]
MANYLINUX += [f"manylinux_2_{n}_x86_64" for n in range(5, 40)]
CP312_TAGS = {*cpython_tags((3, 12), platforms=MANYLINUX), *compatible_tags((3, 12), "cp312", MANYLINUX)}
# hide: a module whose top-level name is listed fails to import, as on the image
MASK = """import sys
HIDDEN = frozenset({hidden!r})
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the GPU image or the kit)", name=name)
sys.meta_path.insert(0, Hide())
"""


def build_kit(out: Path, *python_version: str) -> dict:
    res = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_kit.sh"), *python_version, str(out)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "MiB (limit 60 MiB)" in res.stdout
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def kits(tmp_path_factory) -> Iterator[dict[str, tuple[Path, Future]]]:
    """The image's kit and one for this Python, built at once (each mostly waits on downloads): name -> (folder,
    its manifest's future)."""
    folders = {"cp312": tmp_path_factory.mktemp("kit312"), "here": tmp_path_factory.mktemp("kit_here")}
    here = ("--python-version", ".".join(map(str, sys.version_info[:2])))
    with ThreadPoolExecutor(2) as pool:
        yield {
            "cp312": (folders["cp312"], pool.submit(build_kit, folders["cp312"])),
            "here": (folders["here"], pool.submit(build_kit, folders["here"], *here)),
        }


def record_problems(wheel: Path) -> list[str]:
    """Where ``wheel``'s RECORD and its files disagree (hash, size, a file missing from either)."""
    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/RECORD", n))
        rows = {row[0]: row[1:] for row in csv.reader(z.read(record).decode().splitlines()) if row}
        problems = [f"not in RECORD: {n}" for n in z.namelist() if n not in rows and not n.endswith("/")]
        for name, (digest, size) in rows.items():
            if name == record:
                continue
            if name not in z.namelist():
                problems.append(f"in RECORD, not in the wheel: {name}")
                continue
            data = z.read(name)
            if digest != "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode():
                problems.append(f"hash: {name}")
            if int(size) != len(data):
                problems.append(f"size: {name}")
    return problems


def unmet(kit: Path, env: dict) -> dict[str, str]:
    """Requirements of the kit's wheels (their own METADATA, pyproject's Ray extras) that neither the kit nor the
    image provides: name -> the wheel that asks for it."""
    meta = {}
    for wheel in kit.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            text = z.read(next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))).decode()
        meta[canonicalize_name(parse_wheel_filename(wheel.name)[0])] = Parser().parsestr(text).get_all("Requires-Dist")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    todo = [("ray", extra) for extra in next(Requirement(d) for d in deps if d.startswith("ray")).extras]
    todo += [(name, "") for name in meta]
    seen, missing = set(), {}
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for req in map(Requirement, meta[name] or []):
            dep = canonicalize_name(req.name)
            if req.marker is None or req.marker.evaluate({**env, "extra": extra}):
                if dep in meta:
                    todo += [(dep, e) for e in req.extras]
                elif dep not in IMAGE:
                    missing[dep] = name
    return missing


def test_kit_for_the_gpu_image_fits_and_holds_only_what_the_image_lacks(kits):
    kit, built = kits["cp312"]
    manifest = built.result()
    files = sorted(kit.iterdir())
    assert sum(p.stat().st_size for p in files) <= 60 * 2**20
    wheels = {p.name: p for p in files if p.suffix == ".whl"}
    assert sorted(wheels) == sorted(w["file"] for w in manifest["wheels"])
    for w in manifest["wheels"]:
        assert hashlib.sha256(wheels[w["file"]].read_bytes()).hexdigest() == w["sha256"]
    names = {canonicalize_name(parse_wheel_filename(n)[0]) for n in wheels}
    assert not names & IMAGE
    assert {"ray", "mlflow-skinny", "sqlalchemy", "alembic", "cryptography", "albumentations", "albucore"} <= names
    for name in wheels:
        assert parse_wheel_filename(name)[3] & CP312_TAGS, f"{name} does not install on CPython 3.12 x86-64"
        assert record_problems(wheels[name]) == [], name
    missing = unmet(kit, CP312)
    assert set(missing) == set(manifest["left_out"]), missing  # nothing else, each with its reason
    with zipfile.ZipFile(next(p for n, p in wheels.items() if n.startswith("ray-"))) as z:
        assert not [n for n in z.namelist() if n.startswith("ray/jars/")]
        assert z.read("ray/core/src/ray/raylet/raylet")[:4] == b"\x7fELF"


@pytest.mark.ray
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="with CUDA the script runs the GPU sizes (minutes)")
def test_gpu_check_cpu_fallback_from_a_kit_passes_every_section(kits, tmp_path):
    kit, built = kits["here"]
    manifest = built.result()
    allowed = IMAGE | {canonicalize_name(w["name"]) for w in manifest["wheels"]} | {"blindsr"}
    hidden = {
        module
        for module, dists in md.packages_distributions().items()
        if not any(canonicalize_name(d) in allowed for d in dists)
    }
    assert {"flask", "virtualenv"} <= hidden  # (full MLflow's server; left out of the kit)
    (tmp_path / "mask").mkdir()
    (tmp_path / "mask" / "sitecustomize.py").write_text(MASK.format(hidden=sorted(hidden)))
    before = sorted((ROOT / "outputs" / "ray").glob("*")) if (ROOT / "outputs" / "ray").is_dir() else []
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path / "mask"), os.environ.get("PYTHONPATH")]))
    res = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out"), str(kit)],
        env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "mode cpu" in summary
    assert f"| kit | PASS ({len(manifest['wheels'])} wheels) |" in summary
    for module in ("ray", "mlflow", "albumentations"):  # from the kit's temporary install, not this environment
        assert re.search(rf"{module}: /\S+/site/{module}\b", summary), summary
    for section in ("gpu_tests", "degradation", "throughput", "ray_train"):
        assert f"| {section} | PASS |" in summary, summary
        assert (tmp_path / "out" / f"{section}.log").is_file()
    throughput = json.loads((tmp_path / "out" / "throughput.json").read_text())
    assert [r["model"] for r in throughput["results"]] == ["cdsr"]
    assert "registered version: 1" in (tmp_path / "out" / "ray_train.log").read_text()  # its own fresh registry
    after = sorted((ROOT / "outputs" / "ray").glob("*")) if (ROOT / "outputs" / "ray").is_dir() else []
    assert after == before
