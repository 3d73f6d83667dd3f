"""The model families and the one question every other module asks: ``family_of(model or config)``.

``plain`` (``model(lr)``, L1), ``conditional`` (CMDSR: ``model(lr, support)``), ``contrastive`` (CDSR, DASR: MoCo
encoder + generator), ``multicrop`` (CdCL) and ``distilled`` (KDSR: teacher and student encoders). A class claims a
family with a class attribute ``family``; :func:`check_family` (called by ``build_model``) fails at build time when
it lacks a method its family needs (:data:`REQUIRED`). No Ray or MLflow here."""

from __future__ import annotations

from enum import StrEnum

from torch import nn

from blindsr.config import ModelConfig


class Family(StrEnum):
    PLAIN = "plain"
    CONDITIONAL = "conditional"
    CONTRASTIVE = "contrastive"
    MULTICROP = "multicrop"
    DISTILLED = "distilled"


# what a member of each family must have (methods or submodules), checked when a model is built
REQUIRED: dict[Family, tuple[str, ...]] = {
    Family.PLAIN: (),
    Family.CONDITIONAL: ("condition", "support_size", "base_parameters", "condition_parameters"),
    Family.CONTRASTIVE: (
        "encoder",
        "generator",
        "contrastive_forward",
        "contrast",
        "encoder_parameters",
        "generator_parameters",
    ),
    Family.MULTICROP: (
        "encoder",
        "generator",
        "multicrop_forward",
        "multicrop_contrast",
        "encoder_parameters",
        "generator_parameters",
    ),
    Family.DISTILLED: (
        "teacher",
        "student",
        "generator",
        "teacher_forward",
        "student_forward",
        "teacher_idr",
        "teacher_parameters",
        "student_parameters",
    ),
}

# the family of each registry name (``blindsr.models.MODELS``); a name not listed is plain
FAMILY_OF_NAME: dict[str, Family] = {
    "cmdsr": Family.CONDITIONAL,
    "cdsr": Family.CONTRASTIVE,
    "dasr": Family.CONTRASTIVE,
    "cdcl": Family.MULTICROP,
    "kdsr": Family.DISTILLED,
}

# the SR network of each family, as an attribute of the model (None: the model itself): what
# ``train.compile`` compiles (the encoder and ConditionNet run once per task, the SR network per patch)
SR_NETWORK: dict[Family, str | None] = {
    Family.PLAIN: None,
    Family.CONDITIONAL: "base",
    Family.CONTRASTIVE: "generator",
    Family.MULTICROP: "generator",
    Family.DISTILLED: "generator",
}

# which paper's job trains which families (``jobs/train_<paper>.py``, a search space's ``family``)
PAPER_FAMILIES: dict[str, tuple[Family, ...]] = {
    "cmdsr": (Family.CONDITIONAL, Family.PLAIN),
    "cdsr": (Family.CONTRASTIVE,),
    "cdcl": (Family.MULTICROP,),
    "kdsr": (Family.DISTILLED,),
}


def family_of(model: nn.Module | ModelConfig | str) -> Family:
    """The family of a built model (its class's ``family``), a ``ModelConfig`` or a registry name."""
    if isinstance(model, nn.Module):
        return Family(getattr(type(model), "family", Family.PLAIN))
    return FAMILY_OF_NAME.get(model.name if isinstance(model, ModelConfig) else model, Family.PLAIN)


def sr_network(model: nn.Module) -> nn.Module:
    """The part of ``model`` that maps LR to SR pixels (the BaseNet, the generator, or the model itself)."""
    attr = SR_NETWORK[family_of(model)]
    return model if attr is None else getattr(model, attr)


def check_family(model: nn.Module, name: str | None = None) -> nn.Module:
    """``model`` itself when it has what its claimed family needs (and, given its registry ``name``, claims the
    family the registry lists for it); else ``TypeError`` naming the class and what is missing."""
    family = family_of(model)
    missing = [attr for attr in REQUIRED[family] if not hasattr(model, attr)]
    if missing:
        raise TypeError(f"{type(model).__name__} claims the {family.value} family but lacks {', '.join(missing)}")
    if name is not None and family is not family_of(name):
        raise TypeError(
            f"{type(model).__name__} (model {name!r}) is {family.value}, the registry lists "
            f"{family_of(name).value}: set its class attribute family or FAMILY_OF_NAME"
        )
    return model


def check_paper(paper: str, model: ModelConfig | str) -> str | None:
    """Why ``jobs/train_<paper>.py`` (or a search space of that family) cannot train ``model``, or None."""
    name = model if isinstance(model, str) else model.name
    family = family_of(name)
    if family in PAPER_FAMILIES[paper]:
        return None
    other = next(p for p, fams in PAPER_FAMILIES.items() if family in fams)
    return f"model.name={name!r} is a {family.value} model: train it with train_{other}.py, not train_{paper}.py"
