"""Official checkpoints → blindsr: the key layouts of the papers' own code and their translation.

Pure (no Ray, no MLflow): a state dict in, a :class:`ModelConfig`, a scale and a blindsr state dict out. Every
official key is either translated or dropped for a stated reason; a key no rule knows is an error naming it, so
a checkpoint of another architecture is refused rather than half-loaded.

* **CMDSR** (guanghaoyin/CMDSR ``models/CMDSR.py``, MIT). ``CMDSR.state_dict()``:
  ``sr_net.input_conv`` → ``base.head``; ``sr_net.backbone.{i}.conv{1,2}`` → ``base.blocks.{i}.conv{1,2}``;
  ``sr_net.upsampler.{j}`` → ``base.up.{j}``; ``sr_net.output_conv`` → ``base.tail``;
  ``sr_net.modulations.modulations.{m}`` (EqualLinear, bias init 1) → ``modulation.heads.{m}``;
  ``condition_net.condition.{j}`` (VGG convs at 0, 2, 5, 7) → ``condition_net.body.{j}``. Both store the
  equalized-lr weights as N(0, 1) with the 1/√fan-in scale applied at run time, and both read 0–255 inside, so
  the values copy as they are.
* **DASR** (LongguangWang/DASR ``model/blindsr.py``, MIT; ``BlindSR``, saved from EDSR-PyTorch's trainer):
  ``G.head.0`` → ``generator.head``; ``G.compress.0``; ``G.body.{g}.body.{b}.{da_conv1,conv1,da_conv2,conv2}``
  → ``generator.groups.{g}.blocks.{b}…`` (``ca.conv_du.{j}`` → ``ca.{j}``); ``G.body.{g}.body.{n_blocks}`` →
  ``generator.groups.{g}.conv``; ``G.body.{n_groups}`` → ``generator.body_tail``; ``G.tail.0.{j}`` →
  ``generator.up.{j}``; ``G.tail.1`` → ``generator.tail``; ``E.encoder_{q,k}.E.{3j}`` / ``.E.{3j+1}`` (conv / BN
  of layer j) → ``encoder.encoder_{q,k}.features.0.{j}.{0,1}``; ``E.encoder_{q,k}.mlp.{j}`` → ``….head.{j}``;
  ``E.queue``, ``E.queue_ptr``. Dropped: ``G.sub_mean``/``G.add_mean`` (frozen DIV2K mean shifts, a buffer here;
  checked equal). The released ``model_600.pt`` files leave out ``E.encoder_k`` and the queue: the key
  encoder then starts as a copy of the query encoder (MoCo's own initialisation) and the queue stays random.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from blindsr.config import ModelConfig
from blindsr.models.edsr import DIV2K_MEAN

Rule = tuple[str, str]  # (regex on the official key, replacement: our key)
PREFIXES = ("module.", "model.")  # DataParallel and EDSR-PyTorch's wrapper

CMDSR_RULES: list[Rule] = [
    (r"sr_net\.input_conv\.(weight|bias)", r"base.head.\1"),
    (r"sr_net\.backbone\.(\d+)\.(conv[12])\.(weight|bias)", r"base.blocks.\1.\2.\3"),
    (r"sr_net\.upsampler\.(\d+)\.(weight|bias)", r"base.up.\1.\2"),
    (r"sr_net\.output_conv\.(weight|bias)", r"base.tail.\1"),
    (r"sr_net\.modulations\.modulations\.(\d+)\.(weight|bias)", r"modulation.heads.\1.\2"),
    (r"condition_net\.condition\.(\d+)\.(weight|bias)", r"condition_net.body.\1.\2"),
]


def _dasr_encoder(match: re.Match[str]) -> str:
    which, index, field = match.group(1), int(match.group(2)), match.group(3)
    layer, part = divmod(index, 3)  # each layer is conv (3j), BN (3j+1), LeakyReLU (3j+2)
    return f"encoder.encoder_{which}.features.0.{layer}.{part}.{field}"


DASR_RULES: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
    (r"G\.head\.0\.(weight|bias)", r"generator.head.\1"),
    (r"G\.compress\.0\.weight", r"generator.compress.0.weight"),
    (
        r"G\.body\.(\d+)\.body\.(\d+)\.(da_conv[12])\.ca\.conv_du\.(\d+)\.weight",
        r"generator.groups.\1.blocks.\2.\3.ca.\4.weight",
    ),
    (
        r"G\.body\.(\d+)\.body\.(\d+)\.(da_conv[12]\.(?:kernel\.\d+|conv)\.(?:weight|bias))",
        r"generator.groups.\1.blocks.\2.\3",
    ),
    (r"G\.body\.(\d+)\.body\.(\d+)\.(conv[12])\.(weight|bias)", r"generator.groups.\1.blocks.\2.\3.\4"),
    (r"G\.body\.(\d+)\.body\.5\.(weight|bias)", r"generator.groups.\1.conv.\2"),
    (r"G\.body\.5\.(weight|bias)", r"generator.body_tail.\1"),
    (r"G\.tail\.0\.(\d+)\.(weight|bias)", r"generator.up.\1.\2"),
    (r"G\.tail\.1\.(weight|bias)", r"generator.tail.\1"),
    (r"E\.encoder_([qk])\.E\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)", _dasr_encoder),
    (r"E\.encoder_([qk])\.mlp\.(\d+)\.(weight|bias)", r"encoder.encoder_\1.head.\2.\3"),
    (r"E\.(queue|queue_ptr)", r"encoder.\1"),
]
DASR_DROPPED = r"G\.(sub_mean|add_mean)\.(weight|bias)"
OPTIONAL = {"encoder.queue", "encoder.queue_ptr"}  # absent from released checkpoints: the model's own (random) queue


class OfficialCheckpointError(ValueError):
    """A state dict that is not one of the known official layouts, or does not match its architecture."""


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def detect(state: dict[str, torch.Tensor]) -> str:
    """``cmdsr`` or ``dasr`` from the keys; raises naming what was found."""
    keys = set(state)
    if any(k.startswith("sr_net.input_conv.") for k in keys):
        return "cmdsr"
    if any(k.startswith("G.head.0.") for k in keys) and any(k.startswith("E.encoder_q.") for k in keys):
        return "dasr"
    sample = ", ".join(sorted(keys)[:5])
    raise OfficialCheckpointError(
        f"not an official CMDSR or DASR state dict (keys like sr_net.input_conv.* or G.head.0.* + E.encoder_q.* "
        f"expected; found {len(keys)} keys: {sample}, …)"
    )


def _translate(state: dict[str, torch.Tensor], rules: list, dropped: str | None) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if dropped and re.fullmatch(dropped, key):
            continue
        for pattern, replacement in rules:
            m = re.fullmatch(pattern, key)
            if m:
                out[replacement(m) if callable(replacement) else m.expand(replacement)] = value
                break
        else:
            raise OfficialCheckpointError(f"official key {key!r} has no counterpart in blindsr (unknown layout)")
    return out


def _scale_of(up_weights: list[torch.Tensor], n_feats: int) -> int:
    """The factor of an EDSR-style upsampler from its convs' output channels (4·C per ×2 stage, 9·C for ×3)."""
    if len(up_weights) == 1 and up_weights[0].shape[0] == 9 * n_feats:
        return 3
    if all(w.shape[0] == 4 * n_feats for w in up_weights):
        return 2 ** len(up_weights)
    raise OfficialCheckpointError(f"cannot read the scale from upsampler shapes {[tuple(w.shape) for w in up_weights]}")


def convert_cmdsr(state: dict[str, torch.Tensor]) -> tuple[ModelConfig, int, dict[str, torch.Tensor]]:
    """An official ``CMDSR.state_dict()`` → (model config, scale, blindsr state dict)."""
    ours = _translate(state, CMDSR_RULES, None)
    n_feats = ours["base.head.weight"].shape[0]
    n_blocks = len({k.split(".")[2] for k in ours if k.startswith("base.blocks.")})
    support = ours["condition_net.body.0.weight"].shape[1] // 3
    ups = [ours[k] for k in sorted(ours) if k.startswith("base.up.") and k.endswith(".weight")]
    cfg = ModelConfig(name="cmdsr", n_feats=n_feats, n_blocks=n_blocks, support_size=support)
    return cfg, _scale_of(ups, n_feats), ours


def convert_dasr(state: dict[str, torch.Tensor]) -> tuple[ModelConfig, int, dict[str, torch.Tensor]]:
    """An official DASR ``BlindSR.state_dict()`` → (model config, scale, blindsr state dict). Missing key
    encoder and queue (the released checkpoints): the key encoder copies the query encoder."""
    if "G.sub_mean.bias" in state:
        shift = -state["G.sub_mean.bias"].double() / 255.0
        if not torch.allclose(shift, torch.tensor(DIV2K_MEAN, dtype=torch.float64), atol=1e-4):
            raise OfficialCheckpointError(f"G.sub_mean holds the mean {shift.tolist()}, not DIV2K's {DIV2K_MEAN}")
    ours = _translate(state, DASR_RULES, DASR_DROPPED)
    if not any(k.startswith("encoder.encoder_k.") for k in ours):
        for k in [k for k in ours if k.startswith("encoder.encoder_q.")]:
            ours[k.replace("encoder_q", "encoder_k", 1)] = ours[k].clone()
    ups = [ours[k] for k in sorted(ours) if k.startswith("generator.up.") and k.endswith(".weight")]
    n_feats = ours["generator.head.weight"].shape[0]
    return ModelConfig(name="dasr"), _scale_of(ups, n_feats), ours


CONVERTERS = {"cmdsr": convert_cmdsr, "dasr": convert_dasr}


def convert(state: dict[str, torch.Tensor]) -> tuple[str, ModelConfig, int, dict[str, torch.Tensor]]:
    """Any known official state dict → (which, model config, scale, blindsr state dict)."""
    state = strip_prefixes(state)
    which = detect(state)
    return (which, *CONVERTERS[which](state))
