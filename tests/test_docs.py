"""The README and docs/ stay short and true: the README is at most 200 lines, every job and benchmark the docs
name answers ``--help``, and every config key the docs name exists in the config."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import runpy
import sys
from pathlib import Path

import pytest

from blindsr.config import RENAMED, Config, flatten

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPT = re.compile(r"\b(?:jobs|benchmarks)/\w+\.py\b")
SECTIONS = [f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(getattr(Config(), f.name))]
# a dotted key: a config section, then fields; not part of a longer name (blindsr.data.stream, data/feed.py)
KEY = re.compile(r"(?<![\w./-])((?:" + "|".join(SECTIONS) + r")(?:\.[a-z_0-9*]+)+)")
FILE_SUFFIX = re.compile(r"\.(py|pt|md|yaml|yml|json|csv|png|onnx|db|safetensors|txt|sh|log)$")  # model.safetensors


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def valid_keys() -> set[str]:
    """Every dotted key a config accepts: the flattened default config and every field of every section."""
    cfg = Config()
    keys = set(flatten(cfg))
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        if dataclasses.is_dataclass(section):
            keys |= {f"{f.name}.{g.name}" for g in dataclasses.fields(section)}
    return keys


def named_keys(doc: str) -> set[str]:
    """Dotted config keys a doc names: in backticks (`data.pool_memory_gb`, `scaling.degrade_on: trainer`), after
    ``--set`` and in quoted overrides of code blocks ("optim.lr=2e-4")."""
    spans = [s for s in re.findall(r"`([^`\n]+)`", doc) if "did you mean" not in s]  # quoted errors name typos
    spans += re.findall(r"--set[ =](\S+)", doc)
    spans += re.findall(r"[\"']([a-z_]+\.[a-z_0-9.]+=)", doc)
    found = {m for span in spans for m in KEY.findall(span)}
    return {k.rstrip(".") for k in found if not FILE_SUFFIX.search(k)}


def unknown_keys(doc: str, valid: set[str]) -> set[str]:
    """The keys ``doc`` names that no config has (a ``*`` matches any ending: `model.moco_*`)."""

    def known(key: str) -> bool:
        if "*" in key:
            return any(v.startswith(key.split("*", 1)[0]) for v in valid)
        return key in valid or key in RENAMED  # the docs may name a renamed key to say where it went

    return {k for k in named_keys(doc) if not known(k)}


def test_readme_is_at_most_200_lines():
    lines = text(ROOT / "README.md").count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move detail into docs/"


def test_every_script_the_docs_name_exists_and_answers_help():
    named = sorted({m for doc in DOCS for m in SCRIPT.findall(text(doc))})
    assert "jobs/train_cdsr.py" in named and "benchmarks/train_throughput.py" in named, named
    missing = [s for s in named if not (ROOT / s).is_file()]
    assert not missing, f"the docs name scripts that do not exist: {missing}"

    failed = {}
    for script in named:  # in this process (torch imported once): a subprocess each cost ~1.5 s of CPU
        out, argv, path = io.StringIO(), sys.argv, list(sys.path)
        sys.argv, sys.path[:0] = [str(ROOT / script), "--help"], [str((ROOT / script).parent)]  # as python runs it
        try:
            with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
                runpy.run_path(str(ROOT / script), run_name="__main__")
        finally:
            sys.argv, sys.path[:] = argv, path
        if exit_.value.code not in (0, None) or "usage:" not in out.getvalue():
            failed[script] = out.getvalue()[-1500:]
    assert not failed, failed


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file(doc):
    links = [m.split("#", 1)[0] for m in re.findall(r"\]\(([^)\s]+)\)", text(doc)) if "://" not in m]
    broken = [link for link in links if link and not (doc.parent / link).exists()]
    assert not broken, f"{doc.name} links to missing files: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_key_the_docs_name_exists(doc):
    assert not unknown_keys(text(doc), valid_keys()), f"{doc.name} names keys the config does not have"


def test_the_key_check_sees_keys_in_every_form_and_flags_a_bogus_one():
    doc = (
        "`unknown key 'optim.lrr' (did you mean 'optim.lr'?)`.\n"
        "Set `data.pool_memory_gb` and `scaling.degrade_actors: auto`; `model.moco_*`; `model.safetensors` is a file;\n"
        "`blindsr.data.stream` is a module. `data.task_size` was renamed.\n"
        "```bash\njobs/train_cdsr.py --set optim.lr=2e-4 --set train.no_such_key=1\n```\n"
        '```python\nbuild_config("cdsr_demo", None, ["degradation.noise_rnage=[0,30]"])\n```\n'
        "Also `scaling.degrade_actorz`."
    )
    assert named_keys(doc) == {
        "data.pool_memory_gb", "scaling.degrade_actors", "model.moco_*", "data.task_size", "optim.lr",
        "train.no_such_key", "degradation.noise_rnage", "scaling.degrade_actorz",
    }  # fmt: skip
    assert unknown_keys(doc, valid_keys()) == {"train.no_such_key", "degradation.noise_rnage", "scaling.degrade_actorz"}
