"""``degrade(hr, spec)``: blur → down-sample → (crop context) → noise → round/clip → JPEG.

Deterministic: the same HR pixels and the same spec (including its ``seed``) give the same LR pixels.
Runs batched on torch tensors (CPU or CUDA); all N images of a call share the spec (one task).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from blindsr.degradations import banded
from blindsr.degradations.blur import blur, blur_subsample
from blindsr.degradations.jpeg import jpeg
from blindsr.degradations.noise import gaussian_noise, quantize
from blindsr.degradations.resize import cached_tensor, imresize
from blindsr.degradations.spec import DegradationSpec


def axis(
    spec: DegradationSpec, in_len: int, margin: int, out: int, tile: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, tuple[banded.Tile, ...]]:
    """The spec's separable (out, in_len) axis matrix (blur → down-sample → rows margin:margin+out, LR px) on
    ``device``, cached, and its tiles of about ``tile`` rows (:func:`banded.tiles`)."""
    k1 = spec.kernel_1d() if spec.kernel != "none" else np.ones(1)
    key = (in_len, tuple(float(v) for v in k1), spec.blur_border, spec.downsampler, spec.scale, (margin, margin + out))
    op = cached_tensor(key, lambda: banded.axis_operator(*key), dtype, device)
    return op, banded.tiles(in_len, len(k1), *key[2:], tile)


def blur_and_downsample(hr: torch.Tensor, spec: DegradationSpec, margin: int = 0) -> torch.Tensor:
    """hr: (N, C, H, W) uint8 or float (0–255) → blurred, down-sampled float (N, C, H/s − 2m/s, W/s − 2m/s).

    Separable (isotropic) kernels: one banded matrix per axis (:mod:`banded`). Others: with s-fold subsampling
    one strided convolution over the kept pixels (:func:`blur_subsample`); with bicubic a 2-D convolution, the
    resize, then the margin crop.
    """
    s, m = spec.scale, margin // spec.scale
    hh, ww = hr.shape[-2:]
    h_out, w_out = hh // s - 2 * m, ww // s - 2 * m
    if spec.kernel == "none" or spec.kernel_1d() is not None:
        dtype = hr.dtype if hr.is_floating_point() else torch.float32
        op_h, tiles_h = axis(spec, hh, m, h_out, banded.TILE_H, dtype, hr.device)
        op_w, tiles_w = axis(spec, ww, m, w_out, banded.TILE_W, dtype, hr.device)
        return banded.separable([hr], op_h[None], op_w[None], tiles_h, tiles_w)[0]
    hr = hr if hr.is_floating_point() else hr.float()
    kernel = torch.from_numpy(spec.kernel_array())
    if spec.downsampler != "bicubic":  # s-fold: only the kept pixels are computed (blur_subsample)
        return blur_subsample(hr, kernel, s, spec.blur_border, m)
    x = imresize(blur(hr, kernel, spec.blur_border), 1.0 / s)
    return x[..., m : m + h_out, m : m + w_out]


CV2_BORDERS = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE}


def cv2_blur_and_downsample(hr: torch.Tensor, spec: DegradationSpec, margin: int = 0) -> torch.Tensor:
    """The official CMDSR training LR, by name (``downsampler="cv2_cubic"``): each uint8 HR image blurred by
    OpenCV (``cv2.GaussianBlur`` for an isotropic centred kernel, as the official ``data_loader.py``; else
    ``cv2.filter2D`` with the spec's kernel) to uint8, then ``cv2.resize(INTER_CUBIC)`` (a = −0.75, no
    antialiasing) to uint8. (N, 3, H, W) → (N, 3, H/s − 2m/s, W/s − 2m/s) uint8 on hr's device; runs on the CPU."""
    s, m = spec.scale, margin // spec.scale
    border = CV2_BORDERS[spec.blur_border]
    imgs = (hr if not hr.is_floating_point() else hr.round().clamp(0, 255)).to("cpu", torch.uint8)
    out = []
    for img in imgs.permute(0, 2, 3, 1).numpy():
        img = np.ascontiguousarray(img)
        if spec.kernel == "iso" and spec.kernel_layout == "centered":
            k = spec.kernel_size
            blurred = cv2.GaussianBlur(img, (k, k), spec.sigma, borderType=border)
        elif spec.kernel != "none":
            blurred = cv2.filter2D(img, -1, spec.kernel_array().astype(np.float32), borderType=border)
        else:
            blurred = img
        lr = cv2.resize(blurred, (img.shape[1] // s, img.shape[0] // s), interpolation=cv2.INTER_CUBIC)
        out.append(lr[m : lr.shape[0] - m, m : lr.shape[1] - m])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(hr.device)


def degrade(hr: torch.Tensor, spec: DegradationSpec, margin: int = 0) -> torch.Tensor:
    """Degrade a batch of HR images that share one degradation.

    Args:
        hr: (N, 3, H, W), uint8 or float on the 0–255 scale, any device. H and W divisible by the scale.
        spec: the degradation.
        margin: HR pixels on each side that only provide context (a multiple of ``spec.scale``); they are
            cropped from the output so that a crop's LR equals that of the full image.

    Returns:
        (N, 3, (H − 2·margin)/s, (W − 2·margin)/s) uint8 LR on hr's device.
    """
    s = spec.scale
    if hr.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(hr.shape)}")
    if hr.shape[-2] % s or hr.shape[-1] % s:
        raise ValueError(f"HR size {tuple(hr.shape[-2:])} is not divisible by the scale {s}; mod-crop first")
    if margin % s:
        raise ValueError(f"margin {margin} must be a multiple of the scale {s}")
    if spec.downsampler == "cv2_cubic":
        x = cv2_blur_and_downsample(hr, spec, margin).float()
    else:
        x = blur_and_downsample(hr, spec, margin)
    if spec.noise > 0:  # in place: x is this call's own tensor
        x.add_(gaussian_noise(tuple(x.shape), spec.noise, spec.seed).to(device=x.device, dtype=x.dtype))
    lr = quantize(x, spec.rounding)
    if spec.jpeg_quality:
        lr = jpeg(lr, spec.jpeg_quality)
    return lr


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop an (H, W, …) image to sides divisible by ``scale`` (bottom/right rows dropped)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def apply(hr: np.ndarray, spec: DegradationSpec) -> np.ndarray:
    """Degrade one (H, W, 3) uint8 RGB image (mod-cropped to the scale) → (H/s, W/s, 3) uint8."""
    hr = mod_crop(np.asarray(hr), spec.scale)
    x = torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1)[None]
    return degrade(x, spec)[0].permute(1, 2, 0).numpy()
