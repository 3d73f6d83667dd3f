#!/usr/bin/env bash
# The wheels the GPU image lacks, in one folder of at most 60 MiB that `gpu_check.sh OUT_DIR KIT` installs offline:
#
#   bash benchmarks/gpu_kit.sh [--python-version 3.12.3] OUT_DIR
#
# Roots: pyproject.toml's ray[default,data,train,tune] (a local run starts the dashboard), mlflow-skinny at the
# project's mlflow version with what its SQLite tracking and registry store imports (SQLAlchemy, alembic,
# cryptography), albumentations and albucore. Their dependencies are followed only through packages the image lacks
# (benchmarks/gpu_image_packages.txt), at this environment's versions (the ones the tests ran). What does not fit
# is cut by name below, each cut a part no blindsr run imports; docs/performance.md gives the sizes.
# Wheels are for CPython 3.12 manylinux x86-64 (the image's); a --python-version equal to this interpreter's builds
# for this machine (the CPU fallback test). OUT_DIR/manifest.json lists every wheel, its size and what needs it.
# Python: $PYTHON, else .venv/bin/python, else python3; needs binutils' strip. Exit status 1 over 60 MiB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pyver=3.12.3
while [ $# -gt 1 ]; do
  case $1 in
    --python-version) pyver=$2 && shift 2 ;;
    *) echo "unknown option $1" >&2 && exit 2 ;;
  esac
done
out=${1:?usage: bash benchmarks/gpu_kit.sh [--python-version X.Y.Z] OUT_DIR}
command -v strip >/dev/null || { echo "gpu_kit.sh needs strip (binutils)" >&2 && exit 2; }
mkdir -p "$out" && out=$(cd "$out" && pwd)
case $out/ in # inside the checkout only where git ignores it: a kit is carried, never committed
  "$root"/*) git -C "$root" check-ignore -q "$out" || { echo "$out: in the repository, not ignored" >&2 && exit 2; } ;;
esac
py=${PYTHON:-$([ -x "$root/.venv/bin/python" ] && echo "$root/.venv/bin/python" || echo python3)}
exec "$py" - "$root" "$out" "$pyver" <<'EOF'
import atexit, base64, hashlib, json, platform, re, shutil, subprocess, sys, tempfile, tomllib, zipfile
import importlib.metadata as md
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon

root, out, pyver = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
LIMIT = 60 * 2**20
LEAVE_OUT = {  # declared, never imported in an import-logging run of gpu_check.sh's fallback
    "virtualenv": "Ray's runtime_env pip/uv/conda environments only (5.5 MiB, with distlib and platformdirs)",
    "py-spy": "the Ray dashboard's profiling buttons only (2.8 MiB)",
}
PURE = {"sqlalchemy"}  # its C extensions are optional speed-ups: the py3-none-any wheel is 2.5 MiB smaller
RAY_DROP = re.compile(  # the Java worker, RLlib and Ray LLM (their extras are not in the kit), browser source maps,
    r"ray/(jars|rllib|llm|_private/runtime_env/agent/thirdparty_files)/|.*\.js\.map$"  # the image's own aiohttp
)
RAY_STRIP = {"ray/_raylet.so", "ray/core/src/ray/gcs/gcs_server", "ray/core/src/ray/raylet/raylet"}  # .symtab only
MANYLINUX = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"]
MANYLINUX += [f"manylinux_2_{n}_x86_64" for n in range(5, 40)]  # pip matches each exactly; the image has glibc 2.39

project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
ray, mlflow, albu = (next(Requirement(d) for d in project["dependencies"] if Requirement(d).name == n)
                     for n in ("ray", "mlflow", "albumentations"))
roots = [f"ray[{','.join(sorted(ray.extras))}]{ray.specifier}", f"mlflow-skinny{mlflow.specifier}", "sqlalchemy",
         "alembic", "cryptography", f"albumentations{albu.specifier}", "albucore"]
image = {canon(x.strip()) for x in (root / "benchmarks/gpu_image_packages.txt").read_text().splitlines()
         if x.strip() and not x.startswith("#")}
native = pyver.split(".")[:2] == list(platform.python_version_tuple()[:2])
full = platform.python_version() if native else ".".join((pyver.split(".") + ["0", "0"])[:3])
env = default_environment() if native else {
    **default_environment(), "python_version": ".".join(full.split(".")[:2]), "python_full_version": full,
    "implementation_name": "cpython", "implementation_version": full, "platform_python_implementation": "CPython",
    "platform_machine": "x86_64", "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
tags = [] if native else ["--python-version", full, "--implementation", "cp", *(f"--platform={p}" for p in MANYLINUX)]
pure_tags = ["--python-version", full, "--implementation", "py", "--abi", "none", "--platform", "any"]
tmp = Path(tempfile.mkdtemp())
atexit.register(shutil.rmtree, tmp, True)

kit, from_image, left_out, walked = {}, {}, {}, set()  # name -> [name, version, who needs it]; (name, extra) walked
todo = [(Requirement(r), "(root)") for r in roots]
while todo:  # through this environment's metadata: the kit holds the versions the tests ran
    req, by = todo.pop()
    name = canon(req.name)
    if name in image or name in LEAVE_OUT:
        (from_image if name in image else left_out).setdefault(name, set()).add(f"{by}: {req.name}{req.specifier}")
        continue
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        sys.exit(f"{name} (needed by {by}) is not installed in {sys.prefix}: build the kit with the project's venv")
    if not req.specifier.contains(dist.version, prereleases=True):
        sys.exit(f"{name} {dist.version} here does not satisfy {req} (needed by {by})")
    kit.setdefault(name, [dist.metadata["Name"], dist.version, set()])[2].add(by)
    for extra in {"", *req.extras} - {e for n, e in walked if n == name}:
        walked.add((name, extra))
        for r in map(Requirement, dist.requires or []):
            if r.marker is None or r.marker.evaluate({**env, "extra": extra}):
                todo.append((r, dist.metadata["Name"] + (f"[{extra}]" if extra else "")))

pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "download", "--quiet", "--no-deps"]
for names, how in ((sorted(set(kit) - PURE), tags), (sorted(set(kit) & PURE), pure_tags)):
    pins = [f"{kit[n][0]}=={kit[n][1]}" for n in names]
    subprocess.run([*pip, "--only-binary=:all:", *how, "-d", str(tmp / "dl"), *pins], check=True)


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def trimmed_ray(src: Path, dst: Path) -> list[str]:
    """``src`` rewritten to ``dst`` without RAY_DROP and RAY_STRIP's symbol tables; RECORD lists what remains."""
    dropped, changed = 0, {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if RAY_DROP.match(info.filename):
                dropped += 1
            elif re.fullmatch(r"[^/]+\.dist-info/RECORD", info.filename):  # Ray's own, not a vendored package's
                record = info
            else:
                data = zin.read(info)
                if info.filename in RAY_STRIP:
                    (tmp / "elf").write_bytes(data)
                    subprocess.run(["strip", "--strip-unneeded", str(tmp / "elf")], check=True)
                    data = (tmp / "elf").read_bytes()
                    changed[info.filename] = f"{info.filename},{record_hash(data)},{len(data)}\n"
                zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
        rows = zin.read(record).decode().splitlines(keepends=True)
        rows = [changed.get(r.split(",")[0], r) for r in rows if not RAY_DROP.match(r.split(",")[0])]
        zout.writestr(record, "".join(rows), compress_type=zipfile.ZIP_DEFLATED)
    return [f"{dropped} files matching {RAY_DROP.pattern}", *(f"the symbol table of {f}" for f in changed)]


for old in [*out.glob("*.whl"), *out.glob("manifest.json")]:
    old.unlink()
wheels = []
for whl in sorted((tmp / "dl").glob("*.whl")):
    name = canon(whl.name.split("-")[0])
    if name == "ray":
        removed = trimmed_ray(whl, out / whl.name)
    else:
        removed = []
        shutil.copyfile(whl, out / whl.name)
    data = (out / whl.name).read_bytes()
    wheels.append({"file": whl.name, "name": kit[name][0], "version": kit[name][1], "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest(), "removed": removed, "needed_by": sorted(kit[name][2])})
manifest = {"python": full, "platform": f"this machine ({platform.machine()})" if native else "manylinux x86_64",
            "roots": roots, "image_list": "benchmarks/gpu_image_packages.txt", "wheels": wheels,
            "left_out": {n: {"why": LEAVE_OUT[n], "needed_by": sorted(v)} for n, v in sorted(left_out.items())},
            "from_image": {n: sorted(v) for n, v in sorted(from_image.items())},
            "install": "python3 -m pip install --no-index --no-deps --target DIR KIT/*.whl"}
(out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
total = sum(p.stat().st_size for p in out.iterdir())
for w in wheels:
    print(f"{w['name'][:30]:30} {w['version']:12} {w['bytes'] / 2**20:6.2f} MiB  {', '.join(w['needed_by'])}")
print(f"left out: {'; '.join(f'{n}: {why}' for n, why in LEAVE_OUT.items())}")
print(f"from the image: {', '.join(manifest['from_image'])}")
print(f"kit {out}: {len(wheels)} wheels for Python {full}, {total / 2**20:.1f} MiB (limit {LIMIT // 2**20} MiB)")
sys.exit(0 if total <= LIMIT else f"kit over {LIMIT // 2**20} MiB")
EOF
