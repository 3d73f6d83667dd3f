"""Task sampler: one task = n aligned (LR, HR) patch pairs from one HR image, sharing one degradation.

Each HR crop is cut with a context margin (``spec.context()``) so the blur and the resize never see a crop border,
then flipped/rotated (albumentations' ``d4``, the element a seeded ``Compose([D4(p=1)])`` draws), degraded, and the
margin dropped: a crop's LR equals that region of the whole image's LR. torch and albumentations load when a sampler
is made, not with this module, so a process that only unpickles a row or the worker class starts without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from blindsr.config import DegradationConfig
from blindsr.data.images import ImagePool
from blindsr.degradations.sampling import sample_spec
from blindsr.degradations.spec import DegradationSpec

if TYPE_CHECKING:
    import torch


@dataclass
class Task:
    lr: np.ndarray | None  # (n, 3, h, w) uint8; None when the train worker degrades (``window`` > 0)
    hr: np.ndarray  # (n, 3, s·h + 2·window, s·w + 2·window) uint8
    spec: DegradationSpec
    image_id: str
    window: int = 0  # HR context pixels kept on each side of hr for a degradation on the train worker


def crop_window(img: np.ndarray, top: int, left: int, size: int, margin: int) -> np.ndarray:
    """(size+2m)² window around the crop [top:top+size, left:left+size] of an (H, W, 3) image.

    Where the margin leaves the image, the image is mirror-extended (reflect-101).
    """
    h, w = img.shape[:2]
    t, b = top - margin, top + size + margin
    l, r = left - margin, left + size + margin
    if t >= 0 and l >= 0 and b <= h and r <= w:
        return img[t:b, l:r]
    win = img[max(t, 0) : min(b, h), max(l, 0) : min(r, w)]
    pads = ((max(-t, 0), max(b - h, 0)), (max(-l, 0), max(r - w, 0)), (0, 0))
    return np.pad(win, pads, mode="reflect" if min(win.shape[:2]) > 1 else "edge")


class TaskSampler:
    """Cuts tasks of ``n`` patches (LR side ``patch_size``) from an image pool.

    Args:
        pool: HR images; each must be at least ``patch_size · scale`` on both sides.
        patch_size: LR patch side h = w.
        n: patches per task.
        scale: down-scaling factor s.
        augment: random flips / 90° rotations of each HR crop.
        same_augment: one augmentation for all crops of a task (CDSR query/key pairs).
        device: where the degradation runs ("cpu" or "cuda").
        window: > 0: do not degrade; return HR windows with this context margin on each side (at least the
            largest ``spec.context()`` of the distribution) for the train worker to degrade
            (``scaling.degrade_on: trainer``, :mod:`blindsr.data.on_trainer`).
    """

    def __init__(
        self,
        pool: ImagePool,
        patch_size: int,
        n: int,
        scale: int,
        augment: bool = True,
        same_augment: bool = False,
        device: str | torch.device = "cpu",
        window: int = 0,
    ) -> None:
        if patch_size < 1 or n < 1:
            raise ValueError(f"patch_size and n must be ≥ 1, got {patch_size}, {n}")
        self.pool, self.patch, self.n, self.scale = pool, patch_size, n, scale
        self.hr_size = patch_size * scale
        small = [im.id for im in pool.images if min(im.shape) < self.hr_size]
        if small:
            raise ValueError(
                f"{len(small)} images of {pool.origin} are smaller than the {self.hr_size} px HR patch "
                f"(e.g. {small[0]}); load the pool with min_size={self.hr_size}"
            )
        import torch  # here and in sample(), not at the top: see the module's docstring
        from albumentations.augmentations.geometric.functional import d4
        from albumentations.core.type_definitions import d4_group_elements

        self.augment, self.same_augment = augment, same_augment
        self.device, self.window = torch.device(device), window
        self._d4, self._d4_elements = d4, d4_group_elements

    def _augment(self, window: np.ndarray, seed: int) -> np.ndarray:
        """(H, W, 3) → the D4 image of ``Compose([D4(p=1)])`` after ``set_random_seed(seed)``: D4 draws its
        element with ``default_rng(seed).choice``, which is ``integers(8)``; a view where a flip allows."""
        element = self._d4_elements[int(np.random.default_rng(seed).integers(len(self._d4_elements)))]
        return self._d4(window, element)

    def sample(self, rng: np.random.Generator, spec: DegradationSpec, pool: ImagePool | None = None) -> Task:
        """One task with the given degradation from an image of ``pool`` (default: the sampler's); all randomness
        (image, crops, flips) from ``rng``."""
        if spec.scale != self.scale:
            raise ValueError(f"spec scale ×{spec.scale} differs from the sampler's ×{self.scale}")
        pool = self.pool if pool is None else pool
        img = pool[int(rng.integers(len(pool)))]
        h, w = img.shape
        margin = spec.context()
        if self.window and margin > self.window:
            raise ValueError(f"{spec} needs {margin} px of context, more than the window's {self.window}")
        cut = self.window or margin  # a centred crop of a wider window commutes with the D4 flips/rotations
        tops = rng.integers(0, h - self.hr_size + 1, size=self.n)
        lefts = rng.integers(0, w - self.hr_size + 1, size=self.n)
        shared_seed = int(rng.integers(2**31 - 1))
        windows = []
        for top, left in zip(tops, lefts, strict=True):
            win = crop_window(img.pixels, int(top), int(left), self.hr_size, cut)
            if self.augment:
                win = self._augment(win, shared_seed if self.same_augment else int(rng.integers(2**31 - 1)))
            windows.append(win)
        if self.window:
            hr = np.stack(windows).transpose(0, 3, 1, 2).copy()  # (n, 3, P+2w, P+2w)
            return Task(lr=None, hr=hr, spec=spec, image_id=img.id, window=cut)
        import torch

        from blindsr.degradations.pipeline import degrade

        batch = torch.from_numpy(np.stack(windows)).permute(0, 3, 1, 2).to(self.device)  # (n, 3, P+2m, P+2m)
        lr = degrade(batch, spec, margin=margin)
        hr = batch[..., margin : margin + self.hr_size, margin : margin + self.hr_size]
        return Task(lr=lr.cpu().numpy(), hr=hr.contiguous().cpu().numpy(), spec=spec, image_id=img.id)

    def sample_random(self, rng: np.random.Generator, cfg: DegradationConfig, pool: ImagePool | None = None) -> Task:
        """Draw a degradation from ``cfg`` then a task with it (from ``pool``, default the sampler's)."""
        return self.sample(rng, sample_spec(rng, cfg, self.scale), pool)
