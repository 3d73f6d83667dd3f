"""Which ``ModelConfig`` fields each registry model reads, so a key the chosen model ignores fails loudly.

``model.n_blocks`` means nothing to VDSR, IDN, DASR or CDSR with DASR's trunk; ``model.codebook_size``
nothing without the codebook. A user or a sweep that sets such a key would run identical models without a
word, so the training jobs and the search-space check refuse the keys they were *given* (``--set``, the
YAML file, a sweep's base, rows and dimensions) that the model does not read. Preset values are not checked:
a preset carries its family's settings, and ``--set model.name=dasr`` on a CDSR preset must keep working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blindsr.config import ModelConfig

MOCO = {"moco_queue", "moco_momentum", "moco_temperature"}
BASENET_FIELDS = {
    "srresnet": {"n_feats", "n_blocks"},
    "edsr": {"n_feats", "n_blocks"},
    "vdsr": {"n_feats"},
    "idn": {"n_feats"},
}


def fields_used(cfg: ModelConfig) -> set[str]:
    """The fields of ``cfg`` (besides ``name``) that ``build_model(cfg)`` reads."""
    if cfg.name in BASENET_FIELDS:
        return set(BASENET_FIELDS[cfg.name])
    if cfg.name == "cmdsr":
        return {"basenet", "support_size", "modulation"} | BASENET_FIELDS[cfg.basenet]
    if cfg.name == "dasr":
        return {"n_feats"} | MOCO
    if cfg.name == "cdcl":
        return {"n_feats", "n_groups", "n_blocks", "moco_momentum", "moco_temperature"}
    if cfg.name == "kdsr":
        return {"n_feats", "n_blocks", "encoder_blocks"}
    if cfg.name == "cdsr":
        used = {"n_feats", "encoder", "use_codebook", "trunk"} | MOCO
        if cfg.trunk == "rrdb":
            used |= {"n_blocks", "fusion"}
        if cfg.encoder == "lpe":
            used |= {"use_pixel_branch", "use_patch_branch"}
        if cfg.use_codebook:
            used.add("codebook_size")
        return used
    raise ValueError(f"unknown model {cfg.name!r}")


def ignored_keys(cfg: ModelConfig, keys: Iterable[str]) -> list[str]:
    """The dotted ``model.*`` keys among ``keys`` that the model ``cfg`` describes does not read."""
    used = fields_used(cfg)
    return [k for k in dict.fromkeys(keys) if k.startswith("model.") and k[6:] != "name" and k[6:] not in used]


def ignored_message(cfg: ModelConfig, keys: Iterable[str]) -> str | None:
    """A one-line refusal naming the ignored keys and what the model reads instead, or None."""
    ignored = ignored_keys(cfg, keys)
    if not ignored:
        return None
    reads = ", ".join(f"model.{f}" for f in sorted(fields_used(cfg)))
    return f"{', '.join(ignored)}: not used by model {_describe(cfg)}, which reads {reads}"


def _describe(cfg: ModelConfig) -> str:
    detail = {"cmdsr": f" (basenet {cfg.basenet})", "cdsr": f" (encoder {cfg.encoder}, trunk {cfg.trunk})"}
    return f"{cfg.name!r}{detail.get(cfg.name, '')}"


def all_fields() -> set[str]:
    from blindsr.config import ModelConfig

    return {f.name for f in dataclasses.fields(ModelConfig)} - {"name"}
