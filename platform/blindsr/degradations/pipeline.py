"""``degrade(hr, spec)``: blur → down-sample → (crop context) → noise → round/clip → JPEG.

Deterministic: the same HR pixels and the same spec (including its ``seed``) give the same LR pixels.
Runs batched on torch tensors (CPU or CUDA); all N images of a call share the spec (one task).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from blindsr.degradations.blur import blur, blur_subsample
from blindsr.degradations.jpeg import jpeg
from blindsr.degradations.noise import add_noise, quantize
from blindsr.degradations.resize import cached_tensor, imresize, resize_matrix
from blindsr.degradations.spec import DegradationSpec


def border_index(idx: np.ndarray, n: int, border: str) -> np.ndarray:
    """Map (possibly out-of-range) integer indices onto [0, n) the way the blur border extends an axis."""
    if border == "replicate":
        return np.clip(idx, 0, n - 1)
    if border == "circular":
        return np.mod(idx, n)
    if border == "reflect":  # mirror without repeating the edge (reflect-101)
        if n == 1:
            return np.zeros_like(idx)
        period = 2 * (n - 1)
        j = np.mod(idx, period)
        return np.where(j < n, j, period - j)
    raise ValueError(f"unknown blur border {border!r}; valid: reflect, replicate, circular")


def axis_operator(
    in_len: int, kernel_1d: tuple[float, ...], border: str, downsampler: str, scale: int, crop: tuple[int, int]
) -> np.ndarray:
    """(out, in_len) matrix of one axis of "separable blur → down-sample → keep rows crop[0]:crop[1]".

    Blur and resize are both linear along an axis, so their product is one matrix: applying it costs
    one matmul per axis instead of a convolution plus a resize.
    """
    g = np.asarray(kernel_1d)
    k = len(g)
    rows = np.arange(in_len)[:, None] + np.arange(k)[None, :] - k // 2
    blur_m = np.zeros((in_len, in_len))
    np.add.at(blur_m, (np.repeat(np.arange(in_len), k), border_index(rows, in_len, border).ravel()), np.tile(g, in_len))
    if downsampler == "bicubic":
        down = resize_matrix(in_len, 1.0 / scale, True)
    else:
        down = np.eye(in_len)[::scale]
    return (down @ blur_m)[crop[0] : crop[1]]


def blur_and_downsample(hr: torch.Tensor, spec: DegradationSpec, margin: int = 0) -> torch.Tensor:
    """hr: (N, C, H, W) float (0–255) → blurred, down-sampled float (N, C, H/s − 2m/s, W/s − 2m/s).

    Separable (isotropic) kernels: one fused matrix per axis (:func:`axis_operator`). Others: with s-fold
    subsampling one strided convolution over the kept pixels (:func:`blur_subsample`); with bicubic a 2-D
    convolution, the resize, then the margin crop.
    """
    s, m = spec.scale, margin // spec.scale
    h_out, w_out = hr.shape[-2] // s - 2 * m, hr.shape[-1] // s - 2 * m
    k1 = spec.kernel_1d() if spec.kernel != "none" else np.ones(1)
    if k1 is not None:
        g = tuple(float(v) for v in k1)
        common = (g, spec.blur_border, spec.downsampler, s)
        keys = [(hr.shape[-2], *common, (m, m + h_out)), (hr.shape[-1], *common, (m, m + w_out))]
        op_h, op_w = (cached_tensor(k, lambda k=k: axis_operator(*k), hr.dtype, hr.device) for k in keys)
        return torch.matmul(op_h, torch.matmul(hr, op_w.T))
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
        x = blur_and_downsample(hr.float() if not hr.is_floating_point() else hr, spec, margin)
    x = add_noise(x, spec.noise, spec.seed)
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
