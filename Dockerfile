# Training image for blindsr on GPU clusters (Ray cluster launcher, KubeRay RayCluster / RayJob).
#
#   docker build -t ghcr.io/your-org/blindsr:0.1.0-ray2.60.0-py311-gpu .
#   docker push ghcr.io/your-org/blindsr:0.1.0-ray2.60.0-py311-gpu
#
# The tag is the one cluster/aws-gpu.yaml and cluster/kuberay/*.yaml pull (tests/test_cluster_configs.py keeps
# them in step). Replace "your-org" with your registry in all of them.
#
# Base: Ray's own GPU image, so the head, the workers and this image run the very same Ray (2.60.0, also pinned
# in constraints.txt and pyproject.toml) on Python 3.11, with CUDA user-space libraries and the `ray` user that
# the launcher and KubeRay expect. Mixing Ray versions between nodes fails at `ray start`.
ARG RAY_VERSION=2.60.0
ARG PYTHON_TAG=py311
FROM rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-gpu

# ARGs before FROM are not visible after it; re-declare the ones the build steps need.
ARG RAY_VERSION=2.60.0
# constraints.txt pins torch==2.13.0, which here is the CPU wheel; on GPUs we install the CUDA build of the same
# version first. `torch==2.13.0` in constraints.txt is then already satisfied by 2.13.0+cu128 (PEP 440 ignores
# the local "+cu128" label), so pip keeps the CUDA build. Pick TORCH_CUDA to match your NVIDIA driver.
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128

# The repository lives here; cluster/kuberay/rayjob-train-cdsr.yaml uses this path as the job's working_dir.
WORKDIR /home/ray/blindsr

# Dependencies and the package first (the slow layer), the jobs and configs after (they change more often).
# COPY is selective on purpose: .venv/, outputs/, mlruns/ and mlflow.db never enter the image.
COPY --chown=ray:users pyproject.toml constraints.txt README.md ./
COPY --chown=ray:users platform/ platform/
# A regular (non-editable) install: `pip install -e .` would put /home/ray/blindsr/platform on sys.path through a
# .pth file and shadow the code a job ships with py_modules (spec §5). platform/ has no __init__.py and must
# never get one (it would shadow the stdlib `platform` and break `import ray` in every worker).
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" \
 && pip install --no-cache-dir -c constraints.txt "ray[default,data,train,tune]==${RAY_VERSION}" . \
 && python -c "import blindsr, ray, torch; assert ray.__version__ == '${RAY_VERSION}', ray.__version__"

COPY --chown=ray:users jobs/ jobs/
COPY --chown=ray:users search_spaces/ search_spaces/
COPY --chown=ray:users benchmarks/ benchmarks/
COPY --chown=ray:users cluster/ cluster/

# Logs from the job driver show up in `ray job logs` / `kubectl logs` as they happen.
ENV PYTHONUNBUFFERED=1
