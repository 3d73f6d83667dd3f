"""Real servers for the tests: Ray clusters started with ``ray start`` (one or more nodes on this machine),
PostgreSQL and an MLflow tracking server on top of it. Each is stopped by killing only its own processes,
so a test never takes down another Ray runtime on the machine (``ray stop`` would stop all of them)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- processes ------------------------------------------------------------------------------------------


def _table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process, from /proc."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        procs[int(entry.name)] = (ppid, cmd)
    return procs


def descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them."""
    procs, found, grew = _table(), set(roots), True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def find(pattern: str, under: set[int] | None = None) -> list[int]:
    """Processes whose command line (or Ray's proc title, e.g. ``ray::RayTrainWorker``) contains ``pattern``."""
    scope = descendants(under) if under is not None else None
    return sorted(
        pid
        for pid, (_, cmd) in _table().items()
        if pattern in cmd and (scope is None or pid in scope) and pid != os.getpid()
    )


def kill_tree(roots: set[int], grace: float = 5.0) -> None:
    """SIGTERM ``roots`` and their descendants, then SIGKILL what is left after ``grace`` seconds."""
    pids = descendants(roots)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.time() + grace
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


# ---- Ray ------------------------------------------------------------------------------------------------


class RayCluster:
    """A Ray cluster of ``ray start`` nodes on this machine. Each node gets its own temp dir below ``root``
    (two nodes sharing one would share runtime_resources/ and delete each other's working dirs), and is
    stopped by killing the processes that name its temp dir, with their children (the Ray workers)."""

    def __init__(self, root: Path) -> None:
        self.root = root  # keep it short: Ray's unix sockets live below it (107-byte limit)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token"}
        self.env.pop("RAY_ADDRESS", None)
        self.gcs = f"127.0.0.1:{free_port()}"
        self.dashboard = f"http://127.0.0.1:{free_port()}"
        self.nodes: list[Path] = []

    def _start(self, args: list[str], resources: dict[str, float] | None) -> RayCluster:
        temp = self.root / f"n{len(self.nodes)}"
        self.nodes.append(temp)
        # Every node of this machine needs its own agent and metrics ports: the defaults (52365, …) are
        # per machine, and a second node or another Ray runtime here would leave a node without a job agent.
        ports = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port"]
        args = [
            *args, f"--temp-dir={temp}", f"--resources={json.dumps(resources or {})}", "--disable-usage-stats",
            "--runtime-env-agent-port", str(free_port()), *(f"{p}={free_port()}" for p in ports),
        ]  # fmt: skip
        done = subprocess.run([RAY, "start", *args], env=self.env, capture_output=True, text=True, timeout=240)
        if done.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return self

    def start_head(self, cpus: int, resources: dict[str, float] | None = None) -> RayCluster:
        args = [
            "--head", f"--port={self.gcs.split(':')[1]}", f"--num-cpus={cpus}", "--include-dashboard=true",
            f"--dashboard-port={self.dashboard.rsplit(':', 1)[1]}", "--dashboard-host=127.0.0.1",
            f"--ray-client-server-port={free_port()}",
        ]  # fmt: skip
        return self._start(args, resources)

    def add_node(self, cpus: int, resources: dict[str, float] | None = None) -> RayCluster:
        return self._start([f"--address={self.gcs}", f"--num-cpus={cpus}"], resources)

    def stop(self) -> None:
        """Kill the nodes (a test's cluster has nothing to save: Ray's graceful stop takes seconds)."""
        kill_tree({pid for temp in self.nodes for pid in find(str(temp))}, grace=0.5)


# ---- PostgreSQL + MLflow server -------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: on PATH, or Debian's /usr/lib/postgresql/<v>/bin."""
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def install_postgres() -> Path | None:
    """``apt-get install postgresql`` when it is absent and this user may (root with apt); the bin folder."""
    if (found := postgres_bin()) is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False, capture_output=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "postgresql"], env=env, check=True, capture_output=True, timeout=900
        )
        found = postgres_bin()
    return found


@contextlib.contextmanager
def postgres() -> Iterator[Callable[[str], str]]:
    """A throw-away PostgreSQL server in a fresh temp folder; yields ``database(name)``, which creates a
    database and returns its ``postgresql+psycopg2://`` URI for MLflow. As root, the
    server runs as the ``postgres`` user (PostgreSQL refuses to run as root), so the folder is its own and
    world-traversable (pytest's tmp_path is not)."""
    bindir = install_postgres()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL is not installed and cannot be (need root and apt-get): apt-get install postgresql"
        )
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="blindsr-pg-"))
    folder.chmod(0o755)
    data, sock = folder / "data", folder / "sock"
    sock.mkdir(exist_ok=True)
    if as_user:
        shutil.chown(folder, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock} -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(folder / "server.log"), "-w", "start")

    def database(name: str) -> str:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", name)
        return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{name}"

    try:
        yield database
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(folder, ignore_errors=True)


class MlflowServer:
    """``mlflow server`` on a backend store with served artifacts; can be stopped and started again.

    With ``auth_db`` (a database URI for its users) it runs MLflow's authentication app, as
    cluster/mlflow/docker-compose.yaml does: default permission READ, an admin whose password is made here,
    and :meth:`add_user` to create users through ``jobs/mlflow_users.py``."""

    def __init__(self, backend: str, artifacts: Path, auth_db: str | None = None, workers: int = 2) -> None:
        self.backend, self.artifacts, self.auth_db, self.workers = backend, artifacts, auth_db, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = artifacts.parent / f"mlflow-server-{self.port}.log"
        self.admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(16)}
        self.secret_key = secrets.token_hex(32)

    def start(self, timeout: float = 600) -> MlflowServer:  # generous: a loaded machine is slow, not broken
        args = [
            str(BIN / "mlflow"), "server", "--backend-store-uri", self.backend, "--serve-artifacts",
            "--artifacts-destination", self.artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers),
            # uvicorn restarts a worker that does not answer its supervisor's ping within 5 s: on a loaded
            # 2-core machine a worker still importing MLflow misses it, and the server never comes up
            "--uvicorn-opts", "--timeout-worker-healthcheck 120",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # as the compose file: no huey job runner (~35 s CPU)
        if self.auth_db:
            ini = self.artifacts.parent / f"basic_auth-{self.port}.ini"
            ini.write_text(
                "[mlflow]\ndefault_permission = READ\n"
                f"database_uri = {self.auth_db}\nadmin_username = {self.admin['MLFLOW_TRACKING_USERNAME']}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                "auth_cache_ttl_seconds = 60\n"  # as the compose file: one scrypt check a minute, not per request
            )
            env |= {
                "MLFLOW_AUTH_CONFIG_PATH": str(ini),
                "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin["MLFLOW_TRACKING_PASSWORD"],
                "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_key,
            }
            args += ["--app-name", "basic-auth"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_http(f"{self.url}/health", timeout, self.proc)
        except Exception as e:
            self.stop()  # a server that never answered must not outlive the test
            raise RuntimeError(f"{e}; server log:\n{self.log.read_text()[-3000:]}") from e
        return self

    def add_user(self, name: str, role: str) -> dict[str, str]:
        """Create user ``name`` with ``role`` (``train``/``read``) as the admin, through ``jobs/mlflow_users.py``;
        returns the environment variables that log in as that user."""
        from helpers import job  # the job's main, in this process (a subprocess spends seconds importing)

        login = {"MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(16)}
        env = {**self.admin, "BLINDSR_USER_PASSWORD": login["MLFLOW_TRACKING_PASSWORD"]}
        err = io.StringIO()
        with (
            pytest.MonkeyPatch.context() as mp,
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(err),
        ):
            for var, value in env.items():
                mp.setenv(var, value)
            rc = job("mlflow_users").main(["--tracking-uri", self.url, "add", name, "--role", role])
        if rc != 0:
            raise RuntimeError(f"mlflow_users.py add {name} failed ({rc}):\n{err.getvalue()[-3000:]}")
        return login

    def stop(self) -> None:
        """Stop it as a crash or an outage would: no graceful shutdown (uvicorn's takes seconds)."""
        if self.proc is not None and self.proc.poll() is None:
            kill_tree({self.proc.pid}, grace=0.2)
        self.proc = None


# ---- training jobs ----------------------------------------------------------------------------------------


def train_job(script: str, *args: str, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """``python jobs/<script> *args`` from the repository root, its own local Ray below it (so its Ray
    processes are its descendants); stdout and stderr together in ``log`` (read it with :func:`output`)."""
    env = {**os.environ, **(env or {})}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, f"jobs/{script}", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
    )


def output(log: Path | None) -> str:
    return log.read_text(errors="replace") if log and log.exists() else ""


def smoke_job(tmp_path: Path, name: str, steps: int, *extra: str, tracking: str | None = None):
    """``jobs/train_cmdsr.py --preset smoke`` named ``name`` for ``steps`` steps, checkpoints and validation
    every 4, storage in ``tmp_path/ray``, MLflow at ``tracking`` (default a SQLite store in ``tmp_path``).
    Returns (process, log file)."""
    log = tmp_path / f"{name}-{time.time_ns()}.log"
    tracking = tracking or f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "--preset", "smoke", "--name", name,
        "--set", f"train.steps={steps}", "--set", "train.checkpoint_every=4", "--set", "train.val_every=4",
        "--set", f"train.storage_path={tmp_path / 'ray'}",
        "--set", f"tracking.tracking_uri={tracking}",
        *extra,
    ]  # fmt: skip
    return train_job("train_cmdsr.py", *args, log=log), log


def finish(proc: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    """Wait for a job; its output, which must show success."""
    proc.wait(timeout=timeout)
    text = output(log)
    assert proc.returncode == 0, text[-5000:]
    return text


def secret_in_run(client, run_id: str, secret: str, folder: Path, models: tuple[str, ...] = ()) -> list[str]:
    """Where ``secret`` appears in the MLflow run ``run_id``: its params, tags, every artifact file of the run
    and of the ``models`` (``models:/name/version``: MLflow 3 keeps a logged model's files outside the run),
    all downloaded into ``folder``. An empty list when nowhere."""
    import mlflow

    run = client.get_run(run_id)
    found = [f"param {k}" for k, v in run.data.params.items() if secret in f"{k}={v}"]
    found += [f"tag {k}" for k, v in run.data.tags.items() if secret in f"{k}={v}"]
    roots = {f"run {run_id}": client.download_artifacts(run_id, "", str(folder))}
    mlflow.set_tracking_uri(client.tracking_uri)  # models:/ URIs resolve through the global registry URI
    for i, uri in enumerate(models):
        roots[uri] = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(folder / f"model{i}"), tracking_uri=client.tracking_uri
        )
    files = [(name, Path(root), f) for name, root in roots.items() for f in Path(root).rglob("*") if f.is_file()]
    assert files, f"run {run_id} and models {models} have no artifacts to search"
    found += [f"{name}: {f.relative_to(root)}" for name, root, f in files if secret.encode() in f.read_bytes()]
    return found
