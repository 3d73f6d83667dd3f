"""Pure degradation operations (numpy / torch, no Ray): kernels, blur, resize, noise, JPEG, specs."""

from blindsr.degradations.pipeline import apply, degrade, mod_crop
from blindsr.degradations.presets import TEST_PRESETS, TRAIN_PRESETS
from blindsr.degradations.sampling import sample_spec
from blindsr.degradations.spec import DegradationSpec

__all__ = ["TEST_PRESETS", "TRAIN_PRESETS", "DegradationSpec", "apply", "degrade", "mod_crop", "sample_spec"]
