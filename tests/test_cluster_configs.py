"""Static checks of the deployment configs in cluster/ and the Dockerfile: every YAML parses, carries the fields
its tool needs, names the same image and Ray version, and every training command in them (and in the README's
"From laptop to cluster" section) names a job script that exists, a preset that exists and ``--set`` keys the
config schema accepts. No Ray, no network, no cluster."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from blindsr.config import PRESETS, ConfigError
from blindsr.train.cli import config_from_args, parser

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHER = CLUSTER / "aws-gpu.yaml"
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob-train-cdsr.yaml"
RUNTIME_ENV = CLUSTER / "runtime_env.yaml"
COMPOSE = CLUSTER / "mlflow" / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ALL_YAML = [LAUNCHER, RAYCLUSTER, RAYJOB, RUNTIME_ENV, COMPOSE]

# ${VAR}, ${VAR:-x}, $VAR and <placeholder> stand for deployment-specific values; any string checks the same.
PLACEHOLDER = re.compile(r"\$\{[^}]*\}|\$\w+|<[^>]+>")


def load(path: Path):
    return yaml.safe_load(path.read_text())


def ray_version() -> str:
    pins = dict(
        line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("ray==")
    )
    return pins["ray"].strip()


RAY_VERSION = ray_version()
PY_TAG = "py311"


def project_image() -> str:
    return load(LAUNCHER)["docker"]["image"]


def walk(node, key: str):
    """Every value stored under ``key`` anywhere in a parsed YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, key)


# --------------------------------------------------------------------------------------------------
# Training commands
# --------------------------------------------------------------------------------------------------


def check_training_command(command: str) -> None:
    """``[python] jobs/<script>.py [args]``: the script exists; for train_<family>.py the preset exists and the
    whole command line (``--preset``, ``--config``, ``--set``, ``--name``) builds a valid config."""
    argv = shlex.split(PLACEHOLDER.sub("dummy", command), comments=True)
    scripts = [i for i, a in enumerate(argv) if re.fullmatch(r"(.*/)?jobs/\w+\.py", a)]
    assert scripts, f"no jobs/<script>.py in {command!r}"
    i = scripts[0]
    script = "jobs/" + argv[i].split("jobs/", 1)[1]
    assert (ROOT / script).is_file(), f"{script} does not exist (command {command!r})"
    family = re.fullmatch(r"jobs/train_(\w+)\.py", script)
    if family is None:
        return
    args = parser(family[1], "").parse_args(argv[i + 1 :])
    assert f"{family[1]}_{args.preset}" in PRESETS
    try:
        config_from_args(family[1], args)
    except ConfigError as e:
        pytest.fail(f"{command!r}: {e}")


def test_command_checker_rejects_bad_keys_and_scripts():
    check_training_command("python jobs/train_cdsr.py --preset paper --set train.storage_path=s3://${BUCKET}/ray")
    with pytest.raises(pytest.fail.Exception, match="train.no_such_key"):
        check_training_command("python jobs/train_cdsr.py --preset paper --set train.no_such_key=1")
    with pytest.raises(AssertionError, match="does not exist"):
        check_training_command("python jobs/train_nothing.py --preset paper")


def readme_cluster_section() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## From laptop to cluster\n(.*?)(?=^## |\Z)", readme, flags=re.S | re.M)
    assert match, "README has no '## From laptop to cluster' section"
    return match[1]


def shell_commands(text: str) -> list[str]:
    """Commands in ```bash blocks, continuation lines joined, comments dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        out += [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return out


# --------------------------------------------------------------------------------------------------
# Every file
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses_to_a_mapping(path):
    assert isinstance(load(path), dict)


@pytest.mark.parametrize("path", [*ALL_YAML, DOCKERFILE], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_secrets_in_files(path):
    text = path.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text), "AWS access key id"
    assert "BEGIN PRIVATE KEY" not in text and "BEGIN RSA PRIVATE KEY" not in text
    # passwords / secret keys only as ${VAR} references, secretKeyRefs or <placeholders>
    for m in re.finditer(r"(?i)(password|secret_access_key|auth_token)\s*[:=]\s*(\S+)", text):
        value = m[2].strip("\"'")
        assert value.startswith(("${", "$$", "{", "<")), f"{path.name}: literal {m[0]!r}"


def test_same_ray_version_and_image_everywhere():
    assert RAY_VERSION == "2.60.0"
    assert re.search(r'"ray\[[^]]*\]>=2\.60,<2\.61"', (ROOT / "pyproject.toml").read_text())
    image = project_image()
    assert f"ray{RAY_VERSION}" in image and PY_TAG in image, image
    for path in (RAYCLUSTER, RAYJOB):
        doc = load(path)
        assert set(walk(doc, "image")) == {image}, path.name
        assert set(walk(doc, "rayVersion")) == {RAY_VERSION}, path.name
    # the launcher's setup check and the Dockerfile base agree too
    assert any(RAY_VERSION in c for c in load(LAUNCHER)["setup_commands"])
    assert f"docker build -t {image}" in DOCKERFILE.read_text()


# --------------------------------------------------------------------------------------------------
# Ray cluster launcher
# --------------------------------------------------------------------------------------------------


def test_launcher_config():
    cfg = load(LAUNCHER)
    for key in ("cluster_name", "max_workers", "provider", "auth", "docker", "available_node_types", "head_node_type"):
        assert key in cfg, key
    assert cfg["provider"]["type"] == "aws" and cfg["provider"]["region"]
    assert cfg["auth"]["ssh_user"]
    types = cfg["available_node_types"]
    head = cfg["head_node_type"]
    assert head in types
    assert not types[head].get("resources", {}).get("GPU"), "the head is a CPU node"
    gpu_types = {n: t for n, t in types.items() if t.get("resources", {}).get("GPU", 0) >= 1}
    assert gpu_types, "no GPU worker type"
    for name, t in gpu_types.items():
        assert name != head
        assert t["node_config"]["InstanceType"]
        assert 0 <= t["min_workers"] <= t["max_workers"] <= cfg["max_workers"], name
        assert t["max_workers"] > t["min_workers"], f"{name} does not autoscale"
    assert types[head]["node_config"]["InstanceType"]
    for key in ("setup_commands", "head_start_ray_commands", "worker_start_ray_commands"):
        assert isinstance(cfg[key], list) and cfg[key], key
    assert any("ray start --head" in c for c in cfg["head_start_ray_commands"])
    assert any("ray start --address" in c for c in cfg["worker_start_ray_commands"])
    # token auth: the token file reaches every node, and never from inside the repo
    mounts = cfg.get("file_mounts", {})
    assert any("auth_token" in k for k in mounts), "no auth token mount"
    assert all(not v.startswith(("./", "cluster/")) for v in mounts.values())


def test_launcher_header_command_is_valid():
    header = "\n".join(line[1:].strip() for line in LAUNCHER.read_text().splitlines() if line.startswith("#")).replace(
        "\\\n", " "
    )
    submit = next(line for line in header.splitlines() if "jobs/" in line)
    check_training_command(submit.split(" -- ", 1)[1] if " -- " in submit else submit)


# --------------------------------------------------------------------------------------------------
# KubeRay
# --------------------------------------------------------------------------------------------------


def check_raycluster_spec(spec: dict, where: str) -> None:
    assert spec["rayVersion"] == RAY_VERSION, where
    assert spec.get("authOptions", {}).get("mode") == "token", where
    head = spec["headGroupSpec"]
    assert "rayStartParams" in head, where
    head_containers = head["template"]["spec"]["containers"]
    assert head_containers and head_containers[0]["image"] == project_image(), where
    assert "nvidia.com/gpu" not in head_containers[0].get("resources", {}).get("limits", {}), where
    groups = spec["workerGroupSpecs"]
    assert groups, where
    gpu_groups = []
    for g in groups:
        for key in ("groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template"):
            assert key in g, f"{where}: worker group lacks {key}"
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], where
        for c in g["template"]["spec"]["containers"]:
            assert c["image"] == project_image(), where
            gpus = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)
            if int(gpus) >= 1:
                gpu_groups.append(g["groupName"])
                # GPUs are limits-only resources in Kubernetes; a request, if given, must equal the limit
                assert c["resources"].get("requests", {}).get("nvidia.com/gpu", gpus) == gpus
    assert gpu_groups, f"{where}: no worker group with nvidia.com/gpu limits"


def test_raycluster():
    doc = load(RAYCLUSTER)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    assert doc["metadata"]["name"]
    check_raycluster_spec(doc["spec"], RAYCLUSTER.name)
    assert doc["spec"]["enableInTreeAutoscaling"] is True
    assert any(g["maxReplicas"] > g["minReplicas"] for g in doc["spec"]["workerGroupSpecs"]), "no autoscaling"


def test_rayjob():
    doc = load(RAYJOB)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    entrypoint = spec["entrypoint"]
    assert "jobs/train_cdsr.py" in entrypoint and "--preset paper" in entrypoint
    check_training_command(entrypoint)
    # a multi-node run needs checkpoints on storage every node sees
    assert "train.storage_path=s3://" in entrypoint or "train.storage_path=/mnt/" in entrypoint
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert isinstance(runtime_env, dict)
    assert runtime_env["env_vars"]["MLFLOW_TRACKING_URI"].startswith("http")
    workdir = runtime_env.get("working_dir", "")
    assert workdir in DOCKERFILE.read_text(), "working_dir is not the image's WORKDIR"
    assert spec["submissionMode"] in ("K8sJobMode", "HTTPMode")
    if not workdir.startswith(("s3://", "gs://", "https://")):
        assert spec["submissionMode"] == "K8sJobMode", "a local working_dir is uploaded only by the submitter pod"
    assert spec["shutdownAfterJobFinishes"] is True
    assert "ttlSecondsAfterFinished" in spec and "activeDeadlineSeconds" in spec
    assert ("rayClusterSpec" in spec) != ("clusterSelector" in spec)
    check_raycluster_spec(spec["rayClusterSpec"], f"{RAYJOB.name} rayClusterSpec")
    # the job asks for exactly the GPUs its cluster has
    workers = int(re.search(r"scaling\.num_workers=(\d+)", entrypoint)[1])
    gpus = sum(
        int(c["resources"]["limits"].get("nvidia.com/gpu", 0)) * g["maxReplicas"]
        for g in spec["rayClusterSpec"]["workerGroupSpecs"]
        for c in g["template"]["spec"]["containers"]
    )
    assert workers <= gpus


# --------------------------------------------------------------------------------------------------
# runtime_env, MLflow, Dockerfile, README
# --------------------------------------------------------------------------------------------------


def test_runtime_env():
    env = load(RUNTIME_ENV)
    assert env["working_dir"] == "."
    assert env["py_modules"], "py_modules must ship the package"
    for module in env["py_modules"]:
        assert (ROOT / module / "__init__.py").is_file(), module
    assert "platform/blindsr" in env["py_modules"]
    assert not (ROOT / "platform" / "__init__.py").exists(), "platform/__init__.py shadows the stdlib module"
    for pattern in (".venv/", "outputs/", "mlruns/", "mlflow.db"):
        assert pattern in env["excludes"], pattern
    assert env["env_vars"]["MLFLOW_TRACKING_URI"].startswith("http")
    assert all(isinstance(v, str) for v in env["env_vars"].values()), "runtime env vars must be strings"


def test_mlflow_compose():
    doc = load(COMPOSE)
    services = doc["services"]
    assert "mlflow" in services and "postgres" in services
    store = next((n for n, s in services.items() if "minio" in str(s.get("image", ""))), None)
    assert store, "no S3-compatible artifact store service"
    mlflow = services["mlflow"]
    command = mlflow["command"]
    command = " ".join(command) if isinstance(command, list) else command
    assert "mlflow server" in command
    assert re.search(r"--backend-store-uri\s+\"?postgresql(\+\w+)?://", command), command
    assert re.search(r"--artifacts-destination\s+\"?s3://", command), command
    assert "--serve-artifacts" in command and "--host 0.0.0.0" in command
    deps = mlflow["depends_on"]
    assert "postgres" in deps
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"].startswith("http://minio")
    assert any(p.split(":")[-1] == "5000" for p in mlflow["ports"])
    # the tracking URI the jobs use points at this server's port
    assert load(RUNTIME_ENV)["env_vars"]["MLFLOW_TRACKING_URI"].endswith(":5000")


def dockerfile_text() -> str:
    """The Dockerfile with line continuations joined and ``${ARG}`` defaults substituted."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.M))
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), text)


def test_dockerfile():
    text = dockerfile_text()
    base = re.search(r"^FROM (\S+)", text, flags=re.M)[1]
    assert base == f"rayproject/ray:{RAY_VERSION}-{PY_TAG}-gpu", base
    installs = [line for line in text.splitlines() if "pip install" in line and not line.startswith("#")]
    assert any(re.search(rf"ray(\[[^]]*\])?=={re.escape(RAY_VERSION)}", line) for line in installs), installs
    # the package itself, not editable (an editable install shadows py_modules on the cluster)
    assert any(re.search(r"pip install [^&]*\s\.(\s|$)", line) for line in installs), installs
    assert not any(" -e " in line for line in installs)
    # a CUDA torch from PyTorch's index, same version as the CPU pin
    torch_pin = next(line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("torch=="))
    assert any(torch_pin in line and "download.pytorch.org/whl/cu" in line for line in installs), installs
    assert "COPY --chown=ray:users platform/ platform/" in text
    assert "COPY --chown=ray:users jobs/ jobs/" in text
    # the RayJob's working_dir is the image's WORKDIR
    workdir = re.search(r"^WORKDIR (\S+)", text, flags=re.M)[1]
    assert yaml.safe_load(load(RAYJOB)["spec"]["runtimeEnvYAML"])["working_dir"] == workdir


def test_readme_from_laptop_to_cluster():
    section = readme_cluster_section()
    for needle in (
        "ray up cluster/aws-gpu.yaml",
        "ray job submit",
        "kubectl apply -f cluster/kuberay/rayjob-train-cdsr.yaml",
        "docker compose -f cluster/mlflow/docker-compose.yaml up -d",
        "storage_path",
    ):
        assert needle in section, needle
    commands = [c for c in shell_commands(section) if "jobs/" in c]
    assert len(commands) >= 2
    for command in commands:
        check_training_command(command.split(" -- ", 1)[1] if " -- " in command else command)
    for path in re.findall(r"cluster/[\w./-]+\.yaml", section):
        assert (ROOT / path).is_file(), path


# --------------------------------------------------------------------------------------------------
# MLflow authentication: the compose server, and the login reaching every Ray node without a file in git
# --------------------------------------------------------------------------------------------------


def test_compose_runs_the_authentication_app_with_its_own_database(tmp_path):
    from mlflow.server.auth.config import read_auth_config

    services = load(COMPOSE)["services"]
    mlflow = services["mlflow"]
    command = mlflow["command"][-1]
    assert "mlflow server --app-name basic-auth" in command and "Flask-WTF" in command
    env = mlflow["environment"]
    for var in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[var].startswith("${") and ":?" in env[var], f"{var} must come from the environment, required"
    assert mlflow["depends_on"]["auth-db-init"] == {"condition": "service_completed_successfully"}
    assert "CREATE DATABASE mlflow_auth" in services["auth-db-init"]["entrypoint"][-1]
    # the settings file the command writes at start (compose turns $$ into $), read by MLflow's own reader
    printf = command.split(" && ")[1].replace("$$", "$")
    ini = tmp_path / "basic_auth.ini"
    shell = {"POSTGRES_PASSWORD": "pg-pass", "MLFLOW_AUTH_CONFIG_PATH": str(ini), "PATH": "/usr/bin:/bin"}
    subprocess.run(["sh", "-c", printf], env=shell, check=True, timeout=30)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_AUTH_CONFIG_PATH", str(ini))
        mp.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "admin")  # compose sets both of these in the environment
        mp.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "x")
        cfg = read_auth_config()
    assert cfg.default_permission == "READ" and cfg.admin_username == "admin"
    assert cfg.database_uri == "postgresql://mlflow:pg-pass@postgres:5432/mlflow_auth"
    assert cfg.auth_cache_ttl_seconds == 60  # one password check a minute, not one per logging request


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=lambda p: p.name)
def test_kuberay_pods_log_in_to_mlflow_from_a_secret(path):
    spec = load(path)["spec"]
    spec = spec.get("rayClusterSpec", spec)
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for container in (c for g in groups for c in g["template"]["spec"]["containers"]):
        env = {e["name"]: e for e in container["env"]}
        for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            assert "value" not in env[var], f"{container['name']}: {var} must not be written in the file"
            assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "blindsr-mlflow", container["name"]


def test_launcher_nodes_export_the_mlflow_login():
    cfg = load(LAUNCHER)
    assert "~/.blindsr/mlflow.env" in cfg["file_mounts"]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in cfg[key] if "ray start" in c)
        assert start.index("set -a; . ~/.blindsr/mlflow.env; set +a;") < start.index("ray start"), key
