"""The rules that span a config's sections: what one model needs of the data, the scale and the validation.

Checked with the config (``Config.problems``), so the jobs and ``build_config`` refuse a run that cannot train
before Ray starts, naming the key to change, instead of a worker failing at its first step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blindsr.config.schema import Config

UPSAMPLER_SCALES = (2, 3, 4)  # the EDSR/SRResNet pixel-shuffle upsamplers
SHUFFLE_UPSAMPLED = {"srresnet", "edsr", "dasr", "cdcl", "kdsr"}  # models built on those upsamplers
PROTOCOL_SCALES = {"gaussian8": (2, 3, 4), "dasr_iso": (2, 3, 4), "dasr_aniso": (2, 3, 4)}
CDCL_QUARTER = 2  # CdCL's encoder cuts each crop into 2 × 2 quarters (models.cdcl_encoder.SPLIT)


def cross_problems(cfg: Config) -> list[tuple[str, str]]:
    """(dotted key, what is wrong) for every cross-section rule ``cfg`` breaks."""
    m, d = cfg.model, cfg.data
    out: list[tuple[str, str]] = []
    net = m.basenet if m.name == "cmdsr" else m.name
    if net in SHUFFLE_UPSAMPLED and cfg.scale not in UPSAMPLER_SCALES:
        out.append(("scale", f"model {m.name!r} up-samples by 2, 3 or 4 (a pixel-shuffle upsampler), got {cfg.scale}"))
    if net == "idn" and m.n_feats % 16:
        out.append(("model.n_feats", f"IDN needs a width divisible by 16 (grouped convs of 4), got {m.n_feats}"))
    if m.name == "cmdsr" and d.patches_per_task != 2 * m.support_size:
        out.append(
            (
                "data.patches_per_task",
                f"CMDSR with support size n = {m.support_size} needs 2n = {2 * m.support_size} patches per task "
                f"(a support half and a query half), got {d.patches_per_task}",
            )
        )
    if m.name == "cmdsr" and cfg.loss.condition_loss != "res" and d.tasks_per_step < 2:
        out.append(
            ("data.tasks_per_step", f"CMDSR's task-contrastive loss compares tasks: needs >= 2, got {d.tasks_per_step}")
        )
    if m.name == "cdcl":  # a row's crops are its positives, the other rows its negatives
        out += [
            (f"data.{k}", f"model cdcl contrasts crops of a task against other tasks: needs at least 2, got {n}")
            for k in ("patches_per_task", "tasks_per_step")
            if (n := getattr(d, k)) < 2
        ]
    elif d.sampler == "pair" and d.patches_per_task < 2:
        out.append(("data.patches_per_task", f"a query/key pair (sampler pair) needs >= 2, got {d.patches_per_task}"))
    if m.name == "cdcl" and d.patch_size < 2 * CDCL_QUARTER:
        out.append(("data.patch_size", f"CdCL's encoder cuts each crop into quarters: needs >= 4, got {d.patch_size}"))
    scales = PROTOCOL_SCALES.get(cfg.train.val_protocol)
    if scales and cfg.scale not in scales:
        out.append(
            (
                "train.val_protocol",
                f"{cfg.train.val_protocol} is defined at x{', x'.join(map(str, scales))}, not x{cfg.scale}",
            )
        )
    return out
