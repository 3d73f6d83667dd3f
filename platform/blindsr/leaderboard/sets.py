"""The leaderboard's test sets: the built-in corpus' val images and folders of HR images, each named, with a
digest of its files, and their cases through the one evaluate-and-log path (``evaluation.record``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path

from blindsr.data.images import DatasetError, list_image_files
from blindsr.data.sources import load_corpus
from blindsr.errors import InputError
from blindsr.evaluation.cases import Case
from blindsr.evaluation.record import choose_cases
from blindsr.published import canonical_set
from blindsr.tracking.datasets import EvalSet


def set_digest(source: str, crop: int) -> str:
    """sha256 (16 hex) of a test set as scored: its files' relative paths and bytes (the corpus: its val images'
    pixels) and the centre crop."""
    h = hashlib.sha256(f"crop={crop}".encode())
    if source == "corpus":
        for img in load_corpus("val"):
            h.update(img.id.encode() + str(img.pixels.shape).encode() + img.pixels.tobytes())
        return h.hexdigest()[:16]
    root = Path(source).expanduser()
    for f in list_image_files(root):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def eval_sets(set_dirs: Sequence[str], corpus: bool, crop: int) -> list[EvalSet]:
    """``corpus`` and every ``NAME=PATH`` (or ``PATH``: named after its folder), each with its digest. Refused by
    name: a missing folder, a name given twice, no set at all."""
    sets = [EvalSet("corpus", set_digest("corpus", crop), "corpus")] if corpus else []
    for text in set_dirs:
        name, _, path = text.rpartition("=")
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"--set-dir {text}: {folder} does not exist or is not a folder")
        name = canonical_set(name or folder.resolve().name)
        if name in {s.name for s in sets}:
            raise InputError(f"--set-dir {text}: a test set named {name!r} is already evaluated")
        sets.append(EvalSet(name, set_digest(str(folder), crop), str(folder.resolve()), len(list_image_files(folder))))
    if not sets:
        raise InputError("no test set: give --set-dir NAME=PATH or drop --no-corpus")
    return sets


def set_cases(protocol: str, scale: int, eval_set: EvalSet, crop: int, cache: str | None) -> list[Case]:
    """The cases of one set under ``protocol`` (``div2krk``: a set folder is its root; none on the corpus)."""
    if protocol == "div2krk":
        if eval_set.source == "corpus":
            return []
        found = choose_cases(protocol, scale, root=eval_set.source, crop=crop)
    else:
        where = {"images": [eval_set.source]} if eval_set.source != "corpus" else {}
        found = choose_cases(protocol, scale, **where, crop=crop, cache=cache)
    return [dataclasses.replace(c, set=eval_set.name) for c in found]
