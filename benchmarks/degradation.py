"""Degradation throughput per CPU core: blindsr's batched torch pipeline vs what a user would run instead.

Workloads, one task = the patches that share one degradation, HR crops of 192² (plus context margin) at ×4:

* ``cmdsr``: CMDSR training, 20 crops per task, 15×15 isotropic kernel, MATLAB bicubic ×4, AWGN U[0, 75].
* ``cdsr``: CDSR training, 2 crops per task (query, key), 21×21 anisotropic shifted kernel, replicate border,
  s-fold ×4 (blindsr: one strided convolution over the kept pixels).

    python benchmarks/degradation.py [--tasks 30] [--workloads cmdsr,cdsr] [--device cuda]

Baselines, per patch, one thread each:
* "OpenCV per patch" (what data loaders and the official code run): ``cv2.sepFilter2D`` with the 1-D kernel
  + ``cv2.resize(INTER_CUBIC)`` (CMDSR), or ``cv2.filter2D`` + ``[::4, ::4]`` (CDSR); numpy noise, rounding.
* "naive numpy": ``scipy.ndimage.correlate`` per patch and channel, a MATLAB resize that computes its
  weights on every call (as MATLAB's and BasicSR's ``imresize`` do) or s-fold subsampling.
Candidates: "batched torch": ``blindsr.degradations.degrade`` on each task's (n, 3, H, W) batch (the actors);
"step-batched torch": ``degradations.batched.degrade_many`` on 8 tasks at once, as a train worker degrades its
step's batch with ``scaling.degrade_on: trainer``. CMDSR's blur and bicubic run as one banded matrix per axis
(``degradations.banded``), CDSR's as one strided convolution.
Rates are patches per second of this process's CPU time on one thread (wall-clock for the CUDA rows): on a shared
machine other processes change wall-clock rates run to run (CMDSR's ratios spanned 0.96× to 2.83× in four runs at a
load of 9 on 2 cores) but not the CPU time a path needs.
Goals: ≥ 2× OpenCV per core on both workloads, in both placements; CDSR ≥ 8× the naive path.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from blindsr.data.corpus import image  # noqa: E402
from blindsr.data.patches import crop_window  # noqa: E402
from blindsr.degradations import degrade  # noqa: E402
from blindsr.degradations.batched import Unit, degrade_many  # noqa: E402
from blindsr.degradations.blur import blur_np  # noqa: E402
from blindsr.degradations.noise import quantize_np  # noqa: E402
from blindsr.degradations.presets import cdsr_train, cmdsr_train  # noqa: E402
from blindsr.degradations.resize import imresize_np, resize_matrix  # noqa: E402
from blindsr.degradations.sampling import sample_spec  # noqa: E402

HR, SCALE = 192, 4
WORKLOADS = {  # name: (degradation config, patches per task, description)
    "cmdsr": (cmdsr_train(SCALE), 20, "15x15 iso kernel, MATLAB bicubic x4, AWGN"),
    "cdsr": (cdsr_train(SCALE), 2, "21x21 aniso shifted kernel, replicate border, s-fold x4"),
}
CV_BORDER = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE, "circular": cv2.BORDER_WRAP}


def make_tasks(workload: str, n_tasks: int, seed: int = 0):
    """``n_tasks`` (spec, uint8 windows (n, HR+2m, HR+2m, 3)) of ``workload``'s training distribution."""
    cfg, n, _ = WORKLOADS[workload]
    rng = np.random.default_rng(seed)
    img = image("hubble_deep_field")
    tasks = []
    for _ in range(n_tasks):
        spec = sample_spec(rng, cfg, SCALE)
        m = spec.context()
        tops = rng.integers(0, img.shape[0] - HR, n)
        lefts = rng.integers(0, img.shape[1] - HR, n)
        wins = np.stack([crop_window(img, int(t), int(l), HR, m) for t, l in zip(tops, lefts, strict=True)])
        tasks.append((spec, wins))
    return tasks


def _finish(lr: np.ndarray, spec, noise_rng: np.random.Generator) -> np.ndarray:
    return quantize_np(lr + noise_rng.standard_normal(lr.shape) * spec.noise)


def naive_numpy(spec, wins: np.ndarray) -> np.ndarray:
    m, s = spec.context(), spec.scale
    kernel = spec.kernel_array()
    noise_rng = np.random.default_rng(spec.seed)
    out = []
    for win in wins:
        blurred = blur_np(win, kernel, spec.blur_border)
        if spec.downsampler == "bicubic":
            resize_matrix.cache_clear()  # a per-image resize computes its weights every call
            lr = imresize_np(blurred, 1.0 / s)
        else:
            lr = blurred[::s, ::s]
        out.append(_finish(lr[m // s : (m + HR) // s, m // s : (m + HR) // s], spec, noise_rng))
    return np.stack(out)


def opencv(spec, wins: np.ndarray) -> np.ndarray:
    """What a typical data loader does per patch (not MATLAB's antialiased bicubic, so not pixel-equal for CMDSR)."""
    m, s = spec.context(), spec.scale
    border, k1 = CV_BORDER[spec.blur_border], spec.kernel_1d()
    noise_rng = np.random.default_rng(spec.seed)
    out = []
    for win in wins:
        x = win.astype(np.float32)
        if k1 is not None:
            g = np.asarray(k1, np.float32)
            x = cv2.sepFilter2D(x, -1, g, g, borderType=border)
        else:
            x = cv2.filter2D(x, -1, spec.kernel_array().astype(np.float32), borderType=border)
        if spec.downsampler == "bicubic":
            x = cv2.resize(x, (x.shape[1] // s, x.shape[0] // s), interpolation=cv2.INTER_CUBIC)
        else:
            x = x[::s, ::s]
        out.append(_finish(x[m // s : (m + HR) // s, m // s : (m + HR) // s], spec, noise_rng))
    return np.stack(out)


def batched_torch(spec, wins: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(wins).permute(0, 3, 1, 2).to(device)
    return degrade(x, spec, margin=spec.context())


STEP_TASKS = 8  # tasks per training step, degraded together on the train worker


def step_batched(tasks, device: torch.device) -> None:
    """The tasks in steps of STEP_TASKS, each step one ``degrade_many`` call (``degrade_on: trainer``)."""
    for i in range(0, len(tasks), STEP_TASKS):
        units = [
            Unit(torch.from_numpy(wins).permute(0, 3, 1, 2).to(device), spec, spec.context())
            for spec, wins in tasks[i : i + STEP_TASKS]
        ]
        degrade_many(units)
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(tasks, device: torch.device) -> float:
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    step_batched(tasks[:STEP_TASKS], device)  # warm-up
    t0 = clock()
    step_batched(tasks, device)
    return clock() - t0


def timed(fn, tasks, clock=time.process_time) -> float:
    """Seconds of ``fn`` over the tasks: this process's CPU time by default (one thread: other processes sharing the
    machine's cores do not enter it), wall-clock for the CUDA rows."""
    fn(*tasks[0])  # warm-up (caches, allocator, first-call overheads)
    t0 = clock()
    for task in tasks:
        fn(*task)
    return clock() - t0


def max_level_difference(tasks, reference) -> int:
    """Largest |reference − batched torch| in grey levels, without noise (their noise generators differ)."""
    worst = 0
    for spec, wins in tasks:
        clean = dataclasses.replace(spec, noise=0.0)
        ref = reference(clean, wins).astype(int)
        ours = batched_torch(clean, wins, torch.device("cpu")).numpy().transpose(0, 2, 3, 1).astype(int)
        worst = max(worst, int(np.abs(ref - ours).max()))
    return worst


def run(workload: str, n_tasks: int, device: str) -> dict[str, float]:
    """Patches/s per core of each path on ``workload``; prints the table."""
    _cfg, n, what = WORKLOADS[workload]
    tasks = make_tasks(workload, n_tasks)
    patches = n_tasks * n
    rates = {
        "naive numpy": patches / timed(naive_numpy, tasks),
        "OpenCV per patch": patches / timed(opencv, tasks),
        "batched torch (CPU)": patches / timed(lambda spec, w: batched_torch(spec, w, torch.device("cpu")), tasks),
        "step-batched (CPU)": patches / timed_steps(tasks, torch.device("cpu")),
    }
    if device == "cuda":
        dev = torch.device("cuda")

        def on_gpu(spec, wins):
            batched_torch(spec, wins, dev)
            torch.cuda.synchronize()

        rates["batched torch (CUDA)"] = patches / timed(on_gpu, tasks, time.perf_counter)
        rates["step-batched (CUDA)"] = patches / timed_steps(tasks, dev)
    print(f"{workload}: {n_tasks} tasks x {n} HR crops of {HR}^2, {what}; one thread")
    print(
        f"  check, noise-free: max |naive - batched| = {max_level_difference(tasks[:3], naive_numpy)} level(s), "
        f"max |OpenCV - batched| = {max_level_difference(tasks[:3], opencv)}"
    )
    naive, cv = rates["naive numpy"], rates["OpenCV per patch"]
    for name, rate in rates.items():
        print(f"  {name:<22}: {rate:9.1f} patches/s   {rate / cv:5.2f}x OpenCV   {rate / naive:6.1f}x naive")
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=30)
    p.add_argument("--workloads", default="cmdsr,cdsr")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda given but CUDA is not available")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    for workload in args.workloads.split(","):
        run(workload, args.tasks, args.device)


if __name__ == "__main__":
    main()
