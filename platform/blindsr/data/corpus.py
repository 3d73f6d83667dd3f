"""The built-in sample corpus: real photographs shipped inside scikit-image (no download needed).

Split, fixed and documented (grayscale photographs are replicated to RGB):

* train: astronaut 512², rocket 427×640, stereo_motorcycle (left view) 500×741, hubble_deep_field
  872×1000, retina 1411², immunohistochemistry 512², camera, brick, grass, gravel, moon (512²), coins 303×384
* val:   chelsea 300×451, coffee 400×600, clock 300×400
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from blindsr.data.images import to_rgb_uint8

TRAIN = (
    "astronaut",
    "rocket",
    "stereo_motorcycle",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "camera",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
)
VAL = ("chelsea", "coffee", "clock")
SPLITS = {"train": TRAIN, "val": VAL, "all": TRAIN + VAL}


def image(name: str) -> np.ndarray:
    """One corpus photograph as (H, W, 3) uint8 RGB."""
    import skimage.data

    if name not in SPLITS["all"]:
        raise KeyError(f"{name!r} is not in the built-in corpus; names: {', '.join(SPLITS['all'])}")
    arr = getattr(skimage.data, name)()
    if isinstance(arr, tuple):  # stereo_motorcycle returns (left, right, disparity)
        arr = arr[0]
    return to_rgb_uint8(arr, f"skimage.data.{name}")


def load(split: str = "train") -> Iterator[tuple[str, np.ndarray]]:
    if split not in SPLITS:
        raise ValueError(f"unknown corpus split {split!r}; valid: {', '.join(SPLITS)}")
    for name in SPLITS[split]:
        yield name, image(name)
