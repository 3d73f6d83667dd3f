"""Degradation throughput: batched torch pipeline vs a naive per-patch numpy reference.

Workload: one CMDSR task = 20 HR crops of 192² (plus context margin), 15×15 isotropic kernel,
MATLAB bicubic ×4, AWGN, rounding. Both sides get the same specs and one thread each.

    python benchmarks/degradation.py [--tasks 30] [--device cuda]

Baseline ("naive numpy"): for every patch and channel ``scipy.ndimage.correlate`` with the 2-D kernel,
then a per-image MATLAB resize that computes its weights on every call (as MATLAB's and BasicSR's
``imresize`` do), numpy noise and rounding.
Candidate ("batched torch"): ``blindsr.degradations.degrade`` on the (20, 3, H, W) batch: separable
blur as two 1-D convolutions, resize as two cached weight-matrix products.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from blindsr.data.corpus import image  # noqa: E402
from blindsr.data.patches import crop_window  # noqa: E402
from blindsr.degradations import degrade  # noqa: E402
from blindsr.degradations.blur import blur_np  # noqa: E402
from blindsr.degradations.noise import quantize_np  # noqa: E402
from blindsr.degradations.presets import cmdsr_train  # noqa: E402
from blindsr.degradations.resize import imresize_np, resize_matrix  # noqa: E402
from blindsr.degradations.sampling import sample_spec  # noqa: E402

N_PATCHES, HR = 20, 192


def make_tasks(n_tasks: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    img = image("hubble_deep_field")
    cfg = cmdsr_train(4)
    tasks = []
    for _ in range(n_tasks):
        spec = sample_spec(rng, cfg, 4)
        m = spec.context()
        tops = rng.integers(0, img.shape[0] - HR, N_PATCHES)
        lefts = rng.integers(0, img.shape[1] - HR, N_PATCHES)
        wins = np.stack([crop_window(img, int(t), int(l), HR, m) for t, l in zip(tops, lefts, strict=True)])
        tasks.append((spec, wins))
    return tasks


def naive_numpy(spec, wins: np.ndarray) -> np.ndarray:
    m, s = spec.context(), spec.scale
    kernel = spec.kernel_array()
    noise_rng = np.random.default_rng(spec.seed)
    out = []
    for win in wins:
        blurred = blur_np(win, kernel, spec.blur_border)
        resize_matrix.cache_clear()  # a per-image resize computes its weights every call
        lr = imresize_np(blurred, 1.0 / s)[m // s : (m + HR) // s, m // s : (m + HR) // s]
        out.append(quantize_np(lr + noise_rng.standard_normal(lr.shape) * spec.noise))
    return np.stack(out)


def batched_torch(spec, wins: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(wins).permute(0, 3, 1, 2).to(device)
    return degrade(x, spec, margin=spec.context())


def timed(fn, tasks) -> float:
    fn(*tasks[0])  # warm-up (caches, allocator, first-call overheads)
    t0 = time.perf_counter()
    for task in tasks:
        fn(*task)
    return time.perf_counter() - t0


def max_level_difference(tasks) -> int:
    """Both sides compute the same LR: compare them without noise (their noise generators differ)."""
    worst = 0
    for spec, wins in tasks:
        clean = dataclasses.replace(spec, noise=0.0)
        ref = naive_numpy(clean, wins).astype(int)
        ours = batched_torch(clean, wins, torch.device("cpu")).numpy().transpose(0, 2, 3, 1).astype(int)
        worst = max(worst, int(np.abs(ref - ours).max()))
    return worst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=30)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args()
    torch.set_num_threads(1)
    tasks = make_tasks(args.tasks)
    n = args.tasks * N_PATCHES

    t_ref = timed(naive_numpy, tasks)
    t_cpu = timed(lambda spec, w: batched_torch(spec, w, torch.device("cpu")), tasks)
    print(f"workload: {args.tasks} CMDSR tasks x {N_PATCHES} HR crops of {HR}^2, 15x15 iso kernel, x4, one thread")
    print(f"check: max |naive - batched| on noise-free tasks = {max_level_difference(tasks[:3])} level(s)")
    print(f"baseline naive per-patch numpy : {n / t_ref:9.1f} patches/s")
    print(f"batched torch (CPU)            : {n / t_cpu:9.1f} patches/s   ratio vs baseline: {t_ref / t_cpu:.1f}x")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda given but CUDA is not available")
        dev = torch.device("cuda")

        def on_gpu(spec, wins):
            batched_torch(spec, wins, dev)
            torch.cuda.synchronize()

        t_gpu = timed(on_gpu, tasks)
        print(f"batched torch (CUDA)           : {n / t_gpu:9.1f} patches/s   ratio vs baseline: {t_ref / t_gpu:.1f}x")


if __name__ == "__main__":
    main()
