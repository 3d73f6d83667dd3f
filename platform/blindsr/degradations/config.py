"""``DegradationConfig``: the distribution a run draws one degradation per task from (``sampling.sample_spec``).

It lives with the degradations it describes, so ``degradations/`` needs nothing from the run configuration
(``blindsr.config`` nests it as ``Config.degradation``). No Ray, no MLflow, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class DegradationConfig:
    """Distribution that ``sample_spec`` draws one degradation per task from.

    Kernel parameters follow ``convention``: ``eig_var`` gives λ1, λ2 as covariance eigenvalues
    (variances; CMDSR, CDSR/MANet, KAIR), ``sigma_std`` as standard deviations (DASR, BasicSR).
    Isotropic widths are always standard deviations σ.
    """

    kernel: Literal["iso", "aniso", "mixed", "none"] = "iso"
    kernel_size: int = 15
    convention: Literal["eig_var", "sigma_std"] = "eig_var"
    # isotropic σ: a discrete grid lo:step:hi when sigma_step > 0 (CMDSR), else continuous U(lo, hi)
    sigma_range: list[float] = field(default_factory=lambda: [0.2, 4.0])
    sigma_step: float = 0.1
    # anisotropic λ1 ~ U(range), λ2 ~ U(lambda2_range) or U(lambda2_range[0], λ1) when lambda2_le_lambda1
    lambda1_range: list[float] = field(default_factory=lambda: [0.7, 10.0])
    lambda2_range: list[float] = field(default_factory=lambda: [0.7, 10.0])
    lambda2_le_lambda1: bool = True
    theta_range: list[float] = field(default_factory=lambda: [0.0, 3.141592653589793])
    iso_prob: float = 0.5  # only for kernel == "mixed"
    # "centered": odd kernel centred on the pixel; "shifted": MANet/CDSR top-left (k-s+1)² kernel
    kernel_layout: Literal["centered", "shifted"] = "centered"
    blur_border: Literal["reflect", "replicate", "circular"] = "reflect"
    downsampler: Literal["bicubic", "sfold", "cv2_cubic"] = "bicubic"  # cv2_cubic: the official CMDSR training code
    noise_range: list[float] = field(default_factory=lambda: [0.0, 75.0])  # AWGN σ on the 0–255 scale
    noise_step: float = 0.0  # > 0: levels on the grid lo:step:hi (the official CMDSR code: randint(0, 75))
    rounding: Literal["round", "floor"] = "round"  # float LR → uint8 (the official CMDSR code floors)
    clean_fraction: float = 0.0  # the share of tasks kept noise-free (CDSR/MANet official training: 0.2)
    jpeg_prob: float = 0.0
    jpeg_quality_range: list[int] = field(default_factory=lambda: [30, 80])

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for name in (
            "sigma_range",
            "lambda1_range",
            "lambda2_range",
            "theta_range",
            "noise_range",
            "jpeg_quality_range",
        ):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                out.append((name, f"expected [low, high] with low <= high, got {lo_hi}"))
        if self.kernel_size < 1:
            out.append(("kernel_size", f"must be >= 1, got {self.kernel_size}"))
        if self.kernel_layout == "centered" and self.kernel_size % 2 == 0:
            out.append(("kernel_size", f"a centred kernel needs an odd size, got {self.kernel_size}"))
        for name in ("iso_prob", "jpeg_prob", "clean_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                out.append((name, f"is a probability, must be in [0, 1], got {getattr(self, name)}"))
        if self.kernel in ("iso", "mixed") and self.sigma_range[0] <= 0:
            out.append(("sigma_range", f"widths must be > 0, got {self.sigma_range}"))
        if self.noise_step < 0:
            out.append(("noise_step", f"must be >= 0 (0: continuous levels), got {self.noise_step}"))
        if self.downsampler == "cv2_cubic" and self.blur_border == "circular":
            out.append(("blur_border", "downsampler cv2_cubic blurs with OpenCV, which has no circular border"))
        if self.noise_range[0] < 0:
            out.append(("noise_range", f"noise levels must be >= 0, got {self.noise_range}"))
        return out
