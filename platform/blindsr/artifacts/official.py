"""Official checkpoints → blindsr: the key layouts of the papers' own code (CMDSR, DASR, CDSR) and their translation.

Pure (no Ray, no MLflow): a state dict in, a :class:`ModelConfig`, a scale and a blindsr state dict out. Every
official key is either translated or dropped for a stated reason; a key no rule knows is an error naming it, so a
checkpoint of another architecture is refused rather than half-loaded. Each layout's key mapping is in
:data:`CMDSR_RULES`, :data:`DASR_RULES` and :data:`CDSR_RULES`; CDSR's code has no licence, so :func:`cdsr_layout`
writes its keys and shapes down and nothing is copied."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch

from blindsr.config import PRESETS, Config, ModelConfig
from blindsr.errors import UserError
from blindsr.models import build_model
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


def _cdsr_rdb(m: re.Match[str]) -> str:
    block, rdb, conv, field = m.groups()
    return f"generator.trunk.{block}.rdbs.{int(rdb) - 1}.convs.{int(conv) - 1}.{field}"


def _cdsr_encoder(m: re.Match[str]) -> str:
    which, patch, index, part, field = m.groups()
    branch = "patch" if patch else "pixel"
    return f"encoder.encoder_{which}.features.{branch}.{int(index) - 1}.{0 if part == 'conv1' else 1}.{field}"


_DAB = r"G\.RRDB_trunk\.(\d+)\.SFT\.dab\."
CDSR_RULES: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
    (r"G\.(compress\.\d+|conv_first|trunk_conv)\.(weight|bias)", r"generator.\1.\2"),
    (r"G\.RRDB_trunk\.(\d+)\.SFT\.fc\.(\d)\.(weight|bias)", r"generator.trunk.\1.sft.\2.\3"),
    (
        _DAB + r"(da_conv[12])\.sf_attn\.(query|key|value)_conv\.(weight|bias)",
        r"generator.trunk.\1.fuse.\2.attention.\3.\4",
    ),
    (_DAB + r"(da_conv[12])\.sf_attn\.gamma", r"generator.trunk.\1.fuse.\2.attention.gamma"),
    (_DAB + r"(da_conv[12])\.ca\.conv_du\.(\d)\.weight", r"generator.trunk.\1.fuse.\2.ca.\3.weight"),
    (_DAB + r"(da_conv[12]\.(?:kernel\.\d|conv)\.(?:weight|bias))", r"generator.trunk.\1.fuse.\2"),
    (_DAB + r"(conv[12])\.(weight|bias)", r"generator.trunk.\1.fuse.\2.\3"),
    (r"G\.RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.(weight|bias)", _cdsr_rdb),
    (r"G\.upsampler\.0\.(weight|bias)", r"generator.upsample.0.\1"),
    (
        r"E\.encoder_([qk])\.(p?)conv(\d)\.(conv1|bn1)\.(weight|bias|running_mean|running_var|num_batches_tracked)",
        _cdsr_encoder,
    ),
    (r"E\.encoder_([qk])\.mlp1\.(\d)\.(weight|bias)", r"encoder.encoder_\1.features.fusion.\2.\3"),
    (r"E\.encoder_([qk])\.feature_bank\.weight", r"encoder.encoder_\1.csc.codebook.weight"),
    (r"E\.encoder_([qk])\.(fc_q|fc_k)\.(weight|bias)", r"encoder.encoder_\1.csc.\2.\3"),
    (r"E\.encoder_([qk])\.mlp\.(\d)\.(weight|bias)", r"encoder.encoder_\1.head.\2.\3"),
    (r"E\.(queue|queue_ptr)", r"encoder.\1"),
]


def cdsr_layout(scale: int = 4, n_blocks: int = 10, codebook: int = 1024) -> dict[str, tuple[int, ...]]:
    """The official CDSR ``BlindSR.state_dict()`` written down from its code: key → shape (query and key encoder,
    queue included). nf 64, gc 32, embedding 256, MoCo K 8192."""
    out: dict[str, tuple[int, ...]] = {}

    def layer(prefix: str, shape: tuple[int, ...], bias: bool = True) -> None:
        out[f"{prefix}.weight"] = shape
        if bias:
            out[f"{prefix}.bias"] = (shape[0],)

    for j in range(4):
        layer(f"G.compress.{2 * j}", (256, 256))
        out[f"G.compress.{2 * j + 1}.weight"] = (1,)  # PReLU, one slope
    layer("G.conv_first", (64, 3, 3, 3))
    for b in range(n_blocks):
        t = f"G.RRDB_trunk.{b}"
        layer(f"{t}.SFT.fc.0", (256, 256))
        out[f"{t}.SFT.fc.1.weight"] = (1,)
        layer(f"{t}.SFT.fc.2", (64, 256))
        for slot in ("da_conv1", "da_conv2"):
            d = f"{t}.SFT.dab.{slot}"
            for name in ("query_conv", "key_conv", "value_conv"):
                layer(f"{d}.sf_attn.{name}", (64, 64))
            out[f"{d}.sf_attn.gamma"] = (1,)
            layer(f"{d}.kernel.0", (64, 64), bias=False)
            layer(f"{d}.kernel.2", (576, 64), bias=False)
            layer(f"{d}.conv", (64, 64, 1, 1))
            layer(f"{d}.ca.conv_du.0", (32, 64, 1, 1), bias=False)  # reduction 2
            layer(f"{d}.ca.conv_du.2", (64, 32, 1, 1), bias=False)
        layer(f"{t}.SFT.dab.conv1", (64, 64, 3, 3))
        layer(f"{t}.SFT.dab.conv2", (64, 64, 3, 3))
        for r in (1, 2, 3):
            for c in range(1, 6):
                layer(f"{t}.RDB{r}.conv{c}", (64 if c == 5 else 32, 64 + 32 * (c - 1), 3, 3))
    layer("G.trunk_conv", (64, 64, 3, 3))
    layer("G.upsampler.0", (3 * scale * scale, 64, 3, 3))
    pixel = [(3, 64, 7), (64, 64, 1), (64, 128, 3), (128, 128, 1), (128, 256, 7), (256, 256, 1)]
    patch = [(3, 64, 12), (64, 64, 3), (64, 128, 3), (128, 256, 3)]
    for which in ("q", "k"):
        e = f"E.encoder_{which}"
        for prefix, convs in (("conv", pixel), ("pconv", patch)):
            for i, (cin, cout, k) in enumerate(convs, start=1):
                layer(f"{e}.{prefix}{i}.conv1", (cout, cin, k, k))
                layer(f"{e}.{prefix}{i}.bn1", (cout,))
                out[f"{e}.{prefix}{i}.bn1.running_mean"] = out[f"{e}.{prefix}{i}.bn1.running_var"] = (cout,)
                out[f"{e}.{prefix}{i}.bn1.num_batches_tracked"] = ()
        layer(f"{e}.mlp1.0", (256, 512))
        layer(f"{e}.mlp1.2", (256, 256))
        out[f"{e}.feature_bank.weight"] = (codebook, 256)
        layer(f"{e}.fc_q", (256, 256))
        layer(f"{e}.fc_k", (256, 256))
        layer(f"{e}.mlp.0", (256, 256))
        layer(f"{e}.mlp.2", (256, 256))
    out["E.queue"], out["E.queue_ptr"] = (256, 8192), (1,)
    return out


class OfficialCheckpointError(UserError, ValueError):
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
    if any(k.startswith("G.RRDB_trunk.") for k in keys):
        return "cdsr"
    if any(k.startswith("G.head.0.") for k in keys) and any(k.startswith("E.encoder_q.") for k in keys):
        return "dasr"
    sample = ", ".join(sorted(keys)[:5])
    raise OfficialCheckpointError(
        f"not an official CMDSR, DASR or CDSR state dict (keys like sr_net.input_conv.*, G.head.0.* + E.encoder_q.* "
        f"or G.RRDB_trunk.* "
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
    _copy_key_encoder(ours)
    ups = [ours[k] for k in sorted(ours) if k.startswith("generator.up.") and k.endswith(".weight")]
    n_feats = ours["generator.head.weight"].shape[0]
    return ModelConfig(name="dasr"), _scale_of(ups, n_feats), ours


def _copy_key_encoder(ours: dict[str, torch.Tensor]) -> None:
    if not any(k.startswith("encoder.encoder_k.") for k in ours):
        for k in [k for k in ours if k.startswith("encoder.encoder_q.")]:
            ours[k.replace("encoder_q", "encoder_k", 1)] = ours[k].clone()


def convert_cdsr(state: dict[str, torch.Tensor]) -> tuple[ModelConfig, int, dict[str, torch.Tensor]]:
    """An official CDSR ``BlindSR.state_dict()`` → (model config, scale, blindsr state dict)."""
    ours = _translate(state, CDSR_RULES, None)
    _copy_key_encoder(ours)
    n_blocks = len({k.split(".")[2] for k in ours if k.startswith("generator.trunk.")})
    codebook = ours["encoder.encoder_q.csc.codebook.weight"].shape[0]
    scale = round((ours["generator.upsample.0.weight"].shape[0] / 3) ** 0.5)
    return ModelConfig(name="cdsr", n_blocks=n_blocks, codebook_size=codebook), scale, ours


CONVERTERS = {"cmdsr": convert_cmdsr, "dasr": convert_dasr, "cdsr": convert_cdsr}


def convert(state: dict[str, torch.Tensor]) -> tuple[str, ModelConfig, int, dict[str, torch.Tensor]]:
    """Any known official state dict → (which, model config, scale, blindsr state dict)."""
    state = strip_prefixes(state)
    which = detect(state)
    return (which, *CONVERTERS[which](state))


# ---- reading an official file ------------------------------------------------------------------------------

PRESET_OF = {"cmdsr": "cmdsr_code", "dasr": "dasr_code", "cdsr": "cdsr_paper"}
WRAPPERS = ("state_dict", "model", "params_ema", "params")  # how training scripts nest a state dict


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (unwrapping ``{"state_dict": …}``-style checkpoints), read without pickle code."""
    if not path.is_file():
        raise OfficialCheckpointError(f"{path} does not exist or is not a file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with code in it, or not a torch file at all
        raise OfficialCheckpointError(f"{path} is not a weights-only torch checkpoint: {str(e).splitlines()[0]}") from e
    for key in WRAPPERS:
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise OfficialCheckpointError(f"{path} holds no state dict of tensors")
    return data


def imported(path: Path) -> tuple[str, Config, torch.nn.Module]:
    """(which official code, config, the blindsr model with the file's weights)."""
    which, model_cfg, scale, state = convert(read_state(path))
    cfg = PRESETS[PRESET_OF[which]]()
    cfg.name, cfg.scale, cfg.model = f"{which}_official_x{scale}", scale, model_cfg
    if which == "cmdsr":
        cfg.data.patches_per_task = 2 * model_cfg.support_size
    model = build_model(model_cfg, scale)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in OPTIONAL]
    if missing or result.unexpected_keys:
        raise OfficialCheckpointError(
            f"{path} does not fit blindsr's {which} at x{scale}: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return which, cfg, model.eval()
