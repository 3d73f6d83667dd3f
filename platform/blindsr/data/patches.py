"""Task sampler: one task = n aligned (LR, HR) patch pairs from one HR image, sharing one degradation.

Each HR crop is cut with a context margin (``spec.context()``) so the blur and the resize never see a crop border,
then flipped/rotated (the D4 element a seeded albumentations ``Compose([D4(p=1)])`` draws, made by OpenCV into
the task's buffer), degraded, and the margin dropped: a crop's LR equals that region of the whole image's LR. torch
loads when a sampler is made, not with this module, so a process that only unpickles a row starts without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from blindsr.config import DegradationConfig
from blindsr.data.images import ImagePool
from blindsr.degradations.sampling import sample_spec
from blindsr.degradations.spec import DegradationSpec

if TYPE_CHECKING:
    import torch

Pixels = tuple[np.ndarray | None, np.ndarray]  # uint8 (lr or None, hr) buffers a task's pixels are written into

# albumentations' D4 group elements, in its order, each as the OpenCV call writing it into dst (tested equal)
D4: dict[str, Callable[[np.ndarray, np.ndarray], object]] = {
    "e": lambda x, dst: np.copyto(dst, x),
    "r90": lambda x, dst: cv2.rotate(x, cv2.ROTATE_90_COUNTERCLOCKWISE, dst=dst),
    "r180": lambda x, dst: cv2.flip(x, -1, dst=dst),
    "r270": lambda x, dst: cv2.rotate(x, cv2.ROTATE_90_CLOCKWISE, dst=dst),
    "v": lambda x, dst: cv2.flip(x, 0, dst=dst),
    "hvt": lambda x, dst: cv2.flip(cv2.transpose(x), -1, dst=dst),
    "h": lambda x, dst: cv2.flip(x, 1, dst=dst),
    "t": lambda x, dst: cv2.transpose(x, dst=dst),
}


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


def _place(array: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``array`` copied into ``out``; without one, ``array`` itself if C-contiguous, else a C-contiguous copy."""
    if out is None:
        return np.ascontiguousarray(array)
    np.copyto(out, array)
    return out


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

        self.augment, self.same_augment = augment, same_augment
        self.device, self.window = torch.device(device), window

    def _augment(self, window: np.ndarray, seed: int, out: np.ndarray) -> np.ndarray:
        """(S, S, 3) → its D4 image as ``Compose([D4(p=1)])`` after ``set_random_seed(seed)`` makes it (D4 draws its
        element with ``default_rng(seed).choice``, which is ``integers(8)``), written into ``out`` (S, S, 3)."""
        D4[tuple(D4)[int(np.random.default_rng(seed).integers(len(D4)))]](window, out)
        return out

    def sample(
        self,
        rng: np.random.Generator,
        spec: DegradationSpec,
        pool: ImagePool | None = None,
        out: Pixels | None = None,
    ) -> Task:
        """One task with the given degradation from an image of ``pool`` (default: the sampler's); all randomness
        (image, crops, flips) from ``rng``. ``out``: uint8 (lr (n, 3, h, w) or None with a window, hr) buffers the
        task's pixels are written into, e.g. its slot of a call row."""
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
        side = self.hr_size + 2 * cut
        windows = np.empty((self.n, side, side, 3), np.uint8)  # channels last, as cut and flipped
        for i, (top, left) in enumerate(zip(tops, lefts, strict=True)):
            win = crop_window(img.pixels, int(top), int(left), self.hr_size, cut)
            if self.augment:
                self._augment(win, shared_seed if self.same_augment else int(rng.integers(2**31 - 1)), windows[i])
            else:
                windows[i] = win
        from blindsr.degradations.banded import split_channels  # imports torch: see the module's docstring

        lr_out, hr_out = (None, None) if out is None else out
        if self.window:
            hr = split_channels(windows, hr_out)  # (n, 3, P+2w, P+2w)
            return Task(lr=None, hr=hr, spec=spec, image_id=img.id, window=cut)
        import torch

        from blindsr.degradations.pipeline import degrade

        planes = split_channels(windows)  # (n, 3, P+2m, P+2m): once, for the HR patches and the degradation
        hr = _place(planes[..., margin : margin + self.hr_size, margin : margin + self.hr_size], hr_out)
        lr = degrade(torch.from_numpy(planes).to(self.device), spec, margin=margin).cpu().numpy()
        return Task(lr=_place(lr, lr_out), hr=hr, spec=spec, image_id=img.id)

    def sample_random(
        self,
        rng: np.random.Generator,
        cfg: DegradationConfig,
        pool: ImagePool | None = None,
        out: Pixels | None = None,
    ) -> Task:
        """Draw a degradation from ``cfg`` then a task with it (``pool`` and ``out`` as :meth:`sample`'s)."""
        return self.sample(rng, sample_spec(rng, cfg, self.scale), pool, out)
